package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
)

// WorkCompensate makes an attempt at the compensation of a succeeded step
// execution of a compensating run.
const WorkCompensate = "compensate"

// ToCompensate is a step execution whose compensation is due.
type ToCompensate struct {
	ID   uuid.UUID
	Name string
}

// NextToCompensate returns the run's most recently finished step execution
// among the named steps that succeeded and is not compensated yet; false
// when none is left.
func (tx *Tx) NextToCompensate(ctx context.Context, runID uuid.UUID, names []string) (ToCompensate, bool, error) {
	r, err := tx.q.StepExecutionNextToCompensate(ctx, dbsqlc.StepExecutionNextToCompensateParams{RunID: runID, Names: names})
	if errors.Is(err, pgx.ErrNoRows) {
		return ToCompensate{}, false, nil
	}
	if err != nil {
		return ToCompensate{}, false, fmt.Errorf("find the next step to compensate: %w", translate(err))
	}
	return ToCompensate{ID: r.ID, Name: r.StepName}, true, nil
}

// PrepareCompensation notes that attempt of a succeeded step execution's
// compensation is being prepared, and returns how many of its attempts
// were lost with their workers so far; false when the execution is no
// longer succeeded.
func (tx *Tx) PrepareCompensation(ctx context.Context, id uuid.UUID, attempt int) (int, bool, error) {
	lost, err := tx.q.StepExecutionPrepareCompensation(ctx, dbsqlc.StepExecutionPrepareCompensationParams{Attempt: int32(attempt), ID: id})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("prepare compensation: %w", translate(err))
	}
	return int(lost), true, nil
}

// SetCompensation records the outcome of a succeeded step execution's
// compensation: status compensated or compensation_failed (with stepErr).
// It returns false when the execution is no longer one that succeeded.
func (tx *Tx) SetCompensation(ctx context.Context, id uuid.UUID, status string, stepErr json.RawMessage) (bool, error) {
	n, err := tx.q.StepExecutionSetCompensation(ctx, dbsqlc.StepExecutionSetCompensationParams{ID: id, Status: status, Error: stepErr})
	if err != nil {
		return false, fmt.Errorf("record a compensation: %w", translate(err))
	}
	return n == 1, nil
}

// StartCompensating moves a failing run to compensating with its failure
// as its error. It returns false when the run has ended already.
func (tx *Tx) StartCompensating(ctx context.Context, runID uuid.UUID, runErr json.RawMessage) (bool, error) {
	n, err := tx.q.RunStartCompensating(ctx, dbsqlc.RunStartCompensatingParams{ID: runID, Error: runErr})
	if err != nil {
		return false, fmt.Errorf("start compensating: %w", translate(err))
	}
	return n == 1, nil
}
