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

// Work kinds: what a work item asks a worker to do.
const (
	WorkAdvance     = "advance"      // start the run's next step
	WorkInvoke      = "invoke"       // make an attempt at a step execution
	WorkStepTimeout = "step_timeout" // a parked step's deadline
	WorkRunTimeout  = "run_timeout"  // the run's deadline
	WorkChildDone   = "child_done"   // a child run the run waits for ended
)

// WorkItem is a unit of queued work for one run.
type WorkItem struct {
	ID              int64
	RunID           uuid.UUID
	Kind            string
	StepExecutionID *uuid.UUID
	Attempt         int
	AfterStep       string
	LeaseToken      uuid.UUID
	Claims          int
}

// WorkTarget is what a work item is pointed at next.
type WorkTarget struct {
	Kind            string
	StepExecutionID *uuid.UUID
	Attempt         int    // with StepExecutionID
	AfterStep       string // for WorkAdvance: continue after this step; "" for the first
}

func (t WorkTarget) params() (attempt *int32, afterStep *string) {
	if t.StepExecutionID != nil {
		a := int32(t.Attempt)
		attempt = &a
	}
	if t.AfterStep != "" {
		afterStep = &t.AfterStep
	}
	return attempt, afterStep
}

func workItemFromRow(r dbsqlc.WorkItem) WorkItem {
	w := WorkItem{ID: r.ID, RunID: r.RunID, Kind: r.Kind, StepExecutionID: r.StepExecutionID, Claims: int(r.Claims)}
	if r.Attempt != nil {
		w.Attempt = int(*r.Attempt)
	}
	if r.AfterStep != nil {
		w.AfterStep = *r.AfterStep
	}
	if r.LeaseToken != nil {
		w.LeaseToken = *r.LeaseToken
	}
	return w
}

// ClaimWork leases up to max due work items to owner for lease.
func (tx *Tx) ClaimWork(ctx context.Context, owner string, max int, lease time.Duration) ([]WorkItem, error) {
	rows, err := tx.q.WorkItemClaim(ctx, dbsqlc.WorkItemClaimParams{Owner: &owner, LeaseMs: lease.Milliseconds(), Max: int32(max)})
	if err != nil {
		return nil, fmt.Errorf("claim work: %w", translate(err))
	}
	out := make([]WorkItem, len(rows))
	for i, r := range rows {
		out[i] = workItemFromRow(r)
	}
	return out, nil
}

// ContinueWork points a leased work item at target and extends its lease.
// It returns false when the lease was lost, and then the caller's
// transition must not happen.
func (tx *Tx) ContinueWork(ctx context.Context, w WorkItem, target WorkTarget, lease time.Duration) (bool, error) {
	attempt, after := target.params()
	n, err := tx.q.WorkItemContinue(ctx, dbsqlc.WorkItemContinueParams{
		Kind: target.Kind, StepExecutionID: target.StepExecutionID, Attempt: attempt, AfterStep: after,
		LeaseMs: lease.Milliseconds(), ID: w.ID, LeaseToken: &w.LeaseToken,
	})
	if err != nil {
		return false, fmt.Errorf("continue work: %w", translate(err))
	}
	return n == 1, nil
}

// RescheduleWork gives a leased work item up, pointed at target and due
// after delay. It returns false when the lease was lost.
func (tx *Tx) RescheduleWork(ctx context.Context, w WorkItem, target WorkTarget, delay time.Duration) (bool, error) {
	attempt, after := target.params()
	n, err := tx.q.WorkItemReschedule(ctx, dbsqlc.WorkItemRescheduleParams{
		Kind: target.Kind, StepExecutionID: target.StepExecutionID, Attempt: attempt, AfterStep: after,
		DelayMs: max(delay.Milliseconds(), 0), ID: w.ID, LeaseToken: &w.LeaseToken,
	})
	if err != nil {
		return false, fmt.Errorf("reschedule work: %w", translate(err))
	}
	delete(tx.leases, w.ID)
	return n == 1, nil
}

