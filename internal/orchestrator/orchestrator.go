// Package orchestrator holds Durable's use cases: creating workflow versions,
// starting, reading and cancelling runs, and (with the worker) advancing them.
// Every method that changes state does so in exactly one transaction.
package orchestrator

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// Limits bound what clients and step endpoints may send, and what a run
// may write.
type Limits struct {
	Definition      workflow.Limits
	MaxInputBytes   int // a run's input
	MaxOutputBytes  int // a step's output, and a step's rendered input
	MaxContextBytes int // a run's context
	// MaxHistoryEvents caps the events of the history of each run started
	// (0: the default); a run that would pass it fails (see
	// [postgres.DB.InTx]).
	MaxHistoryEvents int
}

// DefaultLimits returns the limits DESIGN.md names as defaults.
func DefaultLimits() Limits {
	return Limits{
		Definition:       workflow.DefaultLimits(),
		MaxInputBytes:    workflow.DefaultMaxInputBytes,
		MaxOutputBytes:   workflow.DefaultMaxOutputBytes,
		MaxContextBytes:  workflow.DefaultMaxContextBytes,
		MaxHistoryEvents: workflow.DefaultMaxHistoryEvents,
	}
}

// core is what the API's use cases and the worker's engine share: the
// database, the limits, the signing secrets and the definitions read.
type core struct {
	db          *postgres.DB
	limits      Limits
	logger      *slog.Logger
	definitions definitionCache

	secrets     *signing.Secrets
	publicURL   string
	workerID    string
	leaseMargin time.Duration
	claims      *postgres.DB
	// turns queue this process's transactions that lock a run's row.
	turns runTurns

	defaultWaitTimeout time.Duration
	// obs is told what the engine did, once committed.
	obs Observer
	// tracer makes the spans of runs, steps and attempts (tracing.go).
	tracer trace.Tracer
}

// Option configures an [API] or a [Worker].
type Option func(*core)

// WithSigning gives the service the secrets that sign step requests and
// callback tokens, and the public base URL of callback URLs. Without it the
// service can neither execute steps nor accept callbacks.
func WithSigning(secrets *signing.Secrets, publicURL string) Option {
	return func(s *core) {
		s.secrets = secrets
		s.publicURL = strings.TrimRight(publicURL, "/")
	}
}

// WithWorkerID names the process in the attempts it makes.
func WithWorkerID(id string) Option {
	return func(s *core) { s.workerID = id }
}

// WithLeaseMargin sets how much longer than a step's timeout a worker holds
// the step's work before another worker may take it over.
func WithLeaseMargin(d time.Duration) Option {
	return func(s *core) { s.leaseMargin = d }
}

// WithDefaultWaitTimeout sets how long a wait for events or a person may
// last when its definition names no timeout.
func WithDefaultWaitTimeout(d time.Duration) Option {
	return func(s *core) { s.defaultWaitTimeout = d }
}

// WithClaimPool gives the worker's claiming and listening connections of
// their own. Claims start new runs' first steps; sharing a pool with many
// steps in flight, they would queue behind those steps' transactions, and
// runs started in a burst would wait seconds for their first step.
func WithClaimPool(db *postgres.DB) Option {
	return func(s *core) { s.claims = db }
}

// claimDB is the pool claims and notifications use.
func (s *core) claimDB() *postgres.DB {
	if s.claims != nil {
		return s.claims
	}
	return s.db
}

// defaultLeaseMargin is how much longer than a step's timeout a worker holds
// its work: the time to record the result.
const defaultLeaseMargin = 30 * time.Second

// API runs the use cases of Durable's HTTP API against the database:
// definitions, runs, callbacks, events, people's input and schedules. The
// worker's engine is [Worker].
type API struct{ *core }

// NewAPI returns the API's use cases. It ends the runs of db that reach
// their history cap (see [postgres.DB.OnHistoryCap]).
func NewAPI(db *postgres.DB, limits Limits, logger *slog.Logger, opts ...Option) *API {
	return &API{newCore(db, limits, logger, opts...)}
}

func newCore(db *postgres.DB, limits Limits, logger *slog.Logger, opts ...Option) *core {
	if limits.MaxHistoryEvents <= 0 {
		limits.MaxHistoryEvents = workflow.DefaultMaxHistoryEvents
	}
	s := &core{db: db, limits: limits, logger: logger, leaseMargin: defaultLeaseMargin, defaultWaitTimeout: DefaultWaitTimeout, obs: unobserved{}, tracer: defaultTracer()}
	for _, o := range opts {
		o(s)
	}
	// A transaction of a run that would pass its history cap ends the run,
	// whichever pool it goes through.
	db.OnHistoryCap(s.endAtHistoryCap)
	if s.claims != nil {
		s.claims.OnHistoryCap(s.endAtHistoryCap)
	}
	return s
}

// Limits returns the limits the service enforces.
func (s *API) Limits() Limits { return s.limits }

// definitionCache keeps parsed definitions of workflow versions. Versions are
// immutable, so an entry never goes stale; the cache is bounded by dropping
// an arbitrary entry when full.
type definitionCache struct {
	mu      sync.Mutex
	entries map[versionKey]*workflow.Definition
}

type versionKey struct {
	name    string
	version int
}

const definitionCacheSize = 1024

func (c *definitionCache) get(k versionKey) (*workflow.Definition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.entries[k]
	return d, ok
}

func (c *definitionCache) put(k versionKey, d *workflow.Definition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[versionKey]*workflow.Definition)
	}
	if len(c.entries) >= definitionCacheSize {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = d
}
