package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
	"github.com/durablehq/durable/internal/workflow"
)

// blockedOf decodes a run's blocked column; a value it cannot read is
// taken as nothing holding the run up.
func blockedOf(b []byte) *workflow.Blocked {
	if len(b) == 0 {
		return nil
	}
	var bl workflow.Blocked
	if err := json.Unmarshal(b, &bl); err != nil {
		return nil
	}
	return &bl
}

// FlowLimit is one place to take under a concurrency limit: the key (its
// scope and evaluated value) and the limit.
type FlowLimit struct {
	Key   string
	Limit int
}

func flowArgs(limits []FlowLimit) ([]string, []int32) {
	keys := make([]string, len(limits))
	maxes := make([]int32, len(limits))
	for i, l := range limits {
		keys[i], maxes[i] = l.Key, int32(l.Limit)
	}
	return keys, maxes
}

// EnterRun gives a new run its places under its workflow's concurrency
// limits and reports true; or queues it (status queued, its blocked reason
// set) behind a full key, or behind runs queued before it, and reports
// false: it then begins when [Tx.FinishRun] of another run makes room.
func (tx *Tx) EnterRun(ctx context.Context, runID uuid.UUID, priority int, limits []FlowLimit) (bool, error) {
	keys, maxes := flowArgs(limits)
	entered, err := tx.q.FlowRunEnter(ctx, dbsqlc.FlowRunEnterParams{RunID: runID, Keys: keys, Limits: maxes, Priority: int16(priority)})
	if err != nil {
		return false, fmt.Errorf("enter run %s under its concurrency limits: %w", runID, translate(err))
	}
	return entered, nil
}

// admit begins the queued runs that places freed under keys make room
// for, and wakes the workers when there are any.
func (tx *Tx) admit(ctx context.Context, keys []string) error {
	admitted, err := tx.q.FlowAdmit(ctx, keys)
	if err != nil {
		return fmt.Errorf("admit queued runs: %w", translate(err))
	}
	for _, id := range admitted {
		tx.AppendHistory(NewHistoryEvent{RunID: id, Type: workflow.EventRunAdmitted})
	}
	if len(admitted) > 0 {
		return tx.Notify(ctx)
	}
	return nil
}

// EnterStep takes the places of a step execution's attempt under its
// step's concurrency limits, held until [Tx.LeaveStep] or until lease from
// now (a dead worker's places come back then). When a key is full it
// takes nothing and returns that key.
func (tx *Tx) EnterStep(ctx context.Context, execID, runID uuid.UUID, limits []FlowLimit, lease time.Duration) (string, error) {
	keys, maxes := flowArgs(limits)
	full, err := tx.q.FlowStepEnter(ctx, dbsqlc.FlowStepEnterParams{
		Holder: execID, RunID: runID, Keys: keys, Limits: maxes, LeaseMs: lease.Milliseconds(),
	})
	if err != nil {
		return "", fmt.Errorf("enter step under its concurrency limits: %w", translate(err))
	}
	return full, nil
}

// LeaveStep gives back the places a step execution's attempt holds.
func (tx *Tx) LeaveStep(ctx context.Context, execID uuid.UUID) error {
	if _, err := tx.q.FlowSlotDeleteByHolder(ctx, execID); err != nil {
		return fmt.Errorf("leave step's concurrency limits: %w", translate(err))
	}
	return nil
}

// TakeToken takes a token from a rate limit's bucket (limit tokens,
// refilled over period) and returns 0, or takes nothing and returns how
// long until a token is there.
func (tx *Tx) TakeToken(ctx context.Context, key string, limit int, period time.Duration) (time.Duration, error) {
	ms, err := tx.q.FlowTake(ctx, dbsqlc.FlowTakeParams{Key: key, MaxTokens: int32(limit), PeriodMs: period.Milliseconds()})
	if err != nil {
		return 0, fmt.Errorf("take a token of rate limit %s: %w", key, translate(err))
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// PauseBucket empties a rate limit's bucket and gives no token for d: its
// endpoint answered 429 with Retry-After.
func (tx *Tx) PauseBucket(ctx context.Context, key string, d time.Duration) error {
	if err := tx.q.FlowBucketPause(ctx, dbsqlc.FlowBucketPauseParams{Key: key, PauseMs: d.Milliseconds()}); err != nil {
		return fmt.Errorf("pause rate limit %s: %w", key, translate(err))
	}
	return nil
}

// SetRunBlocked records why a run is not moving (nil: nothing holds it up).
func (tx *Tx) SetRunBlocked(ctx context.Context, runID uuid.UUID, b *workflow.Blocked) error {
	var raw []byte
	if b != nil {
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return fmt.Errorf("encode blocked: %w", err)
		}
	}
	if err := tx.q.RunSetBlocked(ctx, dbsqlc.RunSetBlockedParams{ID: runID, Blocked: raw}); err != nil {
		return fmt.Errorf("set run blocked: %w", translate(err))
	}
	return nil
}

// Debounce folds a start of a workflow into the run pending under its
// debounce key when that run has not begun: its input is replaced and its
// start put off by period, no further than maxWait after the first start.
// It returns that run's id, or uuid.Nil when there is none (the caller
// starts a run and records it with [Tx.RecordDebounce]).
func (tx *Tx) Debounce(ctx context.Context, workflowName, key string, input json.RawMessage, period, maxWait time.Duration) (uuid.UUID, error) {
	id, err := tx.q.FlowDebounce(ctx, dbsqlc.FlowDebounceParams{
		WorkflowName: workflowName, Key: key, Input: input, PeriodMs: period.Milliseconds(), MaxWaitMs: maxWait.Milliseconds(),
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("debounce a start of %s: %w", workflowName, translate(err))
	}
	return id, nil
}

// RecordDebounce records the run that later starts with a debounce key
// fold into.
func (tx *Tx) RecordDebounce(ctx context.Context, workflowName, key string, runID uuid.UUID) error {
	if err := tx.q.FlowDebounceRecord(ctx, dbsqlc.FlowDebounceRecordParams{WorkflowName: workflowName, Key: key, RunID: runID}); err != nil {
		return fmt.Errorf("record debounce of %s: %w", workflowName, translate(err))
	}
	return nil
}

// FlowHeld counts what flow control holds up now, for the metrics: runs
// queued under their workflows' limits, and runs whose step waits for a
// concurrency limit or is throttled by a rate limit.
func (db *DB) FlowHeld(ctx context.Context) (queued, concurrency, throttled int64, err error) {
	r, err := db.q.FlowStats(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count what flow control holds: %w", translate(err))
	}
	return r.Queued, r.Concurrency, r.Throttled, nil
}

// InsertPendingStep creates a call step's execution whose first attempt
// waits for its flow-control limits: pending at attempt 0. The caller
// points its work item at attempt 1.
func (tx *Tx) InsertPendingStep(ctx context.Context, runID uuid.UUID, n NewStepExecution) error {
	if err := tx.q.StepExecutionInsertPending(ctx, dbsqlc.StepExecutionInsertPendingParams{
		ID: n.ID, RunID: runID, ParentKey: parentKey(n.ParentKey), StepKey: n.Key, StepName: n.Name, WebhookID: n.WebhookID, Input: n.Input,
	}); err != nil {
		return fmt.Errorf("insert pending step %s: %w", n.Key, translate(err))
	}
	return nil
}
