package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// Lanes are what parallel and foreach steps run side by side: one per
// branch, one per item. Each is a step execution of type "lane" whose parent
// is the block's execution, and each runs its steps with work items of its
// own that any worker may claim. How keys name them: see [engine].

// laneExecType is the step type of a lane's execution.
const laneExecType = "lane"

// itemOf is what a foreach lane's execution records as its input.
type itemOf struct {
	Item  json.RawMessage `json:"item"`
	Index int64           `json:"index"`
}

// startBlock starts a parallel or foreach step: its execution records the
// branches or the items, and its first lanes open — every branch, or as
// many items as its concurrency allows — each with a work item that starts
// the lane's first step, except the first lane: the work item that reached
// the block starts it, and the worker goes on with it. A foreach over no
// items succeeds at once.
func (s *core) startBlock(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	a := newExecution(item, st, step)
	input, names, total, open, problem := engine.Lanes(ctx, st, step, s.limits.engine())
	if err := s.beginExecution(ctx, tx, st, item, s.execution(a, input)); err != nil {
		return nil, err
	}
	if problem != nil {
		return nil, s.failStep(ctx, tx, a, engine.ErrorJSON(problem.Error(), 0), 0, "failed")
	}
	if ok, err := tx.SetBlockLanes(ctx, a.execID, total); err != nil || !ok {
		return nil, orStale(err, ok)
	}
	block := postgres.BlockCounts{ID: a.execID, Status: "running", Attempt: 1}
	if total == 0 {
		if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
		return nil, s.finishBlock(ctx, tx, st, step, a.key, block)
	}
	opened, err := tx.OpenLanes(ctx, a.execID, open, names, true)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(opened))
	for i, l := range opened {
		keys[i] = l.Key
	}
	appendHistory(tx, st.Run.ID, workflow.EventLanesOpened, a.key, nil, map[string]any{"lanes": keys, "total": total})
	return s.goOnWith(ctx, tx, item, st, opened[0])
}

// goOnWith starts the first step of a lane that the transaction opened with
// the work item the worker holds, so that the worker goes on with it at once
// rather than leaving it to a claim. Its siblings' items are left to any
// worker.
func (s *core) goOnWith(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, lane postgres.OpenedLane) (*attempt, error) {
	inLane, err := s.enterLane(ctx, tx, st, lane)
	if err != nil {
		return nil, err
	}
	first, err := firstOfLane(inLane, lane.Key)
	if err != nil {
		return nil, err
	}
	return s.startStep(ctx, tx, item, inLane, first)
}

// enterLane is the state of a lane the transaction opened, from st, the
// state of its block or of a lane of it that ended. A foreach item's is
// derived without reading the run again: its item is the lane's input, and
// what is outside the foreach is what st sees, unless the foreach is in a
// lane itself, whose siblings may have moved on since st was read.
func (s *core) enterLane(ctx context.Context, q runReader, st *runState, lane postgres.OpenedLane) (*runState, error) {
	blockKey, _ := engine.LaneBlock(lane.Key)
	blockScope, name := engine.SplitKey(blockKey)
	block := st.Def.Step(name)
	if block == nil || block.Foreach == nil || engine.LaneOf(st.Def, blockScope, name) != "" {
		return inScope(ctx, q, st, engine.ScopeOf(st.Def, lane.Key))
	}
	var in itemOf
	if err := json.Unmarshal(lane.Input, &in); err != nil {
		return nil, fmt.Errorf("decode item of lane %s: %w", lane.Key, err)
	}
	item, err := workflow.DecodeJSON(engine.OrNull(in.Item))
	if err != nil {
		return nil, fmt.Errorf("decode item of lane %s: %w", lane.Key, err)
	}
	return st.EnterItem(block, lane.Key, item, in.Index), nil
}

// startLane starts the first step of a lane that a block opened, unless a
// failing sibling cancelled the lane meanwhile.
func (s *core) startLane(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, laneKey string) (*attempt, error) {
	if gone, err := s.laneGone(ctx, tx, item, st, laneKey); err != nil || gone {
		return nil, err
	}
	first, err := firstOfLane(st, laneKey)
	if err != nil {
		return nil, err
	}
	return s.startStep(ctx, tx, item, st, first)
}

