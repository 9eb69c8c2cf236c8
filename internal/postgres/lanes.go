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

// BlockCounts is how far the lanes of a parallel or foreach step's
// execution have come.
type BlockCounts struct {
	ID      uuid.UUID
	Status  string // the block's own status: "running" until it ends
	Attempt int
	Total   int // lanes it has
	Started int // lanes opened
	Ended   int // lanes ended, failed or not
	Failed  int // lanes ended failed
}

// Lane is one ended or running lane of a block.
type Lane struct {
	Key    string
	Index  int
	Status string
	Output json.RawMessage
	Error  json.RawMessage
}

// CancelledStep is a step execution that [Tx.CancelStepTree] cancelled.
type CancelledStep struct {
	ID    uuid.UUID
	Key   string
	Type  string
	Input json.RawMessage
}

// SetBlockLanes records how many lanes a block execution has. It returns
// false when the block is not running.
func (tx *Tx) SetBlockLanes(ctx context.Context, id uuid.UUID, total int) (bool, error) {
	lanes := int32(total)
	n, err := tx.q.BlockSetLanes(ctx, dbsqlc.BlockSetLanesParams{ID: id, Total: &lanes})
	if err != nil {
		return false, fmt.Errorf("set block lanes: %w", translate(err))
	}
	return n == 1, nil
}

// OpenedLane is a lane that [Tx.OpenLanes] opened, and the work item that
// starts it (0 for a first lane the caller starts itself).
type OpenedLane struct {
	Key    string
	Input  json.RawMessage
	WorkID int64
}

// OpenLanes opens up to n more lanes of a running block, in lane order,
// each with a work item that starts it — except the first when keepFirst:
// the caller starts that one with the work item it holds. names are a
// parallel step's branch names, nil for a foreach.
func (tx *Tx) OpenLanes(ctx context.Context, blockID uuid.UUID, n int, names []string, keepFirst bool) ([]OpenedLane, error) {
	if names == nil {
		names = []string{}
	}
	rows, err := tx.q.LaneOpen(ctx, dbsqlc.LaneOpenParams{N: int32(n), BlockID: blockID, Names: names, KeepFirst: keepFirst})
	if err != nil {
		return nil, fmt.Errorf("open lanes: %w", translate(err))
	}
	out := make([]OpenedLane, len(rows))
	queued := false
	for i, r := range rows {
		out[i] = OpenedLane{Key: r.StepKey, Input: r.Input}
		if r.WorkID != nil {
			out[i].WorkID, queued = *r.WorkID, true
		}
	}
	if queued {
		return out, tx.Notify(ctx)
	}
	return out, nil
}

// EndLane ends a running lane with status (succeeded or failed), output and
// error, and returns its block's counts; false when the lane had ended.
func (tx *Tx) EndLane(ctx context.Context, runID uuid.UUID, laneKey, status string, output, laneErr json.RawMessage) (BlockCounts, bool, error) {
	r, err := tx.q.LaneEnd(ctx, dbsqlc.LaneEndParams{Status: status, Output: output, Error: laneErr, RunID: runID, LaneKey: laneKey})
	if errors.Is(err, pgx.ErrNoRows) {
		return BlockCounts{}, false, nil
	}
	if err != nil {
		return BlockCounts{}, false, fmt.Errorf("end lane %s: %w", laneKey, translate(err))
	}
	c := BlockCounts{ID: r.ID, Status: r.Status, Attempt: int(r.Attempt), Started: int(r.LanesStarted), Ended: int(r.LanesEnded), Failed: int(r.LanesFailed)}
	if r.LanesTotal != nil {
		c.Total = int(*r.LanesTotal)
	}
	return c, true, nil
}

// LaneStepSuccess is the success of a lane's last step, for
// [Tx.SucceedLaneSteps].
type LaneStepSuccess struct {
	Work    WorkItem
	Result  AttemptResult   // Status and Error are ignored: the attempt succeeded
	Output  json.RawMessage // the step's output, and its lane's
	LaneKey string
}

