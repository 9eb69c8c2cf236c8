// Package config reads Durable's configuration once, at start-up, from
// environment variables and the flags that mirror them. Every setting has a
// default for local use; the defaults live here and nowhere else.
package config

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/durablehq/durable/internal/workflow"
)

// Config is the configuration of the API or the worker.
type Config struct {
	DatabaseURL string
	DBMaxConns  int
	Addr        string // the API's listen address
	PublicURL   string // base URL step endpoints use to reach the API; see [Config.PublicBaseURL]
	// APIKeyHashes are the SHA-256 hashes of the accepted API keys; empty
	// means development mode, with an open API.
	APIKeyHashes [][sha256.Size]byte
	LogLevel     slog.Level
	LogFormat    string // "text" or "json"

	// SigningSecret holds the Standard Webhooks secrets ("whsec_…",
	// space-separated, the first signs); empty means a development secret
	// generated once and stored in the database.
	SigningSecret string
	// AllowHosts are the CIDRs and host names steps may call despite the
	// private-address rule.
	AllowHosts        []string
	WorkerConcurrency int
	PollInterval      time.Duration
	ShutdownGrace     time.Duration
	LeaseMargin       time.Duration
	WaitTimeout       time.Duration
	// Retention is how long a worker keeps finished runs whose workflow
	// names no retention of its own.
	Retention time.Duration
	// BulkRate is the most runs per second a worker cancels or retries
	// for bulk operations.
	BulkRate int

	MaxDefinitionBytes int
	MaxDefinitionDepth int
	MaxDefinitionSteps int
	MaxInputBytes      int
	MaxOutputBytes     int
	MaxContextBytes    int
	MaxResponseBytes   int
	MaxHistoryEvents   int
	// EvalMemory bounds the memory the process's heavy expression
	// evaluations hold at once (see workflow.SetEvalMemory).
	EvalMemory int

	// MetricsAddr is where a worker is to serve its Prometheus metrics;
	// empty means nowhere. (The API's are to be on Addr.)
	MetricsAddr string
	// PprofAddr is where the process serves Go's profiles, on a listener
	// of their own; empty means they are not served.
	PprofAddr string
}

// Program is one of Durable's programs, or several of them: each setting
// applies to some, and each program reads and lists only its own.
type Program uint8

const (
	API Program = 1 << iota
	Worker
	// Both is a setting of the API and the worker.
	Both = API | Worker
)

func (p Program) String() string {
	switch p {
	case API:
		return "api"
	case Worker:
		return "worker"
	}
	return fmt.Sprintf("Program(%d)", uint8(p))
}

// synopses open each program's -h, before its flags.
var synopses = map[Program]string{
	API: `Usage:
  api [flags]           serve the REST API, applying pending database migrations first
  api migrate [flags]   apply pending database migrations and exit
`,
	Worker: `Usage:
  worker [flags]        claim due work and advance runs, applying pending database migrations first
`,
}

