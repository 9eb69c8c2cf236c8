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

func runFromRow(r dbsqlc.Run) workflow.Run {
	run := workflow.Run{
		ID:                    r.ID,
		Workflow:              r.WorkflowName,
		Version:               int(r.WorkflowVersion),
		Status:                workflow.RunStatus(r.Status),
		Input:                 r.Input,
		Context:               r.Context,
		Output:                r.Output,
		Error:                 r.Error,
		Attempt:               int(r.Attempt),
		ParentRunID:           r.ParentRunID,
		ParentStepExecutionID: r.ParentStepExecutionID,
		Depth:                 int(r.Depth),
		ScheduleID:            r.ScheduleID,
		RequestHash:           r.RequestHash,
		Deadline:              r.Deadline,
		CreatedAt:             r.CreatedAt,
		UpdatedAt:             r.UpdatedAt,
		StartedAt:             r.StartedAt,
		FinishedAt:            r.FinishedAt,
		HistoryCap:            int(r.HistoryCap),
		Priority:              int(r.Priority),
		Blocked:               blockedOf(r.Blocked),
	}
	if r.IdempotencyKey != nil {
		run.IdempotencyKey = *r.IdempotencyKey
	}
	run.Trace = workflow.TraceContext{Traceparent: deref(r.Traceparent), ParentSpanID: deref(r.TraceParentSpanID), Tracestate: deref(r.Tracestate)}
	return run
}

// orNil is s, or nil when s is empty: absent values are stored as NULL.
func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// NewRun is what [Tx.InsertRun] needs to create a run.
type NewRun struct {
	ID                    uuid.UUID
	Workflow              string
	Version               int
	Input                 json.RawMessage
	ParentRunID           *uuid.UUID
	ParentStepExecutionID *uuid.UUID
	Depth                 int // call_workflow steps above the run
	ScheduleID            *uuid.UUID
	IdempotencyKey        string
	RequestHash           []byte
	Timeout               time.Duration // run-level timeout; 0 for none
	Trace                 workflow.TraceContext
	// HistoryCap is the most events the run's history may hold (see
	// [DB.InTx]; 0: [workflow.DefaultMaxHistoryEvents]); those of steps
	// inside foreach items are not counted.
	HistoryCap int
	Priority   int
}

// InsertRun creates a pending run. When the run's idempotency key is taken
// already it creates nothing and returns false.
func (tx *Tx) InsertRun(ctx context.Context, n NewRun) (workflow.Run, bool, error) {
	params := dbsqlc.RunInsertParams{
		ID:                    n.ID,
		WorkflowName:          n.Workflow,
		WorkflowVersion:       int32(n.Version),
		Input:                 n.Input,
		ParentRunID:           n.ParentRunID,
		ParentStepExecutionID: n.ParentStepExecutionID,
		Depth:                 int32(n.Depth),
		RequestHash:           n.RequestHash,
		ScheduleID:            n.ScheduleID,
		Traceparent:           orNil(n.Trace.Traceparent),
		TraceParentSpanID:     orNil(n.Trace.ParentSpanID),
		Tracestate:            orNil(n.Trace.Tracestate),
		HistoryCap:            int32(workflow.DefaultMaxHistoryEvents),
		Priority:              int16(n.Priority),
	}
	if n.HistoryCap > 0 {
		params.HistoryCap = int32(n.HistoryCap)
	}
	if n.Timeout > 0 {
		ms := n.Timeout.Milliseconds()
		params.TimeoutMs = &ms
	}
	if n.IdempotencyKey != "" {
		params.IdempotencyKey = &n.IdempotencyKey
	}
	r, err := tx.q.RunInsert(ctx, params)
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Run{}, false, nil
	}
	if err != nil {
		return workflow.Run{}, false, fmt.Errorf("insert run: %w", translate(err))
	}
	return runFromRow(r), true, nil
}

// GetRun returns the run with the given id.
func (q queries) GetRun(ctx context.Context, id uuid.UUID) (workflow.Run, error) {
	r, err := q.q.RunGetByID(ctx, id)
	if err != nil {
		return workflow.Run{}, notFound(err, "run %s not found", id)
	}
	return runFromRow(r), nil
}

// GetRunByIdempotencyKey returns the run started with the given key.
func (q queries) GetRunByIdempotencyKey(ctx context.Context, key string) (workflow.Run, error) {
	r, err := q.q.RunGetByIdempotencyKey(ctx, &key)
	if err != nil {
		return workflow.Run{}, notFound(err, "no run was started with this idempotency key")
	}
	return runFromRow(r), nil
}

