// Package orchestrator holds Durable's use cases: creating workflow versions,
// starting, reading and cancelling runs, and (with the worker) advancing them.
// Every method that changes state does so in exactly one transaction.
package orchestrator

import (
	"log/slog"
	"sync"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// Limits bound what clients may send.
type Limits struct {
	Definition    workflow.Limits
	MaxInputBytes int // a run's input
}

// DefaultLimits returns the limits DESIGN.md names as defaults.
func DefaultLimits() Limits {
	return Limits{Definition: workflow.DefaultLimits(), MaxInputBytes: 256 << 10}
}

// Service runs Durable's use cases against the database.
type Service struct {
	db          *postgres.DB
	limits      Limits
	logger      *slog.Logger
	definitions definitionCache
}

// New returns a Service.
func New(db *postgres.DB, limits Limits, logger *slog.Logger) *Service {
	return &Service{db: db, limits: limits, logger: logger}
}

// Limits returns the limits the service enforces.
func (s *Service) Limits() Limits { return s.limits }

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