// CompleteWork deletes a leased work item. It returns false when the lease
// was lost.
func (tx *Tx) CompleteWork(ctx context.Context, w WorkItem) (bool, error) {
	n, err := tx.q.WorkItemDeleteLeased(ctx, dbsqlc.WorkItemDeleteLeasedParams{ID: w.ID, LeaseToken: &w.LeaseToken})
	if err != nil {
		return false, fmt.Errorf("complete work: %w", translate(err))
	}
	delete(tx.leases, w.ID)
	return n == 1, nil
}

// LockRunWork locks every work item of a run, leased or not, and returns
// them. Transitions lock work items before the run's row.
func (tx *Tx) LockRunWork(ctx context.Context, runID uuid.UUID) ([]WorkItem, error) {
	rows, err := tx.q.WorkItemLockByRun(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("lock run work: %w", translate(err))
	}
	out := make([]WorkItem, len(rows))
	for i, r := range rows {
		out[i] = workItemFromRow(r)
	}
	return out, nil
}

// RetargetWork points a work item the transaction has locked (with
// [Tx.LockRunWork]) at target, due after delay, dropping any lease: a
// worker holding it finds its lease gone.
func (tx *Tx) RetargetWork(ctx context.Context, id int64, target WorkTarget, delay time.Duration) error {
	attempt, after := target.params()
	if _, err := tx.q.WorkItemUpdateUnleased(ctx, dbsqlc.WorkItemUpdateUnleasedParams{
		Kind: target.Kind, StepExecutionID: target.StepExecutionID, Attempt: attempt, AfterStep: after,
		DelayMs: max(delay.Milliseconds(), 0), ID: id,
	}); err != nil {
		return fmt.Errorf("retarget work: %w", translate(err))
	}
	return tx.Notify(ctx)
}

// Notify wakes listening workers when the transaction commits.
func (tx *Tx) Notify(ctx context.Context) error {
	if err := tx.q.WorkNotify(ctx, ""); err != nil {
		return fmt.Errorf("notify workers: %w", translate(err))
	}
	return nil
}

// GetRuns returns the runs with the given ids that exist.
func (q queries) GetRuns(ctx context.Context, ids []uuid.UUID) ([]workflow.Run, error) {
	rows, err := q.q.RunGetMany(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("get runs: %w", translate(err))
	}
	out := make([]workflow.Run, len(rows))
	for i, r := range rows {
		out[i] = runFromRow(r)
	}
	return out, nil
}

// MarkRunRunning moves a pending or waiting run to running. It returns
// false when the run has finished.
func (tx *Tx) MarkRunRunning(ctx context.Context, id uuid.UUID) (bool, error) {
	n, err := tx.q.RunStart(ctx, id)
	if err != nil {
		return false, fmt.Errorf("mark run running: %w", translate(err))
	}
	return n == 1, nil
}

// MarkRunWaiting moves a running run to waiting.
func (tx *Tx) MarkRunWaiting(ctx context.Context, id uuid.UUID) (bool, error) {
	n, err := tx.q.RunSetWaiting(ctx, id)
	if err != nil {
		return false, fmt.Errorf("mark run waiting: %w", translate(err))
	}
	return n == 1, nil
}

// MergeRunContext merges patch (a JSON object) into the run's context and
// returns the merged context.
func (tx *Tx) MergeRunContext(ctx context.Context, id uuid.UUID, patch json.RawMessage) (json.RawMessage, error) {
	merged, err := tx.q.RunMergeContext(ctx, dbsqlc.RunMergeContextParams{ID: id, Patch: patch})
	if err != nil {
		return nil, fmt.Errorf("merge run context: %w", translate(err))
	}
	return merged, nil
}

