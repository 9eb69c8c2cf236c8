package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// Bulk asks for a bulk cancel or retry of the runs a filter matches.
type Bulk struct {
	Kind   string // workflow.OperationCancel or OperationRetry
	Filter workflow.RunFilter
	Reason string
	By     string
}

// errEmptyFilter refuses a bulk request that would match every run.
var errEmptyFilter = fault.WithProblems(fault.Invalid, "the filter is empty: a bulk operation must name the runs it acts on",
	[]fault.Problem{{Path: "/filter", Message: "set at least one of workflow, status, parent, created_after, created_before"}})

// CountBulk counts the runs a bulk request's filter matches now (a dry
// run).
func (s *API) CountBulk(ctx context.Context, b Bulk) (int64, error) {
	if b.Filter.Empty() {
		return 0, errEmptyFilter
	}
	return s.db.CountMatching(ctx, b.Filter, time.Now().Add(time.Hour))
}

// CreateOperation creates a bulk operation for workers to process.
func (s *API) CreateOperation(ctx context.Context, b Bulk) (workflow.Operation, error) {
	if b.Filter.Empty() {
		return workflow.Operation{}, errEmptyFilter
	}
	op, err := s.db.InsertOperation(ctx, workflow.Operation{
		ID: uuid.Must(uuid.NewV7()), Kind: b.Kind, Filter: b.Filter, Reason: b.Reason, CreatedBy: b.By,
	})
	if err != nil {
		return workflow.Operation{}, fmt.Errorf("create %s operation: %w", b.Kind, err)
	}
	return op, nil
}

// GetOperation returns a bulk operation.
func (s *API) GetOperation(ctx context.Context, id uuid.UUID) (workflow.Operation, error) {
	return s.db.GetOperation(ctx, id)
}

// ListOperations returns up to limit operations, newest first, after cursor.
func (s *API) ListOperations(ctx context.Context, cursor *workflow.Cursor, limit int) ([]workflow.Operation, error) {
	return s.db.ListOperations(ctx, cursor, limit)
}

// CancelOperation stops a bulk operation at its next batch; cancelling one
// that has finished is a conflict.
func (s *API) CancelOperation(ctx context.Context, id uuid.UUID) (workflow.Operation, error) {
	op, ok, err := s.db.CancelOperation(ctx, id)
	if err != nil {
		return workflow.Operation{}, err
	}
	if !ok {
		current, err := s.db.GetOperation(ctx, id)
		if err != nil {
			return workflow.Operation{}, err
		}
		return workflow.Operation{}, fault.New(fault.Conflict, "operation %s is %s and cannot be cancelled", id, current.State)
	}
	return op, nil
}

// OperationConfig is how a worker processes bulk operations.
type OperationConfig struct {
	// Rate is the most runs per second one worker cancels or retries.
	Rate int
	// Batch is how many runs one transaction processes.
	Batch int
	// Poll is how often a worker looks for an operation to process.
	Poll time.Duration
	// Lease is how long an operation stays a worker's between batches
	// before another may take it over.
	Lease time.Duration
}

// DefaultBulkRate is the most runs per second a worker cancels or retries
// for bulk operations (DURABLE_BULK_RATE).
const DefaultBulkRate = 500

func (c OperationConfig) withDefaults() OperationConfig {
	if c.Rate <= 0 {
		c.Rate = DefaultBulkRate
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 15 * time.Second
	}
	return c
}

// processOperations processes bulk operations until ctx ends: it claims
// one, processes it batch by batch, and looks again.
func (w *Worker) processOperations(ctx context.Context, cfg OperationConfig) {
	for {
		op, ok, err := w.svc.db.ClaimOperation(ctx, w.svc.workerID, cfg.Lease)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.svc.logger.WarnContext(ctx, "operations: claim failed", "error", err)
		case ok:
			w.processOperation(ctx, cfg, op)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.Poll):
		}
	}
}

