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

// Config is the configuration of the API and the worker.
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

	MaxDefinitionBytes int
	MaxDefinitionDepth int
	MaxDefinitionSteps int
	MaxInputBytes      int
	MaxOutputBytes     int
	MaxContextBytes    int
	MaxResponseBytes   int
	// EvalMemory bounds the memory the process's heavy expression
	// evaluations hold at once (see workflow.SetEvalMemory).
	EvalMemory int
}

// setting is one configuration variable: its environment name, the flag that
// mirrors it, its default and how to apply a value.
type setting struct {
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

var settings = []setting{
	{"DATABASE_URL", "database-url", "postgres://postgres@127.0.0.1:5432/durable?sslmode=disable",
		"PostgreSQL connection string", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{"DURABLE_DB_MAX_CONNS", "db-max-conns", "16", "most PostgreSQL connections the process opens (a pool_max_conns in DATABASE_URL wins)",
		positiveInt(func(c *Config) *int { return &c.DBMaxConns })},
	{"DURABLE_ADDR", "addr", "127.0.0.1:8080", "API listen address",
		func(c *Config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("not a host:port: %w", err)
			}
			c.Addr = v
			return nil
		}},
	{"DURABLE_PUBLIC_URL", "public-url", "", "base URL step endpoints use for callbacks (default http://<DURABLE_ADDR>)",
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
	{"DURABLE_API_KEYS", "api-keys", "", "accepted API keys, space-separated, or file:PATH of a file with one key or sha256:<hex> hash per line; none: development mode, open API",
		func(c *Config, v string) error {
			hashes, err := parseAPIKeys(v)
			c.APIKeyHashes = hashes
			return err
		}},
	{"DURABLE_SIGNING_SECRET", "signing-secret", "", "Standard Webhooks secrets (whsec_…), space-separated for rotation, the first signs; none: a development secret generated once and stored in the database",
		func(c *Config, v string) error { c.SigningSecret = v; return nil }},
	{"DURABLE_ALLOW_HOSTS", "allow-hosts", "127.0.0.0/8 ::1", "CIDRs and host names steps may call despite the private-address rule (space- or comma-separated); replaces the default",
		func(c *Config, v string) error {
			c.AllowHosts = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
			return nil
		}},
	// Steps in flight mostly wait on their endpoints, and the database pool
	// bounds the work they make for PostgreSQL, so a worker holds many: a
	// burst of new runs gets its first steps at once rather than waiting
	// for a slot.
	{"DURABLE_WORKER_CONCURRENCY", "worker-concurrency", strconv.Itoa(min(512*runtime.NumCPU(), 4096)), "steps a worker runs at once",
		positiveInt(func(c *Config) *int { return &c.WorkerConcurrency })},
	{"DURABLE_POLL_INTERVAL", "poll-interval", "1s", "how often a worker looks for due work without a notification",
		positiveDuration(func(c *Config) *time.Duration { return &c.PollInterval })},
	{"DURABLE_SHUTDOWN_GRACE", "shutdown-grace", "30s", "how long a stopping worker lets steps in flight finish",
		positiveDuration(func(c *Config) *time.Duration { return &c.ShutdownGrace })},
	{"DURABLE_LEASE_MARGIN", "lease-margin", "30s", "how much longer than a step's timeout a worker holds its work; a dead worker's step is retried after timeout + margin",
		positiveDuration(func(c *Config) *time.Duration { return &c.LeaseMargin })},
	{"DURABLE_WAIT_TIMEOUT", "wait-timeout", "168h", "how long a wait for events or a person may last when its definition names no timeout",
		positiveDuration(func(c *Config) *time.Duration { return &c.WaitTimeout })},
	{"DURABLE_LOG_LEVEL", "log-level", "info", "debug, info, warn or error",
		func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{"DURABLE_LOG_FORMAT", "log-format", "text", "text or json",
		func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return errors.New("must be text or json")
			}
			c.LogFormat = v
			return nil
		}},
	{"DURABLE_MAX_DEFINITION_BYTES", "max-definition-bytes", strconv.Itoa(workflow.DefaultLimits().MaxBytes), "largest workflow definition accepted",
		positiveInt(func(c *Config) *int { return &c.MaxDefinitionBytes })},
	{"DURABLE_MAX_DEFINITION_DEPTH", "max-definition-depth", strconv.Itoa(workflow.DefaultLimits().MaxDepth), "deepest nesting of steps in a definition",
		positiveInt(func(c *Config) *int { return &c.MaxDefinitionDepth })},
	{"DURABLE_MAX_DEFINITION_STEPS", "max-definition-steps", strconv.Itoa(workflow.DefaultLimits().MaxSteps), "most steps in a definition, nested ones included",
		positiveInt(func(c *Config) *int { return &c.MaxDefinitionSteps })},
	{"DURABLE_MAX_INPUT_BYTES", "max-input-bytes", strconv.Itoa(workflow.DefaultMaxInputBytes), "largest run input accepted",
		positiveInt(func(c *Config) *int { return &c.MaxInputBytes })},
	{"DURABLE_MAX_OUTPUT_BYTES", "max-output-bytes", strconv.Itoa(workflow.DefaultMaxOutputBytes), "largest step output (and callback body) accepted",
		positiveInt(func(c *Config) *int { return &c.MaxOutputBytes })},
	{"DURABLE_MAX_CONTEXT_BYTES", "max-context-bytes", strconv.Itoa(workflow.DefaultMaxContextBytes), "largest run context",
		positiveInt(func(c *Config) *int { return &c.MaxContextBytes })},
	{"DURABLE_MAX_RESPONSE_BYTES", "max-response-bytes", "1048576", "largest step response body read",
		positiveInt(func(c *Config) *int { return &c.MaxResponseBytes })},
	{"DURABLE_EVAL_MEMORY", "eval-memory", strconv.Itoa(workflow.DefaultEvalMemory), "bytes the process's costly expression evaluations may hold at once; more wait their turn (at least 8388608)",
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < workflow.MaxResultSize {
				return fmt.Errorf("must be an integer of at least %d", workflow.MaxResultSize)
			}
			c.EvalMemory = n
			return nil
		}},
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

// Load reads the configuration of program from the environment (getenv)
// and the command-line args, flags taking precedence. It validates every
// value and reports all problems at once.
func Load(program string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(usage)
	values := make([]*string, len(settings))
	for i, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		values[i] = fs.String(s.flag, v, s.help+" ($"+s.env+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage of %s:\n\nEvery flag mirrors an environment variable; the flag wins.\n\n", program)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
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