// FinishRun ends an unfinished run with status, output and error, and
// returns it. It returns false when the run had finished already. The
// places the run held under concurrency limits are given back in the same
// statement, and the queued runs they make room for begin.
func (tx *Tx) FinishRun(ctx context.Context, id uuid.UUID, status workflow.RunStatus, output, runErr json.RawMessage) (workflow.Run, bool, error) {
	r, err := tx.q.RunFinish(ctx, dbsqlc.RunFinishParams{ID: id, Status: string(status), Output: output, Error: runErr})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Run{}, false, nil
	}
	if err != nil {
		return workflow.Run{}, false, fmt.Errorf("finish run: %w", translate(err))
	}
	if len(r.ReleasedKeys) > 0 {
		if err := tx.admit(ctx, r.ReleasedKeys); err != nil {
			return workflow.Run{}, false, err
		}
	}
	return runFromRow(dbsqlc.Run{
		ID: r.ID, WorkflowName: r.WorkflowName, WorkflowVersion: r.WorkflowVersion, Status: r.Status,
		Input: r.Input, Context: r.Context, Output: r.Output, Error: r.Error, Attempt: r.Attempt,
		ParentRunID: r.ParentRunID, ParentStepExecutionID: r.ParentStepExecutionID, Depth: r.Depth,
		IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash, ScheduleID: r.ScheduleID, Deadline: r.Deadline,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Traceparent: r.Traceparent, TraceParentSpanID: r.TraceParentSpanID, Tracestate: r.Tracestate,
		HistoryCount: r.HistoryCount, HistoryCap: r.HistoryCap, Priority: r.Priority, Blocked: r.Blocked,
	}), true, nil
}

// NewStepExecution is a step execution to start, with its first attempt.
type NewStepExecution struct {
	ID    uuid.UUID
	RunID uuid.UUID
	// ParentKey is the key of the execution the step is nested in (a
	// branch, a lane); "" at the top level.
	ParentKey    string
	Key          string
	Name         string
	Type         string
	WebhookID    string
	Input        json.RawMessage
	Timeout      time.Duration // the first attempt's deadline, from now
	WorkerID     string
	CallbackHash []byte
}

// InsertStepAttempt records the start of an attempt.
func (tx *Tx) InsertStepAttempt(ctx context.Context, stepID uuid.UUID, attempt int, runID uuid.UUID, workerID string, callbackHash []byte) error {
	if err := tx.q.StepAttemptInsert(ctx, dbsqlc.StepAttemptInsertParams{
		StepExecutionID: stepID, Attempt: int32(attempt), RunID: runID, WorkerID: &workerID, CallbackHash: callbackHash,
	}); err != nil {
		return fmt.Errorf("insert step attempt: %w", translate(err))
	}
	return nil
}

// GetStepExecution returns a step execution without its attempts.
func (q queries) GetStepExecution(ctx context.Context, id uuid.UUID) (workflow.StepExecution, error) {
	r, err := q.q.StepExecutionGet(ctx, id)
	if err != nil {
		return workflow.StepExecution{}, notFound(err, "step execution %s not found", id)
	}
	return stepExecutionFromRow(r), nil
}

// LockStepExecution locks a step execution for the rest of the transaction
// and reports whether its deadline has passed by the database's clock.
func (tx *Tx) LockStepExecution(ctx context.Context, id uuid.UUID) (workflow.StepExecution, bool, error) {
	r, err := tx.q.StepExecutionLock(ctx, id)
	if err != nil {
		return workflow.StepExecution{}, false, notFound(err, "step execution %s not found", id)
	}
	return stepExecutionFromRow(r.StepExecution), r.Expired, nil
}

func stepExecutionFromRow(r dbsqlc.StepExecution) workflow.StepExecution {
	return workflow.StepExecution{
		ID: r.ID, RunID: r.RunID, ParentID: r.ParentID, Key: r.StepKey, Name: r.StepName,
		Type: r.StepType, Status: r.Status, Attempt: int(r.Attempt), Abandoned: int(r.Abandoned), WebhookID: r.WebhookID,
		Input: r.Input, Output: r.Output, Error: r.Error, Deadline: r.Deadline,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
	}
}

