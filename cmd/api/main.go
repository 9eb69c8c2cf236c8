// Command api serves Durable's REST API. It applies pending database
// migrations at start-up, so any number of api and worker processes may
// start together against one database.
//
// Usage: api [flags] (api -h lists the api's settings and their
// variables; api -version prints the version). "api migrate" applies the
// migrations and exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/durablehq/durable/api"
	"github.com/durablehq/durable/internal/config"
	"github.com/durablehq/durable/internal/dashboard"
	durablehttp "github.com/durablehq/durable/internal/http"
	"github.com/durablehq/durable/internal/metrics"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/profiling"
	"github.com/durablehq/durable/internal/sidehttp"
	"github.com/durablehq/durable/internal/tracing"
	"github.com/durablehq/durable/internal/version"
	"github.com/durablehq/durable/internal/workflow"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	err := m.Run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, config.ErrHelp):
		return
	case errors.Is(err, config.ErrVersion):
		fmt.Println(version.Line("api"))
		return
	}
	if err == nil && !m.migrateOnly {
		<-ctx.Done()
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

// Main is the api program, separated from main so tests can start it on
// port 0 in-process.
type Main struct {
	db          *postgres.DB
	server      *http.Server
	listener    net.Listener
	profiles    *sidehttp.Server
	logger      *slog.Logger
	served      chan error
	migrateOnly bool
	// stopTracing flushes the spans not exported yet.
	stopTracing func(context.Context) error
	// stopDashboard ends the dashboard's LISTEN connection.
	stopDashboard context.CancelFunc
}

// NewMain returns a program that has not started.
func NewMain() *Main { return &Main{} }

// Run starts the API and returns once it is listening.
func (m *Main) Run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		m.migrateOnly = true
		args = args[1:]
	}
	cfg, err := config.Load(config.API, args, getenv, stderr)
	if err != nil {
		return err
	}
	m.logger = cfg.NewLogger(stderr)
	workflow.SetEvalMemory(int64(cfg.EvalMemory))
	if cfg.PprofAddr != "" && !m.migrateOnly {
		if m.profiles, err = profiling.Start(cfg.PprofAddr, m.logger); err != nil {
			return err
		}
	}
	m.db, err = postgres.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DBMaxConns, m.logger)
	if err != nil {
		return err
	}
	if m.migrateOnly {
		return nil
	}
	spec, err := api.Load(ctx)
	if err != nil {
		return err
	}
	development := len(cfg.APIKeyHashes) == 0
	if development {
		m.logger.Warn("DEVELOPMENT MODE: no API keys are configured (DURABLE_API_KEYS), so the API is open to anyone who can reach " + cfg.Addr)
	}
	secrets, err := orchestrator.LoadSecrets(ctx, m.db, cfg.SigningSecret, development, m.logger)
	if err != nil {
		return err
	}
	tp, stopTracing, err := tracing.Setup(ctx, "durable-api", getenv, m.logger)
	if err != nil {
		return err
	}
	m.stopTracing = stopTracing
	m.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + m.listener.Addr().String()
	}
	metered := metrics.New()
	metered.WatchDatabase(ctx, m.db, m.logger)
	svc := orchestrator.NewAPI(m.db, limitsOf(cfg), m.logger, orchestrator.WithSigning(secrets, cfg.PublicURL),
		orchestrator.WithObserver(metered), orchestrator.WithTracerProvider(tp))
	board, err := dashboard.New(dashboard.Config{
		API: svc, APIKeyHashes: cfg.APIKeyHashes, SessionKey: secrets.DerivedKey("durable dashboard session v1"), Logger: m.logger,
	})
	if err != nil {
		return err
	}
	listenCtx, stopListening := context.WithCancel(context.WithoutCancel(ctx))
	m.stopDashboard = stopListening
	go board.Listen(listenCtx)
	handler := withDashboard(durablehttp.NewServer(durablehttp.Config{
		API: svc, Spec: spec, Ready: m.ready, APIKeyHashes: cfg.APIKeyHashes, Logger: m.logger, Metrics: metered,
		CallbackPage: board.CallbackPage,
	}), board)
	m.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	m.server.RegisterOnShutdown(board.Close)
	m.served = make(chan error, 1)
	go func() { m.served <- m.server.Serve(m.listener) }()
	m.logger.Info("api listening", "addr", m.listener.Addr().String(), "public_url", cfg.PublicURL)
	return nil
}

// Addr returns the address the API listens on.
func (m *Main) Addr() net.Addr { return m.listener.Addr() }

// ProfilesAddr returns the address Go's profiles are served on, or nil
// when DURABLE_PPROF_ADDR is not set.
func (m *Main) ProfilesAddr() net.Addr {
	if m.profiles == nil {
		return nil
	}
	return m.profiles.Addr()
}

// ready is the /readyz check: the database answers and holds every
// migration this binary knows. Its messages are shown to callers.
func (m *Main) ready(ctx context.Context) error {
	if err := m.db.Ping(ctx); err != nil {
		return errors.New("the database does not answer")
	}
	pending, err := m.db.MigrationsPending(ctx)
	if err != nil {
		return errors.New("the migration state cannot be read")
	}
	if pending {
		return errors.New("database migrations are pending")
	}
	return nil
}

// withDashboard serves the REST API's paths (/v1/, the health checks,
// /metrics) with api and every other path with the dashboard.
func withDashboard(api, board http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/v1/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, api)
	}
	mux.Handle("/", board)
	return mux
}

// Close stops serving, letting requests in flight finish for a while, stops
// serving the profiles, flushes the spans not exported yet and closes the
// database.
func (m *Main) Close() error {
	var err error
	if m.stopDashboard != nil {
		// Live pages' streams end with their connection, not with the
		// server's shutdown, which would wait for them.
		m.stopDashboard()
	}
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err = m.server.Shutdown(ctx)
		if serr := <-m.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		m.logger.Info("api stopped")
	}
	if m.profiles != nil {
		if perr := m.profiles.Close(); err == nil {
			err = perr
		}
	}
	if m.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if terr := m.stopTracing(ctx); terr != nil {
			m.logger.Warn("flush traces", "error", terr)
		}
	}
	if m.db != nil {
		m.db.Close()
	}
	return err
}

// limitsOf is the configuration's limits, as the service takes them.
func limitsOf(cfg config.Config) orchestrator.Limits {
	return orchestrator.Limits{Definition: cfg.DefinitionLimits(), MaxInputBytes: cfg.MaxInputBytes, MaxOutputBytes: cfg.MaxOutputBytes, MaxContextBytes: cfg.MaxContextBytes,
		MaxHistoryEvents: cfg.MaxHistoryEvents}
}
