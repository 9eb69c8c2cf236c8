package workflow

import (
	"context"
	"fmt"
	"time"
)

// The bounds of flow control in a definition.
const (
	// MaxConcurrencyLimits is how many concurrency limits a workflow or a
	// step may declare.
	MaxConcurrencyLimits = 4
	// MaxFlowLimit bounds a concurrency limit and a rate limit's tokens.
	MaxFlowLimit = 1_000_000
	// MaxFlowKeyBytes bounds an evaluated key: keys are stored and locked
	// by, and a key built from a whole input would be a mistake.
	MaxFlowKeyBytes = 256
	// MinRatePeriod and MaxRatePeriod bound a rate limit's period.
	MinRatePeriod = 100 * time.Millisecond
	MaxRatePeriod = 24 * time.Hour
	// MaxDebounce bounds a debounce's period and max_wait.
	MaxDebounce = 24 * time.Hour
	// DefaultDebounceWaits is max_wait, when absent, in periods.
	DefaultDebounceWaits = 10
)

// ConcurrencyLimit is at most Limit active runs (on a workflow) or
// attempts in flight (on a call step) for each value of Key.
type ConcurrencyLimit struct {
	Key   *Expr
	Limit int
}

// RateLimit is a token bucket for each value of Key (one bucket when Key
// is nil): Limit requests per Period, Limit of them at once. Name, when
// set, names the buckets so that steps of other workflows share them.
type RateLimit struct {
	Name   string
	Key    *Expr
	Limit  int
	Period Duration
}

// Debounce folds starts of a workflow with the same Key into one run: a
// start within Period of the pending run replaces its input and moves its
// start Period on, but never further than MaxWait after the first start.
type Debounce struct {
	Key     *Expr
	Period  Duration
	MaxWait Duration
}

// FlowKey evaluates a flow-control key to the string it is stored by,
// refusing one longer than [MaxFlowKeyBytes].
func FlowKey(ctx context.Context, key *Expr, a Activation) (string, error) {
	s, err := key.EvalString(ctx, a)
	if err != nil {
		return "", err
	}
	if len(s) > MaxFlowKeyBytes {
		return "", key.fail(fmt.Errorf("the key is %d bytes; at most %d are allowed", len(s), MaxFlowKeyBytes))
	}
	return s, nil
}

// HasFlowLimits reports whether the call step's attempts pass a
// concurrency or rate limit before they are made.
func (c *CallStep) HasFlowLimits() bool {
	return c != nil && (len(c.Concurrency) > 0 || c.RateLimit != nil)
}

// concurrency parses a list of concurrency limits.
func (p *parser) concurrency(n *node, path string, sc scope) []ConcurrencyLimit {
	elems, ok := p.array(n, path)
	if !ok {
		return nil
	}
	if len(elems) == 0 || len(elems) > MaxConcurrencyLimits {
		p.ps.add(path, "must contain 1 to %d limits", MaxConcurrencyLimits)
	}
	var out []ConcurrencyLimit
	for i, e := range elems {
		epath := pointerAt(path, i)
		o := p.object(e, epath)
		if o == nil {
			continue
		}
		var l ConcurrencyLimit
		if n, kpath := o.require("key"); n != nil {
			l.Key = p.exprField(n, kpath, keyType, sc)
		}
		if n, lpath := o.require("limit"); n != nil {
			if v, ok := p.integer(n, lpath, 1, MaxFlowLimit); ok {
				l.Limit = int(v)
			}
		}
		o.finish()
		out = append(out, l)
	}
	return out
}

// rateLimit parses a call step's rate limit.
func (p *parser) rateLimit(n *node, path string, sc scope) *RateLimit {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	r := &RateLimit{}
	if n, npath := o.get("name"); n != nil {
		if s, ok := p.str(n, npath); ok {
			if !workflowNamePattern.MatchString(s) {
				p.ps.add(npath, "must match [a-z0-9][a-z0-9_-]{0,127}")
			}
			r.Name = s
		}
	}
	if n, kpath := o.get("key"); n != nil {
		r.Key = p.exprField(n, kpath, keyType, sc)
	}
	if n, lpath := o.require("limit"); n != nil {
		if v, ok := p.integer(n, lpath, 1, MaxFlowLimit); ok {
			r.Limit = int(v)
		}
	}
	if n, ppath := o.require("period"); n != nil {
		if d, ok := p.duration(n, ppath, false); ok {
			if d < Duration(MinRatePeriod) || d > Duration(MaxRatePeriod) {
				p.ps.add(ppath, "must be from %s to %s", MinRatePeriod, MaxRatePeriod)
			}
			r.Period = d
		}
	}
	o.finish()
	return r
}

// debounce parses a workflow's debounce.
func (p *parser) debounce(n *node, path string) *Debounce {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	d := &Debounce{}
	if n, kpath := o.require("key"); n != nil {
		d.Key = p.exprField(n, kpath, keyType, scope{})
	}
	if n, ppath := o.require("period"); n != nil {
		if v, ok := p.duration(n, ppath, false); ok {
			if v > Duration(MaxDebounce) {
				p.ps.add(ppath, "must be at most %s", MaxDebounce)
			}
			d.Period = v
		}
	}
	d.MaxWait = min(d.Period*DefaultDebounceWaits, Duration(MaxDebounce))
	if n, wpath := o.get("max_wait"); n != nil {
		if v, ok := p.duration(n, wpath, false); ok {
			switch {
			case v > Duration(MaxDebounce):
				p.ps.add(wpath, "must be at most %s", MaxDebounce)
			case v < d.Period:
				p.ps.add(wpath, "must not be shorter than the period (%s)", d.Period)
			}
			d.MaxWait = v
		}
	}
	o.finish()
	return d
}