// GetStepAttempt returns one attempt of a step execution and its callback
// hash.
func (q queries) GetStepAttempt(ctx context.Context, stepID uuid.UUID, attempt int) (workflow.StepAttempt, []byte, error) {
	r, err := q.q.StepAttemptGet(ctx, dbsqlc.StepAttemptGetParams{StepExecutionID: stepID, Attempt: int32(attempt)})
	if err != nil {
		return workflow.StepAttempt{}, nil, notFound(err, "attempt %d of step execution %s not found", attempt, stepID)
	}
	a := workflow.StepAttempt{Attempt: int(r.Attempt), Status: r.Status, Error: r.Error, Logs: r.Logs, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
	return a, r.CallbackHash, nil
}

// StartStepAttempt moves a step execution to its next attempt number. It
// returns false when the execution is not at the previous attempt or has
// finished.
func (tx *Tx) StartStepAttempt(ctx context.Context, stepID uuid.UUID, attempt int, timeout time.Duration) (bool, error) {
	n, err := tx.q.StepExecutionStartAttempt(ctx, dbsqlc.StepExecutionStartAttemptParams{
		ID: stepID, Attempt: int32(attempt), PreviousAttempt: int32(attempt - 1), TimeoutMs: timeout.Milliseconds(),
	})
	if err != nil {
		return false, fmt.Errorf("start step attempt: %w", translate(err))
	}
	return n == 1, nil
}

// AttemptResult is how an attempt ended.
type AttemptResult struct {
	StepExecutionID uuid.UUID
	Attempt         int
	Status          string // succeeded, failed, accepted, timed_out, abandoned
	HTTPStatus      int    // 0: none
	Error           json.RawMessage
	Logs            json.RawMessage
}

// FinishStepAttempt records how an attempt ended. It returns false when the
// attempt was not in progress any more.
func (tx *Tx) FinishStepAttempt(ctx context.Context, r AttemptResult) (bool, error) {
	p := dbsqlc.StepAttemptFinishParams{
		Status: r.Status, Error: r.Error, Logs: r.Logs, StepExecutionID: r.StepExecutionID, Attempt: int32(r.Attempt),
	}
	if r.HTTPStatus != 0 {
		s := int32(r.HTTPStatus)
		p.HttpStatus = &s
	}
	n, err := tx.q.StepAttemptFinish(ctx, p)
	if err != nil {
		return false, fmt.Errorf("finish step attempt: %w", translate(err))
	}
	return n == 1, nil
}

// FinishStep records how an attempt ended (r) and the step execution's
// final status and output, in one statement, fenced to the attempt in
// progress. It returns false when the attempt was over already.
func (tx *Tx) FinishStep(ctx context.Context, r AttemptResult, status string, output json.RawMessage) (bool, error) {
	p := dbsqlc.StepFinishParams{
		AttemptStatus: r.Status, Error: r.Error, Logs: r.Logs, ID: r.StepExecutionID, Attempt: int32(r.Attempt),
		Status: status, Output: output,
	}
	if r.HTTPStatus != 0 {
		s := int32(r.HTTPStatus)
		p.HttpStatus = &s
	}
	changed, err := tx.q.StepFinish(ctx, p)
	if err != nil {
		return false, fmt.Errorf("finish step: %w", translate(err))
	}
	return changed == 2, nil
}

// FinishStepExecution records a step execution's final status, output and
// error, fenced to its attempt. It returns false when the execution is at
// another attempt or has finished.
func (tx *Tx) FinishStepExecution(ctx context.Context, id uuid.UUID, attempt int, status string, output, stepErr json.RawMessage) (bool, error) {
	n, err := tx.q.StepExecutionFinish(ctx, dbsqlc.StepExecutionFinishParams{
		ID: id, Attempt: int32(attempt), Status: status, Output: output, Error: stepErr,
	})
	if err != nil {
		return false, fmt.Errorf("finish step execution: %w", translate(err))
	}
	return n == 1, nil
}

// RetryStepLater marks a step execution pending its next attempt.
func (tx *Tx) RetryStepLater(ctx context.Context, id uuid.UUID, attempt int, stepErr json.RawMessage) (bool, error) {
	n, err := tx.q.StepExecutionRetryLater(ctx, dbsqlc.StepExecutionRetryLaterParams{ID: id, Attempt: int32(attempt), Error: stepErr})
	if err != nil {
		return false, fmt.Errorf("schedule step retry: %w", translate(err))
	}
	return n == 1, nil
}

// ParkStep marks a running step execution waiting for its callback until
// timeout from now, and returns that deadline; false when it was not
// running at that attempt.
func (tx *Tx) ParkStep(ctx context.Context, id uuid.UUID, attempt int, timeout time.Duration) (time.Time, bool, error) {
	deadline, err := tx.q.StepExecutionPark(ctx, dbsqlc.StepExecutionParkParams{ID: id, Attempt: int32(attempt), TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return time.Time{}, false, notFoundOK(err, "park step")
	}
	if deadline == nil {
		return time.Time{}, false, nil
	}
	return *deadline, true, nil
}

// ExtendStepDeadline moves an unfinished step execution's deadline to
// timeout from now and returns it; false when it has finished.
func (tx *Tx) ExtendStepDeadline(ctx context.Context, id uuid.UUID, attempt int, timeout time.Duration) (time.Time, bool, error) {
	deadline, err := tx.q.StepExecutionExtendDeadline(ctx, dbsqlc.StepExecutionExtendDeadlineParams{ID: id, Attempt: int32(attempt), TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return time.Time{}, false, notFoundOK(err, "extend step deadline")
	}
	if deadline == nil {
		return time.Time{}, false, nil
	}
	return *deadline, true, nil
}

// EndRunSteps ends every unfinished step execution and attempt of a run
// that is being cancelled or timed out, with the given step status, and
// drops the items its foreach blocks did not open.
func (tx *Tx) EndRunSteps(ctx context.Context, runID uuid.UUID, status string) error {
	if err := tx.q.StepExecutionCancelByRun(ctx, dbsqlc.StepExecutionCancelByRunParams{RunID: runID, Status: status}); err != nil {
		return fmt.Errorf("end run steps: %w", translate(err))
	}
	if err := tx.q.StepAttemptCancelByRun(ctx, runID); err != nil {
		return fmt.Errorf("end run attempts: %w", translate(err))
	}
	if err := tx.q.BlockItemDeleteByRun(ctx, runID); err != nil {
		return fmt.Errorf("drop run block items: %w", translate(err))
	}
	return nil
}

// StepOutputs returns the outputs of a run's succeeded steps among keys,
// by key.
func (q queries) StepOutputs(ctx context.Context, runID uuid.UUID, keys []string) (map[string]json.RawMessage, error) {
	rows, err := q.q.StepOutputsByRun(ctx, dbsqlc.StepOutputsByRunParams{RunID: runID, Keys: keys})
	if err != nil {
		return nil, fmt.Errorf("step outputs: %w", translate(err))
	}
	out := make(map[string]json.RawMessage, len(rows))
	for _, r := range rows {
		out[r.StepKey] = r.Output
	}
	return out, nil
}

// Setting returns the value stored under key, storing the value of create
// first if there is none. Concurrent callers all get the first stored value.
func (db *DB) Setting(ctx context.Context, key string, create func() (string, error)) (string, error) {
	v, err := db.q.SettingGet(ctx, key)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read setting %s: %w", key, translate(err))
	}
	fresh, err := create()
	if err != nil {
		return "", err
	}
	if err := db.q.SettingInsertIfAbsent(ctx, dbsqlc.SettingInsertIfAbsentParams{Key: key, Value: fresh}); err != nil {
		return "", fmt.Errorf("store setting %s: %w", key, translate(err))
	}
	v, err = db.q.SettingGet(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, translate(err))
	}
	return v, nil
}

// LockLeasedWork locks a work item the caller leases. It returns false when
// the lease was lost.
func (tx *Tx) LockLeasedWork(ctx context.Context, w WorkItem) (bool, error) {
	_, err := tx.q.WorkItemLockLeased(ctx, dbsqlc.WorkItemLockLeasedParams{ID: w.ID, LeaseToken: &w.LeaseToken})
	ok, err := lockedOrLost(err)
	if ok {
		tx.lockedLease(w)
	}
	return ok, err
}

// LockWorkItems locks work items in id order (see [Tx.LockRunWork]), leased
// by whoever: a transaction that records transitions of several of them
// starts here. Each transition still checks its own lease. The statement is
// held to go with the transaction's next (see [txConn]).
func (tx *Tx) LockWorkItems(ctx context.Context, ids []int64) error {
	if err := tx.conn.holding(nil).WorkItemLockMany(ctx, ids); err != nil {
		return fmt.Errorf("lock work items: %w", translate(err))
	}
	return nil
}

// LockLeasedWorkAndRun locks a work item the caller leases, then its run's
// row, which serialises the transitions of a run's lanes, and returns the
// run's context. It returns false when the lease was lost.
func (tx *Tx) LockLeasedWorkAndRun(ctx context.Context, w WorkItem) (json.RawMessage, bool, error) {
	runContext, err := tx.q.WorkItemLockLeasedAndRun(ctx, dbsqlc.WorkItemLockLeasedAndRunParams{ID: w.ID, LeaseToken: &w.LeaseToken})
	ok, err := lockedOrLost(err)
	if ok {
		tx.lockedLease(w)
	}
	return runContext, ok, err
}

func lockedOrLost(err error) (bool, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock leased work: %w", translate(err))
	}
	return true, nil
}

