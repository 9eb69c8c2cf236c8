// Package cli is the durable command: every operation of Durable's API
// from a terminal or a script. It talks to the API only, through the
// generated client in package client, never to the database.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/internal/version"
)

// The exit codes scripts can rely on.
const (
	// ExitOK: the command did what it was asked (and a run it waited
	// for succeeded).
	ExitOK = 0
	// ExitRunFailed: a run the command waited for failed, was cancelled,
	// timed out or was compensated; a definition checked offline is
	// invalid.
	ExitRunFailed = 1
	// ExitUsage: the command line is wrong (an unknown command or flag,
	// a missing argument, input that is not JSON).
	ExitUsage = 2
	// ExitAPI: the API answered a problem, or could not be reached.
	ExitAPI = 3
	// ExitInterrupted: the command was interrupted (Ctrl-C), as shells
	// report a command that SIGINT ended.
	ExitInterrupted = 130
)

// DefaultURL is the API's address when neither --url nor DURABLE_URL says.
const DefaultURL = "http://127.0.0.1:8080"

// requestTimeout bounds each request to the API, so that a script never
// hangs on a stuck connection; waiting for a run is many short requests.
const requestTimeout = time.Minute

// Env is what the command reads and writes besides its arguments:
// standard streams and the environment, injected so that tests run it
// in-process as well as built.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// Main runs the durable command with args (without the program name) and
// returns its exit code.
func Main(ctx context.Context, args []string, env Env) int {
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintln(env.Stderr, "durable: interrupted")
		return ExitInterrupted
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if msg := ee.Error(); msg != "" {
			fmt.Fprintln(env.Stderr, "durable: "+printable(msg))
		}
		return ee.code
	}
	// Anything else comes from cobra itself: an unknown command or flag,
	// a wrong number of arguments.
	fmt.Fprintf(env.Stderr, "durable: %v\nRun 'durable --help' for usage.\n", err)
	return ExitUsage
}

// app holds the global flags and what every command shares.
type app struct {
	env    Env
	url    string
	apiKey string
	output string

	api *client.Client
	// tty says whether standard output is a terminal: tables get colour
	// (unless NO_COLOR is set) and live views redraw in place.
	tty   bool
	color bool
}

// Output formats.
const (
	outputText = "text"
	outputJSON = "json"
	outputYAML = "yaml"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "durable",
		Short: "Operate Durable, the durable workflow engine, through its API",
		Long: `durable operates a Durable deployment through its HTTP API: workflows,
runs (and bulk operations on them), events, human input and schedules.

It talks to the API at --url (or DURABLE_URL, default ` + DefaultURL + `)
with the bearer key --api-key (or DURABLE_API_KEY).

Exit codes: 0 done (a run waited for succeeded); 1 a run waited for failed,
was cancelled, timed out or was compensated, or a definition is invalid;
2 a usage error; 3 the API answered a problem or could not be reached.`,
		Version:           version.Version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.setup,
	}
	root.SetVersionTemplate(version.Line("cli") + "\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	flags := root.PersistentFlags()
	flags.StringVar(&a.url, "url", "", "the API's base URL (default $DURABLE_URL, else "+DefaultURL+")")
	flags.StringVar(&a.apiKey, "api-key", "", "the API key sent as a bearer token (default $DURABLE_API_KEY)")
	flags.StringVarP(&a.output, "output", "o", outputText, "output format: text, json (the API's JSON as it is) or yaml")
	root.AddCommand(
		a.workflowsCommand(),
		a.runsCommand(),
		a.eventsCommand(),
		a.inputCommand(),
		a.schedulesCommand(),
		a.operationsCommand(),
		a.versionCommand(),
	)
	return root
}

// setup checks the global flags and builds the client, before any command
// runs.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	switch a.output {
	case outputText, outputJSON, outputYAML:
	default:
		return usageErrorf("--output must be text, json or yaml, not %q", a.output)
	}
	if !needsAPI(cmd) {
		return nil
	}
	if a.url == "" {
		a.url = a.env.Getenv("DURABLE_URL")
	}
	if a.url == "" {
		a.url = DefaultURL
	}
	if !strings.HasPrefix(a.url, "http://") && !strings.HasPrefix(a.url, "https://") {
		return usageErrorf("--url must start with http:// or https://, not %q", a.url)
	}
	if a.apiKey == "" {
		a.apiKey = a.env.Getenv("DURABLE_API_KEY")
	}
	if f, ok := a.env.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a.tty = true
		a.color = a.env.Getenv("NO_COLOR") == "" && a.env.Getenv("TERM") != "dumb"
	}
	key := a.apiKey
	c, err := client.NewClient(strings.TrimSuffix(a.url, "/"),
		client.WithHTTPClient(&http.Client{Timeout: requestTimeout}),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("User-Agent", "durable-cli/"+version.Version)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			return nil
		}))
	if err != nil {
		return usageErrorf("--url: %v", err)
	}
	a.api = c
	return nil
}

// needsAPI says whether a command talks to the API: version, help and
// shell completion do not, and work whatever DURABLE_URL says.
func needsAPI(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "version", "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return false
		}
	}
	return true
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this command",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.env.Stdout, version.Line("cli"))
			return nil
		},
	}
}

// group is a command that only holds subcommands: alone it prints its
// help; with an argument that names no subcommand it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}
