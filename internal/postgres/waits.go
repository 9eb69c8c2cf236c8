package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
	"github.com/durablehq/durable/internal/workflow"
)

// Work kinds of waiting steps.
const (
	WorkTimer       = "timer"        // a sleep's wake-up
	WorkWaitTimeout = "wait_timeout" // a wait's deadline
)

// WaitStart is a waiting step to start with [Tx.StartWait].
type WaitStart struct {
	Work WorkItem // leased by the caller; it becomes the wait's timer
	Kind string   // WorkTimer or WorkWaitTimeout
	Wait time.Duration
	// WakeAt, when set, is the deadline instead of Wait from now: a sleep's
	// wake time, so that it never fires early by the database's clock.
	WakeAt *time.Time
	Exec   NewStepExecution
}

// StartWait starts a waiting step in one statement: the work item becomes
// its timer, due after w.Wait with its lease dropped; the run waits; the
// execution is created waiting, with a first attempt. History appended
// before in the transaction is written first. It returns the deadline, and
// false when the lease was lost and nothing changed.
func (tx *Tx) StartWait(ctx context.Context, w WaitStart) (time.Time, bool, error) {
	if err := tx.flushHistory(ctx); err != nil {
		return time.Time{}, false, err
	}
	n := w.Exec
	deadline, err := tx.q.StepStartWait(ctx, dbsqlc.StepStartWaitParams{
		Kind: w.Kind, ID: &n.ID, WaitMs: max(w.Wait.Milliseconds(), 0), WakeAt: w.WakeAt, WorkID: w.Work.ID, LeaseToken: &w.Work.LeaseToken,
		StepKey: n.Key, StepName: n.Name, StepType: n.Type, WebhookID: n.WebhookID, Input: n.Input,
		WorkerID: &n.WorkerID, CallbackHash: n.CallbackHash, ParentKey: parentKey(n.ParentKey),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("start wait %s: %w", n.Key, translate(err))
	}
	return deadline, true, nil
}

// EventCondition is one event a waiting step waits for.
type EventCondition struct {
	Index    int
	Name     string
	Key      string
	Lookback time.Duration // events received this long before the wait began count
	Timeout  time.Duration
}

// InsertEventWait records that a step execution waits for an event.
func (tx *Tx) InsertEventWait(ctx context.Context, runID, execID uuid.UUID, c EventCondition) (uuid.UUID, error) {
	id := uuid.Must(uuid.NewV7())
	if err := tx.q.WaitInsert(ctx, dbsqlc.WaitInsertParams{
		ID: id, RunID: runID, StepExecutionID: execID, EventName: &c.Name, EventKey: &c.Key,
		ConditionIndex: int32(c.Index), LookbackMs: c.Lookback.Milliseconds(), TimeoutMs: c.Timeout.Milliseconds(),
	}); err != nil {
		return uuid.Nil, fmt.Errorf("insert wait: %w", translate(err))
	}
	return id, nil
}

func waitFromRow(r dbsqlc.Wait) workflow.Wait {
	w := workflow.Wait{
		ID: r.ID, RunID: r.RunID, StepExecutionID: r.StepExecutionID, Index: int(r.ConditionIndex),
		Status: r.Status, Resolution: r.Resolution, Deadline: r.Deadline,
	}
	if r.EventName != nil {
		w.EventName = *r.EventName
	}
	if r.EventKey != nil {
		w.EventKey = *r.EventKey
	}
	if r.LookbackFrom != nil {
		w.LookbackFrom = *r.LookbackFrom
	}
	return w
}

func waitsFromRows(rows []dbsqlc.Wait) []workflow.Wait {
	out := make([]workflow.Wait, len(rows))
	for i, r := range rows {
		out[i] = waitFromRow(r)
	}
	return out
}

// WaitsOfStep returns every wait of a step execution, by condition.
func (q queries) WaitsOfStep(ctx context.Context, execID uuid.UUID) ([]workflow.Wait, error) {
	rows, err := q.q.WaitListByStep(ctx, execID)
	if err != nil {
		return nil, fmt.Errorf("list waits: %w", translate(err))
	}
	return waitsFromRows(rows), nil
}

// OpenWaitsOfRuns returns the open waits of the given runs.
func (q queries) OpenWaitsOfRuns(ctx context.Context, runIDs []uuid.UUID) ([]workflow.Wait, error) {
	rows, err := q.q.WaitListByRuns(ctx, runIDs)
	if err != nil {
		return nil, fmt.Errorf("list open waits: %w", translate(err))
	}
	return waitsFromRows(rows), nil
}

// OpenWaitsForEvent returns up to max open waits for an event's name and
// key, ordered by run.
func (tx *Tx) OpenWaitsForEvent(ctx context.Context, name, key string, max int) ([]workflow.Wait, error) {
	rows, err := tx.q.WaitListOpenForEvent(ctx, dbsqlc.WaitListOpenForEventParams{EventName: &name, EventKey: &key, Max: int32(max)})
	if err != nil {
		return nil, fmt.Errorf("list waits for event: %w", translate(err))
	}
	return waitsFromRows(rows), nil
}

// ResolveWait marks an open wait resolved by event e (its payload is the
// resolution); false when it was not open.
func (tx *Tx) ResolveWait(ctx context.Context, id uuid.UUID, e workflow.Event) (bool, error) {
	n, err := tx.q.WaitResolve(ctx, dbsqlc.WaitResolveParams{ID: id, Resolution: e.Payload, EventID: &e.ID})
	if err != nil {
		return false, fmt.Errorf("resolve wait: %w", translate(err))
	}
	return n == 1, nil
}

// CloseStepWaits ends the open waits of a step execution with status
// (timed_out or cancelled).
func (tx *Tx) CloseStepWaits(ctx context.Context, execID uuid.UUID, status string) error {
	if err := tx.q.WaitCloseByStep(ctx, dbsqlc.WaitCloseByStepParams{StepExecutionID: execID, Status: status}); err != nil {
		return fmt.Errorf("close step waits: %w", translate(err))
	}
	return nil
}

// CloseRunWaits ends the open waits of a run with status.
func (tx *Tx) CloseRunWaits(ctx context.Context, runID uuid.UUID, status string) error {
	if err := tx.q.WaitCloseByRun(ctx, dbsqlc.WaitCloseByRunParams{RunID: runID, Status: status}); err != nil {
		return fmt.Errorf("close run waits: %w", translate(err))
	}
	return nil
}

// LockEventKey serialises the transactions that publish events and begin
// waits with one name and key, until the transaction ends.
func (tx *Tx) LockEventKey(ctx context.Context, name, key string) error {
	if err := tx.q.EventLockKey(ctx, dbsqlc.EventLockKeyParams{Name: name, Key: key}); err != nil {
		return fmt.Errorf("lock event key: %w", translate(err))
	}
	return nil
}

func eventFromRow(r dbsqlc.Event) workflow.Event {
	e := workflow.Event{ID: r.ID, Name: r.Name, Key: r.Key, Payload: r.Payload, ReceivedAt: r.ReceivedAt}
	if r.DedupID != nil {
		e.DedupID = *r.DedupID
	}
	return e
}

// InsertEvent stores an event. With a dedup id used already it stores
// nothing and returns the earlier event and false.
func (tx *Tx) InsertEvent(ctx context.Context, e workflow.Event) (workflow.Event, bool, error) {
	params := dbsqlc.EventInsertParams{ID: e.ID, Name: e.Name, Key: e.Key, Payload: e.Payload}
	if e.DedupID != "" {
		params.DedupID = &e.DedupID
	}
	r, err := tx.q.EventInsert(ctx, params)
	if errors.Is(err, pgx.ErrNoRows) {
		earlier, err := tx.q.EventGetByDedupID(ctx, &e.DedupID)
		if err != nil {
			return workflow.Event{}, false, fmt.Errorf("read event %q: %w", e.DedupID, translate(err))
		}
		return eventFromRow(earlier), false, nil
	}
	if err != nil {
		return workflow.Event{}, false, fmt.Errorf("insert event: %w", translate(err))
	}
	return eventFromRow(r), true, nil
}

// FindRecentEvent returns the earliest event with name and key received
// within lookback (by the database's clock) that has not resumed the run
// yet, and false when there is none.
func (tx *Tx) FindRecentEvent(ctx context.Context, runID uuid.UUID, name, key string, lookback time.Duration) (workflow.Event, bool, error) {
	r, err := tx.q.EventFindRecent(ctx, dbsqlc.EventFindRecentParams{Name: name, Key: key, LookbackMs: lookback.Milliseconds(), RunID: runID})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Event{}, false, nil
	}
	if err != nil {
		return workflow.Event{}, false, fmt.Errorf("find event: %w", translate(err))
	}
	return eventFromRow(r), true, nil
}