// AbandonStepAttempt records that the engine cut an attempt short (its
// worker was lost or stopped): the attempt is abandoned, the execution
// pending its next attempt. It returns how many attempts of the execution
// were abandoned so far, and false when the attempt was not in progress.
func (tx *Tx) AbandonStepAttempt(ctx context.Context, id uuid.UUID, attempt int, reason json.RawMessage) (int, bool, error) {
	if _, err := tx.FinishStepAttempt(ctx, AttemptResult{StepExecutionID: id, Attempt: attempt, Status: "abandoned", Error: reason}); err != nil {
		return 0, false, err
	}
	n, err := tx.q.StepExecutionAbandon(ctx, dbsqlc.StepExecutionAbandonParams{ID: id, Attempt: int32(attempt)})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("abandon step attempt: %w", translate(err))
	}
	return int(n), true, nil
}

// SucceedAndContinue is the hot path of a run: see [DB.SucceedAndContinue].
type SucceedAndContinue struct {
	Work         WorkItem
	Lease        time.Duration
	Result       AttemptResult   // Status and Error are ignored: the attempt succeeded
	Output       json.RawMessage // the step's output
	ContextPatch json.RawMessage // merged into the run's context; nil for none
	StepKey      string
	Succeeded    json.RawMessage // data of the step_succeeded history event
	Next         NewStepExecution
}

