package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
)

// What retention deletes at once, and how it paces itself.
const (
	// retentionBatch bounds the runs deleted in one statement, with their
	// steps, attempts and history: a transaction of a fraction of a second,
	// which holds the locks of a few thousand rows no other transaction
	// wants.
	retentionBatch = 500
	// retentionIdle is how often a worker looks for expired runs once it
	// found none to delete.
	retentionIdle = time.Minute
	// retentionPauses is how many times as long as a full batch took a
	// worker pauses before the next (see [Worker.drain]).
	retentionPauses = 3
	// retentionMinPause is the least pause between two full batches.
	retentionMinPause = 10 * time.Millisecond
	// eventBatch bounds the events, and the schedule firings, deleted in
	// one statement.
	eventBatch = 1000
	// scheduleFiresKept is how many firings of each schedule are kept: far
	// more than GET /v1/schedules/{id} shows, and a bound on the firing
	// history of a schedule that fires every second.
	scheduleFiresKept = 1000
)

// retain deletes what retention lets go, until ctx ends: finished runs past
// their retention (looked at every retentionIdle, or as often as the
// retention itself when shorter), and, every eventCleanupInterval, events
// older than any look-back window and schedule firings beyond the newest
// scheduleFiresKept of their schedule. Any number of workers retain side
// by side: each batch skips the rows another holds.
func (w *Worker) retain(ctx context.Context) {
	idle := min(retentionIdle, w.cfg.Retention)
	lastCleanup := time.Now()
	for ctx.Err() == nil {
		w.drain(ctx, "expired runs", retentionBatch, func(ctx context.Context) (int, error) {
			return w.svc.db.DeleteExpiredRuns(ctx, w.cfg.Retention, retentionBatch)
		})
		if time.Since(lastCleanup) >= eventCleanupInterval {
			w.drain(ctx, "old events", eventBatch, func(ctx context.Context) (int, error) {
				return w.svc.db.DeleteOldEvents(ctx, eventRetention, eventBatch)
			})
			w.drain(ctx, "old schedule firings", eventBatch, func(ctx context.Context) (int, error) {
				return w.svc.db.DeleteOldScheduleFires(ctx, scheduleFiresKept, eventBatch)
			})
			lastCleanup = time.Now()
		}
		pause(ctx, idle)
	}
}

// drain deletes with del, batch after batch, until a batch is not full.
// After each full batch it pauses retentionPauses times as long as the
// batch took, so that deleting takes at most a quarter of one connection's
// time and slows the database's other work little: a busy database makes
// batches slower, and the pauses longer with them. Pausing only as long as
// the batch cost the hot path a quarter of its steps (docs/benchmarks.md).
func (w *Worker) drain(ctx context.Context, what string, batch int, del func(context.Context) (int, error)) {
	start, total := time.Now(), 0
	for ctx.Err() == nil {
		began := time.Now()
		n, err := del(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.svc.logger.WarnContext(ctx, "retention: delete "+what, "error", err)
			}
			break
		}
		total += n
		if n < batch {
			break
		}
		pause(ctx, max(retentionPauses*time.Since(began), retentionMinPause))
	}
	if total > 0 {
		w.svc.logger.InfoContext(ctx, "retention: deleted "+what, "count", total, "took", time.Since(start).Round(time.Millisecond))
	}
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// DeleteRun deletes a finished run with everything of it: its steps,
// attempts, history, waits and work. A run that has not finished (it is
// pending, running, waiting or compensating) is a conflict, and so is a
// finished run with a child run still going; a child run outlives its
// deleted parent, without the link.
func (s *API) DeleteRun(ctx context.Context, id uuid.UUID) error {
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		status, activeChildren, err := tx.LockRunToDelete(ctx, id)
		switch {
		case err != nil:
			return err
		case !status.Terminal():
			return fault.New(fault.Conflict, "run %s is %s: only a finished run can be deleted (cancel it first)", id, status)
		case activeChildren:
			return fault.New(fault.Conflict, "run %s has child runs that have not finished: delete it once they have", id)
		}
		return tx.DeleteRun(ctx, id)
	})
	if err != nil {
		return fmt.Errorf("delete run %s: %w", id, err)
	}
	s.logger.InfoContext(ctx, "run deleted", "run_id", id)
	return nil
}