// NextDue returns when the next work item comes due.
func (q queries) NextDue(ctx context.Context) (time.Time, error) {
	t, err := q.q.WorkItemNextDue(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("next due work: %w", translate(err))
	}
	return t, nil
}

// GetStepExecutionByKey returns the step execution of a run with the given
// key.
func (q queries) GetStepExecutionByKey(ctx context.Context, runID uuid.UUID, key string) (workflow.StepExecution, error) {
	r, err := q.q.StepExecutionGetByKey(ctx, dbsqlc.StepExecutionGetByKeyParams{RunID: runID, StepKey: key})
	if err != nil {
		return workflow.StepExecution{}, notFound(err, "run %s has no step %q", runID, key)
	}
	return stepExecutionFromRow(r), nil
}

// WaitingSteps returns the step executions of a run that are waiting.
func (q queries) WaitingSteps(ctx context.Context, runID uuid.UUID) ([]workflow.StepExecution, error) {
	rows, err := q.q.StepExecutionListWaiting(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list waiting steps: %w", translate(err))
	}
	out := make([]workflow.StepExecution, len(rows))
	for i, r := range rows {
		out[i] = stepExecutionFromRow(r)
	}
	return out, nil
}

// DeleteOldEvents deletes up to max events received more than keep ago.
func (db *DB) DeleteOldEvents(ctx context.Context, keep time.Duration, max int) (int, error) {
	n, err := db.q.EventDeleteOld(ctx, dbsqlc.EventDeleteOldParams{KeepMs: keep.Milliseconds(), Max: int32(max)})
	if err != nil {
		return 0, fmt.Errorf("delete old events: %w", translate(err))
	}
	return int(n), nil
}

