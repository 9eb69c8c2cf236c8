// Command worker advances Durable's runs: it claims due work from PostgreSQL
// and executes steps. It applies pending database migrations at start-up.
//
// This version's worker connects, migrates and then idles: step execution
// arrives with the worker issue (#3). It says so when it starts.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/durablehq/durable/internal/config"
	"github.com/durablehq/durable/internal/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, err := config.Load("worker", args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	logger := cfg.NewLogger(os.Stderr)
	db, err := postgres.OpenMigrated(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	logger.Warn("this worker does not execute runs yet: runs stay pending until step execution lands; idling until stopped")
	<-ctx.Done()
	logger.Info("worker stopped")
	return nil
}