// processOperation processes a claimed operation's batches until it has
// no run left, is cancelled, or its lease is lost.
func (w *Worker) processOperation(ctx context.Context, cfg OperationConfig, op workflow.Operation) {
	if op.Cursor == nil && op.Matched == 0 {
		n, err := w.svc.db.CountMatching(ctx, op.Filter, op.CreatedAt)
		if err == nil {
			err = w.svc.db.InTx(ctx, func(tx *postgres.Tx) error { return tx.SetOperationMatched(ctx, op.ID, n) })
		}
		if err != nil {
			w.svc.logger.WarnContext(ctx, "operations: count failed", "operation", op.ID, "error", err)
			return
		}
	}
	for ctx.Err() == nil {
		began := time.Now()
		n, more, err := w.operationBatch(ctx, cfg, op.ID)
		if errors.Is(err, errLeaseLost) {
			return
		}
		if err != nil {
			w.svc.logger.WarnContext(ctx, "operations: batch failed; it is tried again", "operation", op.ID, "error", err)
			n = cfg.Batch
		}
		if !more && err == nil {
			w.svc.logger.InfoContext(ctx, "operations: finished", "operation", op.ID, "kind", op.Kind)
			return
		}
		// The rate bounds what the batch did: it waits as long as its runs
		// take at the rate, less the time it took.
		pause := time.Duration(n)*time.Second/time.Duration(max(cfg.Rate, 1)) - time.Since(began)
		select {
		case <-ctx.Done():
		case <-time.After(max(pause, 0)):
		}
	}
}

// operationBatch processes the operation's next batch of runs in one
// transaction, with its cursor and counts, and finishes the operation when
// no run is left. It returns how many runs it took and whether more may
// follow; errLeaseLost when the operation was cancelled or taken over.
func (w *Worker) operationBatch(ctx context.Context, cfg OperationConfig, id uuid.UUID) (n int, more bool, err error) {
	err = w.svc.db.InTx(ctx, func(tx *postgres.Tx) error {
		op, ok, err := tx.LockOperation(ctx, id, w.svc.workerID, cfg.Lease)
		if err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		ids, cursor, err := tx.MatchingBatch(ctx, op, cfg.Batch)
		if err != nil {
			return err
		}
		n, more = len(ids), len(ids) == cfg.Batch
		if len(ids) == 0 {
			return tx.FinishOperation(ctx, id, w.svc.workerID)
		}
		batch := postgres.OperationBatch{Cursor: cursor}
		for _, runID := range ids {
			err := tx.Savepoint(ctx, func(tx *postgres.Tx) error { return w.applyOperation(ctx, tx, op, runID) })
			switch {
			case err == nil:
				batch.Done++
			case fault.Is(err, fault.Conflict):
				batch.Skipped++
			case fault.Is(err, fault.Unavailable):
				return err
			default:
				batch.Failed++
				if len(op.Failures)+len(batch.Failures) < workflow.MaxOperationFailures {
					batch.Failures = append(batch.Failures, workflow.OperationFailure{RunID: runID, Message: err.Error()})
				}
			}
		}
		return tx.RecordOperationBatch(ctx, id, batch)
	})
	return n, more, err
}

// applyOperation cancels or retries one run for an operation; a run that
// cannot be (it finished, it is not retryable) is a conflict: skipped.
func (w *Worker) applyOperation(ctx context.Context, tx *postgres.Tx, op workflow.Operation, runID uuid.UUID) error {
	if op.Kind == workflow.OperationRetry {
		_, err := w.svc.retryRunTx(ctx, tx, runID, RetryRun{Reason: op.Reason, By: op.CreatedBy + " (operation " + op.ID.String() + ")"})
		return err
	}
	message := "the run was cancelled by operation " + op.ID.String()
	if op.Reason != "" {
		message += ": " + op.Reason
	}
	runErr, err := json.Marshal(workflow.RunError{Message: message, Code: "cancelled"})
	if err != nil {
		return fmt.Errorf("encode run error: %w", err)
	}
	_, err = w.svc.cancelRunTx(ctx, tx, runID, op.Reason, runErr)
	return err
}
