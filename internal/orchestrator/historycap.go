package orchestrator

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// endAtHistoryCap ends a run whose next transition would take its history
// past the cap, in tx, instead of making it: the run fails with error code
// history_limit, without compensating (compensations write history too),
// and what it still holds is let go as when it is cancelled — its steps in
// flight end cancelled, its waits close, its queued work goes, its parent
// hears of its end and its children are cancelled. Its history keeps every
// event written so far; run_failed is the last.
func (s *core) endAtHistoryCap(ctx context.Context, tx *postgres.Tx, id uuid.UUID) error {
	if _, err := tx.LockRunWork(ctx, id); err != nil {
		return err
	}
	current, err := tx.GetRun(ctx, id)
	if err != nil {
		return err
	}
	message := fmt.Sprintf("the run's history reached its cap of %d events (DURABLE_MAX_HISTORY_EVENTS); the run stopped there", current.HistoryCap)
	runErr := engine.RunError(message, "history_limit", "", nil)
	run, ok, err := tx.FinishRun(ctx, id, workflow.RunFailed, nil, runErr)
	if err != nil || !ok {
		return err // !ok: it ended meanwhile, and nothing is left to do
	}
	appendHistory(tx, id, workflow.EventRunFailed, "", nil, map[string]any{"error": runErr})
	s.runEnded(ctx, tx, run, workflow.RunFailed, runErr)
	s.endRunSpan(ctx, tx, run)
	return s.releaseInterruptedRun(ctx, tx, run, "cancelled")
}