// setting is one configuration variable: the programs it applies to, its
// environment name, the flag that mirrors it, its default and how to apply
// a value.
type setting struct {
	programs             Program
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

var settings = []setting{
	{Both, "DATABASE_URL", "database-url", "postgres://postgres@127.0.0.1:5432/durable?sslmode=disable",
		"PostgreSQL connection string", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{Both, "DURABLE_DB_MAX_CONNS", "db-max-conns", "16", "most PostgreSQL connections the process opens (a pool_max_conns in DATABASE_URL wins)",
		positiveInt(func(c *Config) *int { return &c.DBMaxConns })},
	// The worker reads the API's address too: it is the default of the
	// callback URLs the worker hands to steps.
	{Both, "DURABLE_ADDR", "addr", "127.0.0.1:8080", "the API's listen address (a worker's default DURABLE_PUBLIC_URL is derived from it)",
		hostPort(func(c *Config) *string { return &c.Addr })},
	{Both, "DURABLE_PUBLIC_URL", "public-url", "", "base URL step endpoints use for callbacks (default http://<DURABLE_ADDR>)",
		func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("must be an absolute http or https URL")
			}
			c.PublicURL = strings.TrimRight(v, "/")
			return nil
		}},
	{API, "DURABLE_API_KEYS", "api-keys", "", "accepted API keys, space-separated, or file:PATH of a file with one key or sha256:<hex> hash per line; none: development mode, open API",
		func(c *Config, v string) error {
			hashes, err := parseAPIKeys(v)
			c.APIKeyHashes = hashes
			return err
		}},
	{Both, "DURABLE_SIGNING_SECRET", "signing-secret", "", "Standard Webhooks secrets (whsec_…), space-separated for rotation, the first signs; none: a development secret generated once and stored in the database",
		func(c *Config, v string) error { c.SigningSecret = v; return nil }},
	{Worker, "DURABLE_ALLOW_HOSTS", "allow-hosts", "127.0.0.0/8 ::1", "CIDRs and host names steps may call despite the private-address rule (space- or comma-separated); replaces the default",
		func(c *Config, v string) error {
			c.AllowHosts = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
			return nil
		}},
	// Steps in flight mostly wait on their endpoints, and the database pool
	// bounds the work they make for PostgreSQL, so a worker holds many: a
	// burst of new runs gets its first steps at once rather than waiting
	// for a slot.
	{Worker, "DURABLE_WORKER_CONCURRENCY", "worker-concurrency", strconv.Itoa(min(512*runtime.NumCPU(), 4096)), "steps a worker runs at once",
		positiveInt(func(c *Config) *int { return &c.WorkerConcurrency })},
	{Worker, "DURABLE_POLL_INTERVAL", "poll-interval", "1s", "how often a worker looks for due work without a notification",
		positiveDuration(func(c *Config) *time.Duration { return &c.PollInterval })},
	{Worker, "DURABLE_SHUTDOWN_GRACE", "shutdown-grace", "30s", "how long a stopping worker lets steps in flight finish",
		positiveDuration(func(c *Config) *time.Duration { return &c.ShutdownGrace })},
	{Worker, "DURABLE_LEASE_MARGIN", "lease-margin", "30s", "how much longer than a step's timeout a worker holds its work; a dead worker's step is retried after timeout + margin",
		positiveDuration(func(c *Config) *time.Duration { return &c.LeaseMargin })},
	{Worker, "DURABLE_WAIT_TIMEOUT", "wait-timeout", "168h", "how long a wait for events or a person may last when its definition names no timeout",
		positiveDuration(func(c *Config) *time.Duration { return &c.WaitTimeout })},
	// A short retention is for tests; a definition's own is at least
	// workflow.MinRetention.
	{Worker, "DURABLE_RETENTION", "retention", workflow.DefaultRetention.String(), "how long finished runs are kept (with their steps and history) when their workflow's definition names no retention; then workers delete them (at least 1s, at most 87600h)",
		func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > workflow.MaxRetention {
				return errors.New("must be a duration from 1s to 87600h, such as 720h")
			}
			c.Retention = d
			return nil
		}},
	{Worker, "DURABLE_BULK_RATE", "bulk-rate", "500", "most runs per second a worker cancels or retries for bulk operations (POST /v1/runs/bulk/...), in batches of 100",
		positiveInt(func(c *Config) *int { return &c.BulkRate })},
	{Both, "DURABLE_LOG_LEVEL", "log-level", "info", "debug, info, warn or error",
		func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{Both, "DURABLE_LOG_FORMAT", "log-format", "text", "text or json",
		func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return errors.New("must be text or json")
			}
			c.LogFormat = v
			return nil
		}},
	{API, "DURABLE_MAX_DEFINITION_BYTES", "max-definition-bytes", strconv.Itoa(workflow.DefaultLimits().MaxBytes), "largest workflow definition accepted",
		positiveInt(func(c *Config) *int { return &c.MaxDefinitionBytes })},
	{API, "DURABLE_MAX_DEFINITION_DEPTH", "max-definition-depth", strconv.Itoa(workflow.DefaultLimits().MaxDepth), "deepest nesting of steps in a definition",
		positiveInt(func(c *Config) *int { return &c.MaxDefinitionDepth })},
	{API, "DURABLE_MAX_DEFINITION_STEPS", "max-definition-steps", strconv.Itoa(workflow.DefaultLimits().MaxSteps), "most steps in a definition, nested ones included",
		positiveInt(func(c *Config) *int { return &c.MaxDefinitionSteps })},
	{Both, "DURABLE_MAX_INPUT_BYTES", "max-input-bytes", strconv.Itoa(workflow.DefaultMaxInputBytes), "largest run input accepted",
		positiveInt(func(c *Config) *int { return &c.MaxInputBytes })},
	{Both, "DURABLE_MAX_OUTPUT_BYTES", "max-output-bytes", strconv.Itoa(workflow.DefaultMaxOutputBytes), "largest step output (and callback body) accepted",
		positiveInt(func(c *Config) *int { return &c.MaxOutputBytes })},
	{Both, "DURABLE_MAX_CONTEXT_BYTES", "max-context-bytes", strconv.Itoa(workflow.DefaultMaxContextBytes), "largest run context",
		positiveInt(func(c *Config) *int { return &c.MaxContextBytes })},
	{Worker, "DURABLE_MAX_RESPONSE_BYTES", "max-response-bytes", "1048576", "largest step response body read",
		positiveInt(func(c *Config) *int { return &c.MaxResponseBytes })},
	{Both, "DURABLE_MAX_HISTORY_EVENTS", "max-history-events", strconv.Itoa(workflow.DefaultMaxHistoryEvents), "most events the history of a run this process starts holds (the events of steps inside foreach items are not counted); a run that would pass it fails (at least 10)",
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 10 || n > 1_000_000_000 {
				return errors.New("must be an integer from 10 to 1000000000")
			}
			c.MaxHistoryEvents = n
			return nil
		}},
	{Both, "DURABLE_EVAL_MEMORY", "eval-memory", strconv.Itoa(workflow.DefaultEvalMemory), "bytes the process's costly expression evaluations may hold at once; more wait their turn (at least 8388608)",
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < workflow.MaxResultSize {
				return fmt.Errorf("must be an integer of at least %d", workflow.MaxResultSize)
			}
			c.EvalMemory = n
			return nil
		}},
	{Worker, "DURABLE_METRICS_ADDR", "metrics-addr", "", "address the worker serves its Prometheus metrics on (/metrics); none: off",
		optional(hostPort(func(c *Config) *string { return &c.MetricsAddr }))},
	{Both, "DURABLE_PPROF_ADDR", "pprof-addr", "", "address to serve Go's profiles (/debug/pprof/) on, apart from the API; none: not served. Keep it on loopback: the profiles show the process's internals",
		optional(hostPort(func(c *Config) *string { return &c.PprofAddr }))},
}