// ListRuns returns up to limit runs matching f, newest first, after cursor
// (nil for the first page). The runs leave out input, context and output.
func (q queries) ListRuns(ctx context.Context, f workflow.RunFilter, cursor *workflow.Cursor, limit int) ([]workflow.Run, error) {
	params := dbsqlc.RunListParams{
		Parent:        f.Parent,
		CreatedAfter:  f.CreatedAfter,
		CreatedBefore: f.CreatedBefore,
		Statuses:      make([]string, len(f.Statuses)),
		Max:           int32(limit),
	}
	if f.Workflow != "" {
		params.Workflow = &f.Workflow
	}
	for i, s := range f.Statuses {
		params.Statuses[i] = string(s)
	}
	if cursor != nil {
		params.CursorCreatedAt = &cursor.CreatedAt
		params.CursorID = &cursor.ID
	}
	rows, err := q.q.RunList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", translate(err))
	}
	out := make([]workflow.Run, len(rows))
	for i, r := range rows {
		out[i] = workflow.Run{
			ID:          r.ID,
			Workflow:    r.WorkflowName,
			Version:     int(r.WorkflowVersion),
			Status:      workflow.RunStatus(r.Status),
			Attempt:     int(r.Attempt),
			ParentRunID: r.ParentRunID,
			ScheduleID:  r.ScheduleID,
			Error:       r.Error,
			CreatedAt:   r.CreatedAt,
			UpdatedAt:   r.UpdatedAt,
			StartedAt:   r.StartedAt,
			FinishedAt:  r.FinishedAt,
		}
	}
	return out, nil
}

// NewHistoryEvent is an event for [Tx.AppendHistory].
type NewHistoryEvent struct {
	RunID   uuid.UUID
	Type    string
	StepKey string
	Attempt *int
	Data    json.RawMessage
}

// AppendHistory appends e to its run's history when the transaction
// commits. All events of a transaction are written in one statement, just
// before the commit.
func (tx *Tx) AppendHistory(e NewHistoryEvent) {
	tx.history = append(tx.history, e)
}

// flushHistory writes the buffered history events, in a statement held to
// go with the transaction's next (see [txConn]).
func (tx *Tx) flushHistory(ctx context.Context) error {
	if len(tx.history) == 0 {
		return nil
	}
	n := len(tx.history)
	p := dbsqlc.HistoryEventAppendManyParams{
		RunIds: make([]uuid.UUID, n), Types: make([]string, n), StepKeys: make([]string, n),
		Attempts: make([]int32, n), Datas: make([][]byte, n),
	}
	for i, e := range tx.history {
		p.RunIds[i], p.Types[i], p.StepKeys[i], p.Datas[i] = e.RunID, e.Type, e.StepKey, e.Data
		if e.Attempt != nil {
			p.Attempts[i] = int32(*e.Attempt)
		}
	}
	if err := tx.conn.holding(nil).HistoryEventAppendMany(ctx, p); err != nil {
		return fmt.Errorf("append history: %w", translate(err))
	}
	tx.conn.appended = append(tx.conn.appended, tx.history...)
	tx.history = nil
	return nil
}

// ListHistory returns up to limit events of a run with ids above after, in
// order.
func (q queries) ListHistory(ctx context.Context, runID uuid.UUID, after int64, limit int) ([]workflow.HistoryEvent, error) {
	rows, err := q.q.HistoryEventList(ctx, dbsqlc.HistoryEventListParams{RunID: runID, After: after, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list history: %w", translate(err))
	}
	out := make([]workflow.HistoryEvent, len(rows))
	for i, r := range rows {
		e := workflow.HistoryEvent{ID: r.ID, RunID: r.RunID, Type: r.Type, Data: r.Data, Time: r.CreatedAt}
		if r.StepKey != nil {
			e.StepKey = *r.StepKey
		}
		if r.Attempt != nil {
			a := int(*r.Attempt)
			e.Attempt = &a
		}
		out[i] = e
	}
	return out, nil
}

// ListSteps returns up to limit step executions of a run in the order they
// were created, after cursor (nil for the first page), each with all of its
// attempts.
func (q queries) ListSteps(ctx context.Context, runID uuid.UUID, cursor *workflow.Cursor, limit int) ([]workflow.StepExecution, error) {
	params := dbsqlc.StepExecutionListByRunParams{RunID: runID, Max: int32(limit)}
	if cursor != nil {
		params.CursorCreatedAt = &cursor.CreatedAt
		params.CursorID = &cursor.ID
	}
	rows, err := q.q.StepExecutionListByRun(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list steps: %w", translate(err))
	}
	steps := make([]workflow.StepExecution, len(rows))
	index := make(map[uuid.UUID]int, len(rows))
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		steps[i] = workflow.StepExecution{
			ID: r.ID, RunID: r.RunID, ParentID: r.ParentID, Key: r.StepKey, Name: r.StepName,
			Type: r.StepType, Status: r.Status, Attempt: int(r.Attempt), WebhookID: r.WebhookID,
			Input: r.Input, Output: r.Output, Error: r.Error, Deadline: r.Deadline,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			Attempts: []workflow.StepAttempt{},
		}
		index[r.ID] = i
		ids[i] = r.ID
	}
	if len(ids) == 0 {
		return steps, nil
	}
	attempts, err := q.q.StepAttemptListByExecutions(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list step attempts: %w", translate(err))
	}
	for _, a := range attempts {
		sa := workflow.StepAttempt{
			Attempt: int(a.Attempt), Status: a.Status, Error: a.Error, Logs: a.Logs,
			StartedAt: a.StartedAt, FinishedAt: a.FinishedAt,
		}
		if a.WorkerID != nil {
			sa.WorkerID = *a.WorkerID
		}
		if a.HttpStatus != nil {
			s := int(*a.HttpStatus)
			sa.HTTPStatus = &s
		}
		i := index[a.StepExecutionID]
		steps[i].Attempts = append(steps[i].Attempts, sa)
	}
	return steps, nil
}

