// Command worker advances Durable's runs: it claims due work from
// PostgreSQL, makes step attempts, records their results and fires
// timeouts. It applies pending database migrations at start-up, so any
// number of api and worker processes may start together.
//
// Usage: worker [flags] (worker -h lists the worker's settings and their
// variables; worker -version prints the version).
// SIGTERM or SIGINT stops claiming, lets steps in flight finish within
// DURABLE_SHUTDOWN_GRACE, and releases the rest for other workers.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/durablehq/durable/internal/config"
	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/metrics"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/profiling"
	"github.com/durablehq/durable/internal/tracing"
	"github.com/durablehq/durable/internal/version"
	"github.com/durablehq/durable/internal/workflow"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case err == nil, errors.Is(err, config.ErrHelp):
	case errors.Is(err, config.ErrVersion):
		fmt.Println(version.Line("worker"))
	default:
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(config.Worker, args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := cfg.NewLogger(stderr)
	workflow.SetEvalMemory(int64(cfg.EvalMemory))
	if cfg.PprofAddr != "" {
		profiles, err := profiling.Start(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer profiles.Close()
	}
	db, err := postgres.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DBMaxConns, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	// Claims and the notification listener get connections of their own
	// (see orchestrator.WithClaimPool): one to listen, two to claim.
	claims, err := postgres.Open(ctx, cfg.DatabaseURL, 3)
	if err != nil {
		return err
	}
	defer claims.Close()
	// The API prints the development secret, when it may; a worker never
	// does, knowing nothing of the API keys that say whether it may.
	secrets, err := orchestrator.LoadSecrets(ctx, db, cfg.SigningSecret, false, logger)
	if err != nil {
		return err
	}
	client, err := httpstep.New(httpstep.Config{
		Secrets: secrets, AllowHosts: cfg.AllowHosts, MaxResponseBytes: int64(cfg.MaxResponseBytes),
		UserAgent: version.UserAgent(),
	})
	if err != nil {
		return fmt.Errorf("step client: %w", err)
	}
	defer client.Close()
	id, err := workerID()
	if err != nil {
		return err
	}
	tp, stopTracing, err := tracing.Setup(ctx, "durable-worker", getenv, logger)
	if err != nil {
		return err
	}
	defer func() {
		// ctx is over by now: the flush gets a little time of its own.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			logger.Warn("flush traces", "error", err)
		}
	}()
	metered := metrics.New()
	metered.WatchDatabase(ctx, db, logger)
	if cfg.MetricsAddr != "" {
		if _, err := metered.Serve(ctx, cfg.MetricsAddr, logger); err != nil {
			return err
		}
	}
	return orchestrator.NewWorker(db, limitsOf(cfg), logger.With("worker_id", id), orchestrator.WorkerConfig{
		Client: client, Concurrency: cfg.WorkerConcurrency, PollInterval: cfg.PollInterval, ShutdownGrace: cfg.ShutdownGrace, Retention: cfg.Retention,
		Operations: orchestrator.OperationConfig{Rate: cfg.BulkRate},
	}, orchestrator.WithSigning(secrets, cfg.PublicBaseURL()), orchestrator.WithWorkerID(id), orchestrator.WithLeaseMargin(cfg.LeaseMargin), orchestrator.WithClaimPool(claims),
		orchestrator.WithDefaultWaitTimeout(cfg.WaitTimeout), orchestrator.WithObserver(metered), orchestrator.WithTracerProvider(tp)).Run(ctx)
}

// workerID names this process in attempts and logs: host, pid and a random
// suffix, so a restarted process is told apart from its predecessor.
func workerID() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("worker id: %w", err)
	}
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b)), nil
}

// limitsOf is the configuration's limits, as the service takes them.
func limitsOf(cfg config.Config) orchestrator.Limits {
	return orchestrator.Limits{Definition: cfg.DefinitionLimits(), MaxInputBytes: cfg.MaxInputBytes, MaxOutputBytes: cfg.MaxOutputBytes, MaxContextBytes: cfg.MaxContextBytes,
		MaxHistoryEvents: cfg.MaxHistoryEvents}
}