// SucceedAndContinue records a step's success and starts the run's next
// step in one statement, committed with the others of its group (see
// groupcommit.go): the attempt and
// execution succeed, the context answer is merged, the next step's
// execution and first attempt are created, the work item moves on to it
// under the same lease, and both history events are written. It returns
// false, having changed nothing, when the lease was lost or the attempt was
// no longer in progress; or when the run's history has no room for the two
// events (full), and the result is to be recorded in a transaction, which
// ends the run at its cap (see [DB.InTx]).
func (db *DB) SucceedAndContinue(ctx context.Context, p SucceedAndContinue) (recorded, full bool, err error) {
	params := dbsqlc.StepSucceedAndContinueParams{
		NextID: p.Next.ID, LeaseMs: p.Lease.Milliseconds(), WorkID: p.Work.ID, LeaseToken: &p.Work.LeaseToken,
		Logs: p.Result.Logs, ID: p.Result.StepExecutionID, Attempt: int32(p.Result.Attempt), Output: p.Output,
		ContextPatch: p.ContextPatch, NextKey: p.Next.Key, NextName: p.Next.Name, NextType: p.Next.Type,
		NextWebhookID: p.Next.WebhookID, NextInput: p.Next.Input, NextTimeoutMs: p.Next.Timeout.Milliseconds(),
		WorkerID: &p.Next.WorkerID, CallbackHash: p.Next.CallbackHash, StepKey: p.StepKey, SucceededData: p.Succeeded,
		NextParentKey: parentKey(p.Next.ParentKey),
	}
	if p.Result.HTTPStatus != 0 {
		s := int32(p.Result.HTTPStatus)
		params.HttpStatus = &s
	}
	row, err := db.succeedAndContinueGrouped(ctx, params)
	if err != nil {
		return false, false, err
	}
	return row.Recorded == 1, row.Recorded == 0 && row.Full, nil
}