// laneGone reports whether a lane is no longer running (a failing sibling
// cancelled it, or the run ended), in which case the work item that would
// go on in it is done.
func (s *core) laneGone(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, laneKey string) (bool, error) {
	running, err := tx.LaneRunning(ctx, st.Run.ID, laneKey)
	if err != nil || running {
		return false, err
	}
	_, err = tx.CompleteWork(ctx, item)
	return true, err
}

// firstOfLane returns the first step of a lane.
func firstOfLane(st *runState, laneKey string) (*workflow.Step, error) {
	if first := engine.FirstOfLane(st.Def, laneKey); first != nil {
		return first, nil
	}
	return nil, fmt.Errorf("run %s has no lane %s in %s v%d", st.Run.ID, laneKey, st.Run.Workflow, st.Run.Version)
}

// endLane ends a lane whose last step succeeded with output, for a worker
// holding item: the worker goes on with the foreach item that opens in the
// lane's place, if any; else its item is done.
func (s *core) endLane(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, laneKey string, output json.RawMessage) (*attempt, error) {
	block, ok, err := tx.EndLane(ctx, st.Run.ID, laneKey, "succeeded", output, nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		_, err := tx.CompleteWork(ctx, item)
		return nil, err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepSucceeded, laneKey, nil, nil)
	return s.laneEnded(ctx, tx, st, laneKey, block, &item)
}

// failLane ends a lane because its step failedKey failed with stepErr. The
// block fails at once under fail_fast; otherwise the lane's failure is
// counted and its siblings go on.
func (s *core) failLane(ctx context.Context, tx *postgres.Tx, st *runState, laneKey, failedKey string, stepErr json.RawMessage) error {
	laneErr := engine.LaneError(failedKey, stepErr)
	block, ok, err := tx.EndLane(ctx, st.Run.ID, laneKey, "failed", nil, laneErr)
	if err != nil || !ok {
		return err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepFailed, laneKey, nil, map[string]any{"error": laneErr})
	if block.Status != "running" {
		return nil
	}
	blockKey, _ := engine.LaneBlock(laneKey)
	step := st.Def.Step(engine.BlockName(blockKey))
	if blockErr := engine.LaneFailed(step, laneKey, laneErr); blockErr != nil {
		return s.failBlock(ctx, tx, st, step, blockKey, block, blockErr)
	}
	_, err = s.laneEnded(ctx, tx, st, laneKey, block, nil)
	return err
}

// laneStep is the fast form of recording that a call step, the last of its
// lane, succeeded without a context answer: the locks of the worker's work
// item and of the run, the step's success, the lane's end and the opening of
// the foreach's next item are one statement ([postgres.Tx.SucceedLaneSteps]),
// and what follows is decided from what it did (see [core.succeedLastOfLane]).
// The statement is known before the transaction begins, so a batch of a
// run's transitions sends those of all its lane steps together (see
// [core.recordTurns]).
type laneStep struct {
	success postgres.LaneStepSuccess
	output  json.RawMessage
	// outcome is what the statement did, once a batch sent it; nil until
	// then.
	outcome *postgres.LaneStepOutcome
}

// prepareLastOfLane returns the lane step that records a's result, or nil
// when the case is not that simple (the worker is draining, the step
// answered otherwise, or its lane does not end with it) and the general
// path must record the result. The answer is judged before the run's
// context is read again: without a context answer, the verdict does not
// depend on it.
func (s *core) prepareLastOfLane(a *attempt, res httpstep.Result, draining bool) *laneStep {
	st := a.state
	if draining || !st.Def.HasLanes() || a.step.Call.HasFlowLimits() {
		return nil
	}
	after := engine.After(st.Def, st.Scope, a.step.Name)
	if after.Lane == "" || len(after.Ended) > 0 {
		return nil
	}
	d := s.judge(a, res)
	if d.Verdict != engine.Succeed || d.Patch != nil {
		return nil
	}
	return &laneStep{
		success: postgres.LaneStepSuccess{
			Work:    a.item,
			Result:  postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, HTTPStatus: res.HTTPStatus, Logs: res.Logs},
			Output:  d.Output,
			LaneKey: after.Lane,
		},
		output: d.Output,
	}
}