// concealed are the settings whose values may hold credentials (a
// password in DATABASE_URL): -h shows their built-in defaults, never the
// environment's values.
var concealed = map[string]bool{"DATABASE_URL": true, "DURABLE_API_KEYS": true, "DURABLE_SIGNING_SECRET": true}

func hostPort(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("not a host:port: %w", err)
		}
		*field(c) = v
		return nil
	}
}

// optional lets an empty value mean "off" for a setting whose values set
// checks.
func optional(set func(*Config, string) error) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		return set(c, v)
	}
}

func positiveDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("must be a positive duration such as 500ms or 30s")
		}
		*field(c) = d
		return nil
	}
}

func positiveInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errors.New("must be a positive integer")
		}
		*field(c) = n
		return nil
	}
}

// ErrHelp is returned by [Load] when -h or -help was asked for; the usage
// has been printed.
var ErrHelp = flag.ErrHelp

// ErrVersion is returned by [Load] when -version was asked for; the caller
// prints the version (see
// [github.com/durablehq/durable/internal/version.Line]) and exits.
var ErrVersion = errors.New("version requested")

// Load reads the configuration of program (API or Worker) from the
// environment (getenv) and the command-line args, flags taking precedence.
// Only the settings that apply to program are read and have flags; the
// others keep their defaults, so a deployment may give both programs one
// environment. Load validates every value and reports all problems at once.
func Load(program Program, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet(program.String(), flag.ContinueOnError)
	fs.SetOutput(usage)
	values := make([]*string, len(settings))
	for i, s := range settings {
		v := s.def
		if s.programs&program == 0 {
			values[i] = &v
			continue
		}
		if e := getenv(s.env); e != "" && !concealed[s.env] {
			v = e
		}
		values[i] = fs.String(s.flag, v, s.help+" ($"+s.env+")")
	}
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(usage, "%s\nEvery flag but -h and -version mirrors an environment variable; the flag wins.\n\n", synopses[program])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if *showVersion {
		return Config{}, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for i, s := range settings {
		if !concealed[s.env] || s.programs&program == 0 || given[s.flag] {
			continue
		}
		if e := getenv(s.env); e != "" {
			*values[i] = e
		}
	}
	var c Config
	var errs []error
	for i, s := range settings {
		if err := s.set(&c, *values[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s (-%s): %w", s.env, s.flag, err))
		}
	}
	return c, errors.Join(errs...)
}

// parseAPIKeys reads DURABLE_API_KEYS: keys separated by spaces, or
// file:PATH naming a file with one key, or one sha256:<hex> hash, per line
// (blank lines and lines starting with # are ignored). Only hashes are kept.
func parseAPIKeys(v string) ([][sha256.Size]byte, error) {
	var entries []string
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read key file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				entries = append(entries, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read key file: %w", err)
		}
	} else {
		entries = strings.Fields(v)
	}
	var hashes [][sha256.Size]byte
	for i, e := range entries {
		if h, ok := strings.CutPrefix(e, "sha256:"); ok {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("entry %d: sha256: must be followed by 64 hex digits", i+1)
			}
			hashes = append(hashes, [sha256.Size]byte(b))
			continue
		}
		if len(e) < 16 {
			return nil, fmt.Errorf("entry %d: an API key must be at least 16 characters", i+1)
		}
		hashes = append(hashes, sha256.Sum256([]byte(e)))
	}
	return hashes, nil
}

// NewLogger returns the logger the configuration asks for, writing to w.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// PublicBaseURL returns the base URL of callback URLs: DURABLE_PUBLIC_URL,
// or the API's listen address when it is not set.
func (c Config) PublicBaseURL() string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	return "http://" + c.Addr
}

// DefinitionLimits returns the limits of workflow definitions the
// configuration sets.
func (c Config) DefinitionLimits() workflow.Limits {
	return workflow.Limits{MaxBytes: c.MaxDefinitionBytes, MaxDepth: c.MaxDefinitionDepth, MaxSteps: c.MaxDefinitionSteps}
}