// StepWaitingForInput is a wait_for_input step that waits for a person.
type StepWaitingForInput struct {
	RunID     uuid.UUID
	StepKey   string
	CreatedAt time.Time
}

// StepsWaitingForInput lists up to max steps waiting for a person, those of
// the oldest waiting runs first.
func (q queries) StepsWaitingForInput(ctx context.Context, max int) ([]StepWaitingForInput, error) {
	rows, err := q.q.StepExecutionListWaitingForInput(ctx, int32(max))
	if err != nil {
		return nil, fmt.Errorf("list steps waiting for input: %w", translate(err))
	}
	out := make([]StepWaitingForInput, len(rows))
	for i, r := range rows {
		out[i] = StepWaitingForInput{RunID: r.RunID, StepKey: r.StepKey, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// RecentEvents lists the max events received last, newest first.
func (q queries) RecentEvents(ctx context.Context, max int) ([]workflow.Event, error) {
	rows, err := q.q.EventListRecent(ctx, int32(max))
	if err != nil {
		return nil, fmt.Errorf("list recent events: %w", translate(err))
	}
	out := make([]workflow.Event, len(rows))
	for i, r := range rows {
		out[i] = eventFromRow(r)
	}
	return out, nil
}

// ResumedWait is a wait that an event resolved.
type ResumedWait struct {
	EventID    uuid.UUID
	RunID      uuid.UUID
	StepKey    string
	ResolvedAt *time.Time
}

// WaitsResumedBy lists the waits that the events resolved.
func (q queries) WaitsResumedBy(ctx context.Context, eventIDs []uuid.UUID) ([]ResumedWait, error) {
	rows, err := q.q.WaitListByEvents(ctx, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("list waits resumed by events: %w", translate(err))
	}
	out := make([]ResumedWait, 0, len(rows))
	for _, r := range rows {
		if r.EventID == nil {
			continue
		}
		out = append(out, ResumedWait{EventID: *r.EventID, RunID: r.RunID, StepKey: r.StepKey, ResolvedAt: r.ResolvedAt})
	}
	return out, nil
}
