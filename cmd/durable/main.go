// Command durable operates a Durable deployment from a terminal or a
// script, through the API only: workflows, runs, events, human input and
// schedules. `durable --help` lists the commands; internal/cli holds them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/durablehq/durable/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
