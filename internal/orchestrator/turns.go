package orchestrator

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
)

// runTurns lets one transaction per run at a time, within this process,
// lock the run's row, and records the transitions that waited for their
// turn meanwhile together. The lanes of a run take turns on that row
// anyway: without turns, a run with many lanes in flight would hold most of
// the pool's connections waiting for its own row; without recording them
// together, a foreach would move at one commit per item.
type runTurns struct {
	mu sync.Mutex
	// queues holds, for each run with a transaction in flight, the
	// transitions waiting for the next one.
	queues map[uuid.UUID][]*turn
}

// turn is one transition of a run, under the lease of its work item.
type turn struct {
	ctx  context.Context
	item postgres.WorkItem
	fn   func(ctx context.Context, tx *postgres.Tx) error
	// lane is set when fn records the success of a lane's last step and
	// begins with its statement (see [laneStep]).
	lane *laneStep
	err  error
	// done receives nil once the transition was recorded (or failed: see
	// err), or the batch of turns its goroutine records next.
	done chan []*turn
}

// join queues t behind the run's transaction in flight and returns nil, or,
// when none is, returns the batch of t alone for the caller to record now.
func (rt *runTurns) join(run uuid.UUID, t *turn) []*turn {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.queues == nil {
		rt.queues = map[uuid.UUID][]*turn{}
	}
	if q, busy := rt.queues[run]; busy {
		rt.queues[run] = append(q, t)
		return nil
	}
	rt.queues[run] = nil
	return []*turn{t}
}

// next takes the turns that queued while a batch was recorded, or ends the
// run's turns when none did.
func (rt *runTurns) next(run uuid.UUID) []*turn {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	q := rt.queues[run]
	if len(q) == 0 {
		delete(rt.queues, run)
		return nil
	}
	rt.queues[run] = nil
	return q
}

// inTurn runs fn in a transaction of the run's, as the transition of the
// leased work item: at once when no other transaction of the run is in
// flight in this process, else in the next, together with every transition
// of the run that queued meanwhile. Each runs in a savepoint of its own, so
// a refused one (its lease lost, a stale attempt) is rolled back alone, and
// all commit together; the transaction first locks all their work items in
// id order, as cancellation does, so the two cannot deadlock. fn must do
// everything in tx: its effects outside are the caller's, once inTurn
// returned nil. lane, when set, is the lane step fn records (see
// [core.recordTurns]).
func (s *core) inTurn(ctx context.Context, run uuid.UUID, item postgres.WorkItem, lane *laneStep, fn func(ctx context.Context, tx *postgres.Tx) error) error {
	t := &turn{ctx: ctx, item: item, fn: fn, lane: lane, done: make(chan []*turn, 1)}
	batch := s.turns.join(run, t)
	if batch == nil {
		if batch = <-t.done; batch == nil {
			return t.err
		}
	}
	s.recordTurns(batch)
	// The goroutine of a transition that queued meanwhile records the next
	// batch: this one's caller goes on.
	if next := s.turns.next(run); next != nil {
		next[0].done <- next
	}
	return t.err
}

// recordTurns records a batch of a run's transitions in one transaction and
// tells each but the first (its own caller's) how it went.
//
// The transitions are recorded in the order they queued. The statements
// that begin lane steps queued one after another are sent together, in one
// round trip: the database runs them back to back while nothing waits for
// the worker, and each transition then goes on from what its statement
// did. Those transitions take no savepoint: a refused statement changed
// nothing, and what goes on after one that was not cannot be rolled back
// without it, so when that fails, the whole batch does, and each of its
// callers tries again on its own.
func (s *core) recordTurns(batch []*turn) {
	defer func() {
		for _, t := range batch[1:] {
			t.done <- nil
		}
	}()
	if len(batch) == 1 {
		t := batch[0]
		t.err = s.db.InTx(t.ctx, func(tx *postgres.Tx) error { return t.fn(t.ctx, tx) })
		return
	}
	// The transaction outlives any one caller: a cancelled query would
	// break it for all.
	ctx := context.WithoutCancel(batch[0].ctx)
	ids := make([]int64, len(batch))
	for i, t := range batch {
		ids[i] = t.item.ID
	}
	errs := make([]error, len(batch))
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if err := tx.LockWorkItems(ctx, ids); err != nil {
			return err
		}
		for i, t := range batch {
			if t.lane != nil && t.lane.outcome == nil && t.ctx.Err() == nil {
				if err := sendLaneSteps(ctx, tx, batch[i:]); err != nil {
					return err
				}
			}
			if t.lane != nil && t.lane.outcome != nil {
				errs[i] = t.fn(ctx, tx)
				if errs[i] != nil && t.lane.outcome.Changed() {
					return fmt.Errorf("record a run's transitions together: one of them failed: %v", errs[i])
				}
				continue
			}
			if errs[i] = t.ctx.Err(); errs[i] != nil {
				continue
			}
			errs[i] = tx.Savepoint(ctx, func(sp *postgres.Tx) error { return t.fn(ctx, sp) })
			if fault.Is(errs[i], fault.Unavailable) {
				return errs[i] // the connection is gone: so is the batch
			}
		}
		return nil
	})
	for i, t := range batch {
		t.err = errs[i]
		if t.err == nil {
			t.err = err
		}
	}
}

// sendLaneSteps sends the statements that begin the lane steps at the
// start of turns, up to the first turn that is not one, in one round trip,
// and gives each its outcome; those whose callers are gone are left out.
func sendLaneSteps(ctx context.Context, tx *postgres.Tx, turns []*turn) error {
	var lanes []*laneStep
	var steps []postgres.LaneStepSuccess
	for _, t := range turns {
		if t.lane == nil {
			break
		}
		if t.ctx.Err() == nil {
			lanes = append(lanes, t.lane)
			steps = append(steps, t.lane.success)
		}
	}
	outcomes, err := tx.SucceedLaneSteps(ctx, steps)
	if err != nil {
		return err
	}
	for i, l := range lanes {
		l.outcome = &outcomes[i]
	}
	return nil
}