// LaneStepOutcome is what [Tx.SucceedLaneSteps] did for one lane step.
type LaneStepOutcome struct {
	Leased   bool            // false: the lease was lost, and nothing changed
	Finished bool            // false: the attempt was over, and nothing changed
	Context  json.RawMessage // the run's context as it is now
	// LaneEnded is false when the lane had ended already; Block is then
	// empty.
	LaneEnded bool
	Block     BlockCounts // after the lane ended
	// Opened is the block's next item, opened for the caller to start with
	// its work item; nil when none was.
	Opened *OpenedLane
}

// Changed reports whether the statement changed anything: it was not
// refused.
func (o LaneStepOutcome) Changed() bool { return o.Leased && o.Finished }

// SucceedLaneSteps records, in one statement each, that lanes' last steps
// succeeded, under the locks a lane's transition takes: each locks its work
// item by its lease and the run's row, records the step's success, ends the
// lane and counts it at its block, and opens the block's next item if it is
// a running foreach with items left, without a work item of its own. A
// refused one changes nothing and raises no error, so those of many of a
// run's transitions go in one round trip. What the engine decides next —
// starting the opened item, or the block's end — is the caller's.
func (tx *Tx) SucceedLaneSteps(ctx context.Context, steps []LaneStepSuccess) ([]LaneStepOutcome, error) {
	params := make([]dbsqlc.LaneStepSucceedParams, len(steps))
	for i, p := range steps {
		params[i] = dbsqlc.LaneStepSucceedParams{
			WorkID: p.Work.ID, LeaseToken: &p.Work.LeaseToken, Logs: p.Result.Logs, ID: p.Result.StepExecutionID,
			Attempt: int32(p.Result.Attempt), Output: p.Output, LaneKey: p.LaneKey,
		}
		if p.Result.HTTPStatus != 0 {
			s := int32(p.Result.HTTPStatus)
			params[i].HttpStatus = &s
		}
	}
	out := make([]LaneStepOutcome, len(steps))
	var firstErr error
	results := tx.q.LaneStepSucceed(ctx, params)
	results.QueryRow(func(i int, r dbsqlc.LaneStepSucceedRow, err error) {
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("succeed lane step %s: %w", steps[i].LaneKey, translate(err))
			}
			return
		}
		if r.Leased {
			tx.lockedLease(steps[i].Work)
		}
		out[i] = laneStepOutcome(r)
	})
	if err := results.Close(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("succeed lane steps: %w", translate(err))
	}
	return out, firstErr
}

func laneStepOutcome(r dbsqlc.LaneStepSucceedRow) LaneStepOutcome {
	out := LaneStepOutcome{Leased: r.Leased, Finished: r.Finished, Context: r.Context, LaneEnded: r.LaneEnded}
	if r.BlockID != nil {
		out.Block = BlockCounts{
			ID: *r.BlockID, Status: deref(r.BlockStatus), Attempt: int(deref(r.BlockAttempt)), Total: int(deref(r.LanesTotal)),
			Started: int(deref(r.LanesStarted)), Ended: int(deref(r.LanesEnded)), Failed: int(deref(r.LanesFailed)),
		}
	}
	if r.OpenedKey != nil {
		out.Opened = &OpenedLane{Key: *r.OpenedKey, Input: r.OpenedInput}
	}
	return out
}

// deref is *p, or the zero value for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// LaneRunning reports whether a lane of a run is running.
func (tx *Tx) LaneRunning(ctx context.Context, runID uuid.UUID, laneKey string) (bool, error) {
	status, err := tx.q.LaneStatus(ctx, dbsqlc.LaneStatusParams{RunID: runID, LaneKey: laneKey})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lane status: %w", translate(err))
	}
	return status == "running", nil
}

