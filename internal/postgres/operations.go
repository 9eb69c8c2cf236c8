package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
	"github.com/durablehq/durable/internal/workflow"
)

// RetryStep is what planning a retry needs of a step execution: its
// status and, for a block, how many lanes it opened and has.
type RetryStep struct {
	Status         string
	Started, Total int
}

// RetryChanges are the changes of a run's step executions a retry makes
// (see engine.RetryPlan).
type RetryChanges struct {
	Delete, Lanes []string
	Blocks        []ReopenedBlock
}

// ReopenedBlock is a block that runs again for some lanes, and how many
// items it never opened open now.
type ReopenedBlock struct {
	Key  string
	Open int
}

// StepsForRetry returns what planning a retry of a run needs of its step
// executions, by key.
func (tx *Tx) StepsForRetry(ctx context.Context, runID uuid.UUID) (map[string]RetryStep, error) {
	rows, err := tx.q.StepExecutionListForRetry(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list steps to retry: %w", translate(err))
	}
	out := make(map[string]RetryStep, len(rows))
	for _, r := range rows {
		out[r.StepKey] = RetryStep{Status: r.Status, Started: int(r.LanesStarted), Total: int(r.LanesTotal)}
	}
	return out, nil
}

// RetryRun puts a run in status expected back to running with input and
// context, one attempt more and, with a timeout, a new deadline. It returns
// false, changing nothing, when the run is no longer in that status or its
// history has no room for the retry.
func (tx *Tx) RetryRun(ctx context.Context, id uuid.UUID, expected workflow.RunStatus, input, runContext json.RawMessage, timeout time.Duration) (workflow.Run, bool, error) {
	r, err := tx.q.RunRetry(ctx, dbsqlc.RunRetryParams{
		ID: id, Expected: string(expected), Input: input, Context: runContext, TimeoutMs: timeout.Milliseconds(),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Run{}, false, nil
	}
	if err != nil {
		return workflow.Run{}, false, fmt.Errorf("retry run: %w", translate(err))
	}
	return runFromRow(r), true, nil
}

// ApplyRetry makes the step executions of a run what plan says: the
// executions that run again go with their trees, the lanes and blocks
// that run again are running again, and foreach items never opened open
// as their block's concurrency allows. The work items that go on are the
// caller's to queue.
func (tx *Tx) ApplyRetry(ctx context.Context, runID uuid.UUID, plan RetryChanges) error {
	if len(plan.Delete) > 0 {
		if err := tx.q.StepExecutionDeleteByKeys(ctx, dbsqlc.StepExecutionDeleteByKeysParams{RunID: runID, Keys: plan.Delete}); err != nil {
			return fmt.Errorf("delete retried steps: %w", translate(err))
		}
	}
	if len(plan.Lanes) > 0 {
		if err := tx.q.LaneReopenMany(ctx, dbsqlc.LaneReopenManyParams{RunID: runID, Keys: plan.Lanes}); err != nil {
			return fmt.Errorf("reopen lanes: %w", translate(err))
		}
	}
	for _, b := range plan.Blocks {
		id, err := tx.q.BlockReopen(ctx, dbsqlc.BlockReopenParams{RunID: runID, StepKey: b.Key})
		if err != nil {
			return fmt.Errorf("reopen step %s: %w", b.Key, translate(err))
		}
		if b.Open > 0 {
			if _, err := tx.OpenLanes(ctx, id, b.Open, nil, false); err != nil {
				return err
			}
		}
	}
	return nil
}

type filterJSON struct {
	Workflow      string     `json:"workflow,omitempty"`
	Status        []string   `json:"status,omitempty"`
	Parent        *uuid.UUID `json:"parent,omitempty"`
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
}

func operationFromRow(r dbsqlc.Operation) (workflow.Operation, error) {
	op := workflow.Operation{
		ID: r.ID, Kind: r.Kind, State: r.State, Reason: r.Reason, CreatedBy: r.CreatedBy,
		Matched: r.Matched, Done: r.Done, Skipped: r.Skipped, Failed: r.Failed,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt,
	}
	var f filterJSON
	if err := json.Unmarshal(r.Filter, &f); err != nil {
		return op, fmt.Errorf("decode filter of operation %s: %w", r.ID, err)
	}
	op.Filter = workflow.RunFilter{Workflow: f.Workflow, Parent: f.Parent, CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore}
	for _, s := range f.Status {
		op.Filter.Statuses = append(op.Filter.Statuses, workflow.RunStatus(s))
	}
	if err := json.Unmarshal(r.Failures, &op.Failures); err != nil {
		return op, fmt.Errorf("decode failures of operation %s: %w", r.ID, err)
	}
	if r.CursorCreatedAt != nil && r.CursorID != nil {
		op.Cursor = &workflow.Cursor{CreatedAt: *r.CursorCreatedAt, ID: *r.CursorID}
	}
	return op, nil
}

func operationOrNotFound(r dbsqlc.Operation, err error, id uuid.UUID) (workflow.Operation, error) {
	if err != nil {
		return workflow.Operation{}, notFound(err, "operation %s not found", id)
	}
	return operationFromRow(r)
}

// InsertOperation creates a pending operation.
func (q queries) InsertOperation(ctx context.Context, op workflow.Operation) (workflow.Operation, error) {
	f := filterJSON{Workflow: op.Filter.Workflow, Parent: op.Filter.Parent, CreatedAfter: op.Filter.CreatedAfter, CreatedBefore: op.Filter.CreatedBefore}
	for _, s := range op.Filter.Statuses {
		f.Status = append(f.Status, string(s))
	}
	filter, err := json.Marshal(f)
	if err != nil {
		return workflow.Operation{}, fmt.Errorf("encode filter: %w", err)
	}
	r, err := q.q.OperationInsert(ctx, dbsqlc.OperationInsertParams{ID: op.ID, Kind: op.Kind, Filter: filter, Reason: op.Reason, CreatedBy: op.CreatedBy})
	if err != nil {
		return workflow.Operation{}, fmt.Errorf("insert operation: %w", translate(err))
	}
	return operationFromRow(r)
}

// GetOperation returns an operation.
func (q queries) GetOperation(ctx context.Context, id uuid.UUID) (workflow.Operation, error) {
	r, err := q.q.OperationGet(ctx, id)
	return operationOrNotFound(r, err, id)
}

// ListOperations returns up to limit operations, newest first, after cursor.
func (q queries) ListOperations(ctx context.Context, cursor *workflow.Cursor, limit int) ([]workflow.Operation, error) {
	p := dbsqlc.OperationListParams{Max: int32(limit)}
	if cursor != nil {
		p.CursorCreatedAt, p.CursorID = &cursor.CreatedAt, &cursor.ID
	}
	rows, err := q.q.OperationList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", translate(err))
	}
	out := make([]workflow.Operation, len(rows))
	for i, r := range rows {
		if out[i], err = operationFromRow(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CancelOperation cancels a pending or running operation; false when it
// had finished.
func (q queries) CancelOperation(ctx context.Context, id uuid.UUID) (workflow.Operation, bool, error) {
	r, err := q.q.OperationCancel(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Operation{}, false, nil
	}
	if err != nil {
		return workflow.Operation{}, false, fmt.Errorf("cancel operation: %w", translate(err))
	}
	op, err := operationFromRow(r)
	return op, true, err
}

// ClaimOperation leases the oldest operation to process to owner; false
// when there is none.
func (db *DB) ClaimOperation(ctx context.Context, owner string, lease time.Duration) (workflow.Operation, bool, error) {
	r, err := db.q.OperationClaim(ctx, dbsqlc.OperationClaimParams{Owner: &owner, LeaseMs: lease.Milliseconds()})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Operation{}, false, nil
	}
	if err != nil {
		return workflow.Operation{}, false, fmt.Errorf("claim operation: %w", translate(err))
	}
	op, err := operationFromRow(r)
	return op, true, err
}

// LockOperation locks an operation owner holds and extends its lease;
// false when it was cancelled or its lease taken over.
func (tx *Tx) LockOperation(ctx context.Context, id uuid.UUID, owner string, lease time.Duration) (workflow.Operation, bool, error) {
	r, err := tx.q.OperationLock(ctx, dbsqlc.OperationLockParams{ID: id, Owner: &owner, LeaseMs: lease.Milliseconds()})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Operation{}, false, nil
	}
	if err != nil {
		return workflow.Operation{}, false, fmt.Errorf("lock operation: %w", translate(err))
	}
	op, err := operationFromRow(r)
	return op, true, err
}

func matchParams(f workflow.RunFilter) (workflow *string, statuses []string) {
	if f.Workflow != "" {
		workflow = &f.Workflow
	}
	statuses = make([]string, len(f.Statuses))
	for i, s := range f.Statuses {
		statuses[i] = string(s)
	}
	return workflow, statuses
}

// CountMatching counts the runs f matches among those created before.
func (q queries) CountMatching(ctx context.Context, f workflow.RunFilter, before time.Time) (int64, error) {
	wf, statuses := matchParams(f)
	n, err := q.q.RunCountMatching(ctx, dbsqlc.RunCountMatchingParams{
		CreatedBeforeOp: before, Workflow: wf, Statuses: statuses, Parent: f.Parent, CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore,
	})
	if err != nil {
		return 0, fmt.Errorf("count matching runs: %w", translate(err))
	}
	return n, nil
}

// SetOperationMatched records how many runs an operation matched.
func (tx *Tx) SetOperationMatched(ctx context.Context, id uuid.UUID, matched int64) error {
	if err := tx.q.OperationSetMatched(ctx, dbsqlc.OperationSetMatchedParams{ID: id, Matched: matched}); err != nil {
		return fmt.Errorf("set operation matched: %w", translate(err))
	}
	return nil
}

// MatchingBatch returns the ids of up to max runs that op's filter matches
// after its cursor, with the cursor past them.
func (tx *Tx) MatchingBatch(ctx context.Context, op workflow.Operation, max int) ([]uuid.UUID, *workflow.Cursor, error) {
	wf, statuses := matchParams(op.Filter)
	p := dbsqlc.RunListMatchingBatchParams{
		CreatedBeforeOp: op.CreatedAt, Workflow: wf, Statuses: statuses, Parent: op.Filter.Parent,
		CreatedAfter: op.Filter.CreatedAfter, CreatedBefore: op.Filter.CreatedBefore, Max: int32(max),
	}
	if op.Cursor != nil {
		p.CursorCreatedAt, p.CursorID = &op.Cursor.CreatedAt, &op.Cursor.ID
	}
	rows, err := tx.q.RunListMatchingBatch(ctx, p)
	if err != nil {
		return nil, nil, fmt.Errorf("list matching runs: %w", translate(err))
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	if len(rows) == 0 {
		return nil, op.Cursor, nil
	}
	last := rows[len(rows)-1]
	return ids, &workflow.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// OperationBatch is what a batch of an operation did.
type OperationBatch struct {
	Done, Skipped, Failed int64
	Failures              []workflow.OperationFailure
	Cursor                *workflow.Cursor
}

// RecordOperationBatch counts a batch and moves its operation's cursor.
func (tx *Tx) RecordOperationBatch(ctx context.Context, id uuid.UUID, b OperationBatch) error {
	failures := b.Failures
	if failures == nil {
		failures = []workflow.OperationFailure{}
	}
	raw, err := json.Marshal(failures)
	if err != nil {
		return fmt.Errorf("encode failures: %w", err)
	}
	p := dbsqlc.OperationProgressParams{ID: id, Done: b.Done, Skipped: b.Skipped, Failed: b.Failed, NewFailures: raw}
	if b.Cursor != nil {
		p.CursorCreatedAt, p.CursorID = &b.Cursor.CreatedAt, &b.Cursor.ID
	}
	if err := tx.q.OperationProgress(ctx, p); err != nil {
		return fmt.Errorf("record operation batch: %w", translate(err))
	}
	return nil
}

// FinishOperation marks an operation owner holds succeeded.
func (tx *Tx) FinishOperation(ctx context.Context, id uuid.UUID, owner string) error {
	if err := tx.q.OperationFinish(ctx, dbsqlc.OperationFinishParams{ID: id, Owner: &owner}); err != nil {
		return fmt.Errorf("finish operation: %w", translate(err))
	}
	return nil
}