// succeedLastOfLane records a's result as the lane step l, for a worker
// holding a's item: it sends l's statement unless a batch did, and goes on
// from what it did as [core.endLane] does. It returns errLeaseLost or
// errStale, having changed nothing, when the statement was refused.
func (s *core) succeedLastOfLane(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result, l *laneStep) (*attempt, error) {
	if l.outcome == nil {
		r, err := tx.SucceedLaneSteps(ctx, []postgres.LaneStepSuccess{l.success})
		if err != nil {
			return nil, err
		}
		l.outcome = &r[0]
	}
	r := *l.outcome
	switch {
	case !r.Leased:
		return nil, errLeaseLost
	case !r.Finished:
		return nil, errStale
	}
	st := a.state
	if !bytes.Equal(r.Context, st.CtxRaw) {
		if err := st.SetContext(r.Context); err != nil {
			return nil, err
		}
	}
	if err := st.SetOutput(a.step.Name, l.output); err != nil {
		return nil, err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepSucceeded, a.key, &a.number, map[string]any{"http_status": res.HTTPStatus, "duration_ms": res.Duration.Milliseconds()})
	s.stepEnded(ctx, tx, a, StepSucceeded, nil)
	laneKey := l.success.LaneKey
	if !r.LaneEnded {
		_, err := tx.CompleteWork(ctx, a.item)
		return nil, err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepSucceeded, laneKey, nil, nil)
	var opened []postgres.OpenedLane
	if r.Opened != nil {
		opened = []postgres.OpenedLane{*r.Opened}
	}
	return s.goOnAfterLane(ctx, tx, st, laneKey, r.Block, &a.item, opened)
}

// laneEnded goes on after a lane of a running block ended: a foreach opens
// its next item, and the block ends once every lane has. A worker passes
// the work item it holds (else nil): it starts the next item with it, or
// the item is done.
func (s *core) laneEnded(ctx context.Context, tx *postgres.Tx, st *runState, laneKey string, block postgres.BlockCounts, item *postgres.WorkItem) (*attempt, error) {
	var opened []postgres.OpenedLane
	if blockOf(block).Opens() {
		var err error
		if opened, err = tx.OpenLanes(ctx, block.ID, 1, nil, item != nil); err != nil {
			return nil, err
		}
	}
	return s.goOnAfterLane(ctx, tx, st, laneKey, block, item, opened)
}