// Lanes returns a block's lanes in order.
func (tx *Tx) Lanes(ctx context.Context, blockID uuid.UUID) ([]Lane, error) {
	rows, err := tx.q.LaneList(ctx, &blockID)
	if err != nil {
		return nil, fmt.Errorf("list lanes: %w", translate(err))
	}
	out := make([]Lane, len(rows))
	for i, r := range rows {
		out[i] = Lane{Key: r.StepKey, Status: r.Status, Output: r.Output, Error: r.Error}
		if r.LaneIndex != nil {
			out[i].Index = int(*r.LaneIndex)
		}
	}
	return out, nil
}

// CollectLanes returns a block's lane outputs in order (null for a lane that
// failed) and the errors of its failed lanes, as JSON arrays.
func (tx *Tx) CollectLanes(ctx context.Context, blockID uuid.UUID) (results, laneErrors json.RawMessage, err error) {
	r, err := tx.q.LaneCollect(ctx, &blockID)
	if err != nil {
		return nil, nil, fmt.Errorf("collect lanes: %w", translate(err))
	}
	return r.Results, r.Errors, nil
}

// CancelStepTree cancels everything unfinished below a step execution —
// executions, their attempts in progress and open waits — and drops their
// queued work, except work another transaction holds (it finds its step
// cancelled and drops it itself), and the items that the root or foreach
// blocks below it never opened. It returns what it cancelled.
func (tx *Tx) CancelStepTree(ctx context.Context, runID, rootID uuid.UUID) ([]CancelledStep, error) {
	rows, err := tx.q.StepTreeCancel(ctx, &rootID)
	if err != nil {
		return nil, fmt.Errorf("cancel steps: %w", translate(err))
	}
	out := make([]CancelledStep, len(rows))
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i] = CancelledStep{ID: r.ID, Key: r.StepKey, Type: r.StepType, Input: r.Input}
		ids[i] = r.ID
	}
	if err := tx.q.BlockItemDeleteMany(ctx, append([]uuid.UUID{rootID}, ids...)); err != nil {
		return nil, fmt.Errorf("drop block items: %w", translate(err))
	}
	if len(ids) == 0 {
		return out, nil
	}
	if err := tx.q.StepAttemptCancelMany(ctx, ids); err != nil {
		return nil, fmt.Errorf("cancel attempts: %w", translate(err))
	}
	if err := tx.q.WaitCloseMany(ctx, ids); err != nil {
		return nil, fmt.Errorf("close waits: %w", translate(err))
	}
	if err := tx.DropStepWork(ctx, runID, ids...); err != nil {
		return nil, err
	}
	return out, nil
}

// DropStepWork deletes the work items of step executions that ended out of
// turn, except work another transaction holds (it finds its step ended and
// drops it itself).
func (tx *Tx) DropStepWork(ctx context.Context, runID uuid.UUID, ids ...uuid.UUID) error {
	if err := tx.q.WorkItemDeleteByStep(ctx, dbsqlc.WorkItemDeleteByStepParams{RunID: runID, Ids: ids}); err != nil {
		return fmt.Errorf("drop step work: %w", translate(err))
	}
	return nil
}

// SetRunContext replaces a run's context.
func (tx *Tx) SetRunContext(ctx context.Context, id uuid.UUID, raw json.RawMessage) error {
	if err := tx.q.RunSetContext(ctx, dbsqlc.RunSetContextParams{ID: id, Context: raw}); err != nil {
		return fmt.Errorf("set run context: %w", translate(err))
	}
	return nil
}

// DropStaleWork deletes a leased work item whose step execution has ended,
// and reports whether it did.
func (db *DB) DropStaleWork(ctx context.Context, w WorkItem) (bool, error) {
	n, err := db.q.WorkItemDeleteStale(ctx, dbsqlc.WorkItemDeleteStaleParams{ID: w.ID, LeaseToken: &w.LeaseToken})
	if err != nil {
		return false, fmt.Errorf("drop stale work: %w", translate(err))
	}
	return n == 1, nil
}
