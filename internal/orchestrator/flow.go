package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// priorityStep is how much queue time one point of priority is worth: work
// of priority p is due (p−50) × priorityStep earlier than work of the
// default priority made due at the same instant, and work that has been
// due longer than the difference is claimed first all the same, so a low
// priority is delayed, never starved. The database's flow_head_start says
// the same for runs admitted from a queue.
const priorityStep = 100 * time.Millisecond

// headStart is how much earlier than now a run's first work is due for
// its priority (negative: later).
func headStart(priority int) time.Duration {
	return time.Duration(priority-workflow.DefaultPriority) * priorityStep
}

// concurrencyRecheck is how long a step held by a full concurrency key
// waits before it looks again, and recheckJitter spreads the steps that
// wait on one key so that they do not all look at once.
const (
	concurrencyRecheck = 250 * time.Millisecond
	recheckJitter      = 250 * time.Millisecond
)

// runKeys evaluates a workflow's concurrency keys against a run's input:
// "run:<workflow>#<limit's index>=<value>".
func runKeys(ctx context.Context, def *workflow.Definition, name string, input []byte) ([]postgres.FlowLimit, error) {
	v, err := workflow.DecodeJSON(input)
	if err != nil {
		return nil, err
	}
	a := workflow.Activation{Input: v}
	limits := make([]postgres.FlowLimit, len(def.Concurrency))
	for i, c := range def.Concurrency {
		k, err := workflow.FlowKey(ctx, c.Key, a)
		if err != nil {
			return nil, err
		}
		limits[i] = postgres.FlowLimit{Key: fmt.Sprintf("run:%s#%d=%s", name, i, k), Limit: c.Limit}
	}
	return limits, nil
}

// enterRun gives a new run its places under its workflow's concurrency
// limits, and reports false when it was queued instead.
func (s *core) enterRun(ctx context.Context, tx *postgres.Tx, def *workflow.Definition, run *workflow.Run, priority int) (bool, error) {
	limits, err := runKeys(ctx, def, run.Workflow, run.Input)
	if err != nil {
		msg := fmt.Sprintf("the workflow's concurrency key could not be evaluated: %v", err)
		return false, fault.WithProblems(fault.Invalid, msg, []fault.Problem{{Path: "/input", Message: msg}})
	}
	entered, err := tx.EnterRun(ctx, run.ID, priority, limits)
	if err != nil || entered {
		return entered, err
	}
	run.Status = workflow.RunQueued
	appendHistory(tx, run.ID, workflow.EventRunQueued, "", nil, nil)
	return false, nil
}

// flowKeyError is a step's flow-control key that could not be evaluated:
// the step fails with it.
type flowKeyError struct{ err error }

func (e flowKeyError) Error() string {
	return "the step's flow-control key could not be evaluated: " + e.err.Error()
}

// stepKeys evaluates a call step's concurrency keys
// ("step:<workflow>/<step>#<index>=<value>") and its rate limit's bucket
// ("rate:<name>=<value>", or "rate:<workflow>/<step>=<value>" unnamed).
func stepKeys(ctx context.Context, st *runState, step *workflow.Step) ([]postgres.FlowLimit, string, error) {
	a := st.Activation()
	c := step.Call
	limits := make([]postgres.FlowLimit, len(c.Concurrency))
	for i, l := range c.Concurrency {
		k, err := workflow.FlowKey(ctx, l.Key, a)
		if err != nil {
			return nil, "", flowKeyError{err}
		}
		limits[i] = postgres.FlowLimit{Key: fmt.Sprintf("step:%s/%s#%d=%s", st.Run.Workflow, step.Name, i, k), Limit: l.Limit}
	}
	var bucket string
	if r := c.RateLimit; r != nil {
		var k string
		if r.Key != nil {
			var err error
			if k, err = workflow.FlowKey(ctx, r.Key, a); err != nil {
				return nil, "", flowKeyError{err}
			}
		}
		bucket = fmt.Sprintf("rate:%s/%s=%s", st.Run.Workflow, step.Name, k)
		if r.Name != "" {
			bucket = fmt.Sprintf("rate:%s=%s", r.Name, k)
		}
	}
	return limits, bucket, nil
}