// EnqueueWork queues work for a run pointed at target, due after delay
// (by the database's clock), and notifies listening workers when the
// transaction commits.
func (tx *Tx) EnqueueWork(ctx context.Context, runID uuid.UUID, target WorkTarget, delay time.Duration) error {
	attempt, after := target.params()
	if err := tx.q.WorkItemInsert(ctx, dbsqlc.WorkItemInsertParams{
		RunID: runID, Kind: target.Kind, StepExecutionID: target.StepExecutionID, Attempt: attempt, AfterStep: after,
		DelayMs: max(delay.Milliseconds(), 0),
	}); err != nil {
		return fmt.Errorf("enqueue %s work: %w", target.Kind, translate(err))
	}
	return tx.Notify(ctx)
}

// DeleteRunWork removes every queued work item of a run, leased or not; a
// worker holding one finds its lease gone when it tries to record a result.
func (tx *Tx) DeleteRunWork(ctx context.Context, runID uuid.UUID) error {
	if _, err := tx.q.WorkItemDeleteByRun(ctx, runID); err != nil {
		return fmt.Errorf("delete run work: %w", translate(err))
	}
	return nil
}

// ActiveChildren returns the ids of a run's child runs that have not
// finished.
func (tx *Tx) ActiveChildren(ctx context.Context, runID uuid.UUID) ([]uuid.UUID, error) {
	ids, err := tx.q.RunListActiveChildren(ctx, &runID)
	if err != nil {
		return nil, fmt.Errorf("list active child runs: %w", translate(err))
	}
	return ids, nil
}

// DeleteExpiredRuns deletes up to max finished runs whose retention has
// passed — their workflow's own, else retention — with their steps,
// attempts, history, waits and work, in one statement, and returns how many
// it deleted. Runs another transaction holds are left for the next call,
// so that workers delete side by side without waiting for each other. A run
// with a child run still going is kept until the child has finished.
func (db *DB) DeleteExpiredRuns(ctx context.Context, retention time.Duration, max int) (int, error) {
	n, err := db.q.RunDeleteExpired(ctx, dbsqlc.RunDeleteExpiredParams{DefaultMs: retention.Milliseconds(), Max: int32(max)})
	if err != nil {
		return 0, fmt.Errorf("delete expired runs: %w", translate(err))
	}
	return int(n), nil
}

// LockRunToDelete locks a run that is to be deleted and returns its status
// and whether one of its child runs is still going.
func (tx *Tx) LockRunToDelete(ctx context.Context, id uuid.UUID) (status workflow.RunStatus, activeChildren bool, err error) {
	r, err := tx.q.RunLockToDelete(ctx, id)
	if err != nil {
		return "", false, notFound(err, "run %s not found", id)
	}
	return workflow.RunStatus(r.Status), r.ActiveChildren, nil
}

// DeleteRun deletes a run with its steps, attempts, history, waits and
// work. Its child runs lose their link to it; so do its schedule's firings.
func (tx *Tx) DeleteRun(ctx context.Context, id uuid.UUID) error {
	if _, err := tx.q.RunDelete(ctx, id); err != nil {
		return fmt.Errorf("delete run: %w", translate(err))
	}
	return nil
}

// CountRunsByStatus counts the runs of each of statuses that match f's
// other filters (f.Statuses is ignored), each count stopping at max.
func (q queries) CountRunsByStatus(ctx context.Context, f workflow.RunFilter, statuses []workflow.RunStatus, max int) (map[workflow.RunStatus]int, error) {
	params := dbsqlc.RunCountByStatusParams{
		Parent: f.Parent, CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore,
		Max: int32(max), Statuses: make([]string, len(statuses)),
	}
	if f.Workflow != "" {
		params.Workflow = &f.Workflow
	}
	for i, s := range statuses {
		params.Statuses[i] = string(s)
	}
	rows, err := q.q.RunCountByStatus(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("count runs by status: %w", translate(err))
	}
	out := make(map[workflow.RunStatus]int, len(rows))
	for _, r := range rows {
		out[workflow.RunStatus(r.Status)] = int(r.N)
	}
	return out, nil
}