// StepStart is a step to start with [Tx.StartSteps].
type StepStart struct {
	Work  WorkItem // leased by the caller; it moves on to the new execution
	Lease time.Duration
	Exec  NewStepExecution
	// MarkRunning marks the run running; RunStarted also records the run's
	// start in its history.
	MarkRunning, RunStarted bool
}

// StartSteps starts steps of runs, each in one statement (the work item
// moves on to the new execution under its lease; the run is marked running
// if asked; the execution and its first attempt are created), all sent to
// the database in one round trip; history records the starts (and the
// run's, when RunStarted) with the rest of the transaction's. It reports
// for each step whether it started: false, having changed nothing, when the
// work item's lease was lost. When one statement fails, the transaction is
// unusable and the error is returned.
//
// When the transaction holds every one of their leases under the items'
// row locks, nothing can refuse the starts: their statements are held, to
// go with the transaction's next (see [txConn]), and a start that did not
// happen after all fails the transaction.
func (tx *Tx) StartSteps(ctx context.Context, starts []StepStart) ([]bool, error) {
	params := make([]dbsqlc.StepStartParams, len(starts))
	held := true
	for i, st := range starts {
		n := st.Exec
		params[i] = dbsqlc.StepStartParams{
			ID: n.ID, LeaseMs: st.Lease.Milliseconds(), WorkID: st.Work.ID, LeaseToken: &st.Work.LeaseToken,
			MarkRunning: st.MarkRunning, StepKey: n.Key, StepName: n.Name, StepType: n.Type, WebhookID: n.WebhookID,
			Input: n.Input, TimeoutMs: n.Timeout.Milliseconds(), WorkerID: &n.WorkerID, CallbackHash: n.CallbackHash,
			ParentKey: parentKey(n.ParentKey),
		}
		held = held && tx.holdsLease(st.Work)
	}
	started := make([]bool, len(starts))
	if held {
		check := func(i int, row pgx.Row) error {
			var r dbsqlc.StepStartRow
			if err := row.Scan(&r.Created, &r.Existed); err != nil {
				return fmt.Errorf("start step %s: %w", starts[i].Exec.Key, translate(err))
			}
			if !r.Created {
				return fmt.Errorf("start step %s: the work item's lease was lost under its lock", starts[i].Exec.Key)
			}
			return nil
		}
		_ = tx.conn.holding(check).StepStart(ctx, params).Close() // its answers are checked as they come
		for i := range starts {
			started[i] = true
			tx.historyOfStart(starts[i])
		}
		return started, nil
	}
	var firstErr error
	results := tx.q.StepStart(ctx, params)
	results.QueryRow(func(i int, r dbsqlc.StepStartRow, err error) {
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("start step %s: %w", starts[i].Exec.Key, translate(err))
			}
			return
		}
		started[i] = r.Created || r.Existed
		if r.Created {
			tx.historyOfStart(starts[i])
		}
	})
	if err := results.Close(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("start steps: %w", translate(err))
	}
	return started, firstErr
}

// historyOfStart appends the history of a step's start, and of its run's
// when the step is the run's first.
func (tx *Tx) historyOfStart(st StepStart) {
	if st.RunStarted {
		tx.AppendHistory(NewHistoryEvent{RunID: st.Work.RunID, Type: workflow.EventRunStarted})
	}
	first := 1
	tx.AppendHistory(NewHistoryEvent{RunID: st.Work.RunID, Type: workflow.EventStepStarted, StepKey: st.Exec.Key, Attempt: &first})
}

func parentKey(key string) *string {
	if key == "" {
		return nil
	}
	return &key
}