// passFlow lets attempt a of a step with flow limits be made, taking its
// places and its token, and reports false; or, when a limit holds it,
// gives its work item back as the same attempt, due when it may look
// again (no retry attempt is used), records why on the run, and reports
// true.
func (s *core) passFlow(ctx context.Context, tx *postgres.Tx, a *attempt) (bool, error) {
	st := a.state
	limits, bucket, err := stepKeys(ctx, st, a.step)
	if err != nil {
		return false, err
	}
	now := time.Now().UTC()
	var blocked *workflow.Blocked
	var wait time.Duration
	if len(limits) > 0 {
		full, err := tx.EnterStep(ctx, a.execID, st.Run.ID, limits, s.leaseFor(a.step))
		if err != nil {
			return false, err
		}
		if full != "" {
			blocked = &workflow.Blocked{Reason: workflow.BlockedConcurrency, Key: full, Step: a.key, Since: now}
			wait = concurrencyRecheck + rand.N(recheckJitter)
		}
	}
	if r := a.step.Call.RateLimit; blocked == nil && r != nil {
		w, err := tx.TakeToken(ctx, bucket, r.Limit, time.Duration(r.Period))
		if err != nil {
			return false, err
		}
		if w > 0 {
			if len(limits) > 0 {
				if err := tx.LeaveStep(ctx, a.execID); err != nil {
					return false, err
				}
			}
			// The waiters of one bucket come back a little apart: each
			// finds the token the one before it left.
			wait = w + rand.N(time.Duration(r.Period)/time.Duration(r.Limit)/4+time.Millisecond)
			until := now.Add(wait)
			blocked = &workflow.Blocked{Reason: workflow.BlockedThrottled, Key: bucket, Step: a.key, Since: now, Until: &until}
		}
	}
	a.bucket = bucket
	if blocked == nil {
		if st.Run.Blocked != nil {
			st.Run.Blocked = nil
			return false, tx.SetRunBlocked(ctx, st.Run.ID, nil)
		}
		return false, nil
	}
	if prev := st.Run.Blocked; prev != nil && prev.Reason == blocked.Reason && prev.Key == blocked.Key && prev.Step == blocked.Step {
		blocked.Since = prev.Since
	}
	if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: a.number}, wait); err != nil || !ok {
		return false, orLeaseLost(err, ok)
	}
	if err := tx.SetRunBlocked(ctx, st.Run.ID, blocked); err != nil {
		return false, err
	}
	run, step, reason := st.Run.Workflow, a.step.Name, blocked.Reason
	tx.AfterCommit(func() { s.obs.FlowHeld(run, step, reason) })
	return true, nil
}

// leaveFlow gives back the places an attempt held once its request has
// ended, whatever it answered, and pauses its rate limit's bucket when the
// endpoint answered 429 with Retry-After.
func (s *core) leaveFlow(ctx context.Context, tx *postgres.Tx, a *attempt, status int, retryAfter time.Duration) error {
	c := a.step.Call
	if len(c.Concurrency) > 0 {
		if err := tx.LeaveStep(ctx, a.execID); err != nil {
			return err
		}
	}
	if c.RateLimit != nil && a.bucket != "" && status == 429 && retryAfter > 0 {
		return tx.PauseBucket(ctx, a.bucket, retryAfter)
	}
	return nil
}

// startHeldStep starts a call step with flow limits: its execution is
// created pending, with its input, and its work item becomes the invoke of
// attempt 1, due now, which passes the limits before the attempt is made
// (see [core.restartStep]). An input that cannot be built fails the step
// as it does for any call.
func (s *core) startHeldStep(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	a, start, renderErr, err := s.prepareStart(ctx, item, st, step)
	if err != nil {
		return nil, err
	}
	if renderErr != nil {
		return s.startPrepared(ctx, tx, a, start, renderErr)
	}
	if ok, err := tx.RescheduleWork(ctx, item, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: 1}, 0); err != nil || !ok {
		return nil, orLeaseLost(err, ok)
	}
	if err := tx.InsertPendingStep(ctx, st.Run.ID, start.Exec); err != nil {
		return nil, err
	}
	if st.Run.Status == workflow.RunPending {
		appendHistory(tx, st.Run.ID, workflow.EventRunStarted, "", nil, nil)
	}
	if st.Run.Status != workflow.RunRunning {
		if _, err := tx.MarkRunRunning(ctx, st.Run.ID); err != nil {
			return nil, err
		}
		st.Run.Status = workflow.RunRunning
	}
	return nil, tx.Notify(ctx)
}

// failHeld fails a step whose flow-control key could not be evaluated,
// before its attempt a.number was made.
func (s *core) failHeld(ctx context.Context, tx *postgres.Tx, a *attempt, err error) error {
	var ke flowKeyError
	if !errors.As(err, &ke) {
		return err
	}
	a.number--
	if ok, err := tx.CompleteWork(ctx, a.item); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	return s.failStepExecution(ctx, tx, a, engine.ErrorJSON(ke.Error(), 0))
}