// goOnAfterLane is what follows the end of a lane once the foreach opened
// what it opens in its place (see [core.laneEnded]).
func (s *core) goOnAfterLane(ctx context.Context, tx *postgres.Tx, st *runState, laneKey string, block postgres.BlockCounts, item *postgres.WorkItem, opened []postgres.OpenedLane) (*attempt, error) {
	if item != nil && len(opened) == 1 {
		return s.goOnWith(ctx, tx, *item, st, opened[0])
	}
	if item != nil {
		if ok, err := tx.CompleteWork(ctx, *item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
	}
	if block.Status != "running" {
		return nil, nil
	}
	blockKey, _ := engine.LaneBlock(laneKey)
	if !blockOf(block).Done() {
		// The lanes still open may all be waiting.
		_, err := tx.MarkRunWaiting(ctx, st.Run.ID)
		return nil, err
	}
	return nil, s.finishBlock(ctx, tx, st, st.Def.Step(engine.BlockName(blockKey)), blockKey, block)
}

// finishBlock ends a block all of whose lanes ended: it succeeds with its
// lanes' outputs merged, or fails when lanes failed that its on_error does
// not tolerate, or when merging fails; then the run goes on after it.
func (s *core) finishBlock(ctx context.Context, tx *postgres.Tx, st *runState, step *workflow.Step, blockKey string, block postgres.BlockCounts) error {
	var output, patch json.RawMessage
	var problem json.RawMessage
	// The context as it is now, read when the block merges into it: other
	// lanes merged their context answers after this state was loaded.
	var before json.RawMessage
	if engine.MergesContext(step) {
		run, err := tx.GetRun(ctx, st.Run.ID)
		if err != nil {
			return err
		}
		before = run.Context
	}
	if step.Parallel != nil {
		lanes, err := tx.Lanes(ctx, block.ID)
		if err != nil {
			return err
		}
		if output, patch, problem, err = engine.JoinBranches(step, lanesOf(lanes), before); err != nil {
			return err
		}
	} else {
		results, failures, err := tx.CollectLanes(ctx, block.ID)
		if err != nil {
			return err
		}
		output, patch = engine.CollectItems(step, results, failures)
	}
	if problem == nil && len(output) > s.limits.MaxOutputBytes {
		problem = engine.ErrorJSON(fmt.Sprintf("the step's merged output is %d bytes; the limit is %d", len(output), s.limits.MaxOutputBytes), 0)
	}
	if problem == nil && patch != nil {
		merged, err := tx.MergeRunContext(ctx, st.Run.ID, patch)
		if err != nil {
			return err
		}
		if len(merged) > s.limits.MaxContextBytes {
			// Failing the block does not roll the merge back: put the
			// context back as it was.
			problem = engine.ErrorJSON(fmt.Sprintf("merging the step's output into the context would make it larger than %d bytes", s.limits.MaxContextBytes), 0)
			if err := tx.SetRunContext(ctx, st.Run.ID, before); err != nil {
				return err
			}
		} else if err := st.SetContext(merged); err != nil {
			return err
		}
	}
	if problem != nil {
		return s.failBlock(ctx, tx, st, step, blockKey, block, problem)
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: block.ID, Attempt: block.Attempt, Status: "succeeded"}, "succeeded", output); err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepSucceeded, blockKey, &block.Attempt, nil)
	s.countStep(tx, st.Run, blockKey, StepSucceeded)
	return tx.EnqueueWork(ctx, st.Run.ID, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: blockKey}, 0)
}

// failBlock fails a block: what still runs in its lanes is cancelled (their
// late results are ignored, their child runs cancelled), and the failure
// goes on outward.
func (s *core) failBlock(ctx context.Context, tx *postgres.Tx, st *runState, step *workflow.Step, blockKey string, block postgres.BlockCounts, blockErr json.RawMessage) error {
	cancelled, err := tx.CancelStepTree(ctx, st.Run.ID, block.ID)
	if err != nil {
		return err
	}
	for _, c := range cancelled {
		if c.Type == string(workflow.StepCallWorkflow) && len(c.Input) > 0 {
			if err := s.cancelStepChild(ctx, tx, workflow.StepExecution{ID: c.ID, RunID: st.Run.ID, Key: c.Key, Input: c.Input}); err != nil {
				return err
			}
		}
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: block.ID, Attempt: block.Attempt, Status: "failed", Error: blockErr}, "failed", nil); err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepFailed, blockKey, &block.Attempt, map[string]any{"error": blockErr, "cancelled": len(cancelled)})
	s.countStep(tx, st.Run, blockKey, StepFailed)
	return s.propagateFailure(ctx, tx, st, blockKey, block.ID, blockErr, false)
}

// blockOf is a block's counts as the engine reads them.
func blockOf(b postgres.BlockCounts) engine.Block {
	return engine.Block{Status: b.Status, Total: b.Total, Started: b.Started, Ended: b.Ended, Failed: b.Failed}
}

// lanesOf is a block's lanes as the engine reads them.
func lanesOf(lanes []postgres.Lane) []engine.Lane {
	out := make([]engine.Lane, len(lanes))
	for i, l := range lanes {
		out[i] = engine.Lane{Index: l.Index, Status: l.Status, Output: l.Output, Error: l.Error}
	}
	return out
}
