package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// Defaults of waits whose definition names none.
const (
	// DefaultWaitTimeout bounds a wait_for_event or wait_for_input step
	// without a timeout: no run waits for ever by accident.
	DefaultWaitTimeout = 7 * 24 * time.Hour
	// maxEventWaits bounds the waits one event resumes in one transaction.
	maxEventWaits = 10000
)

// isWait reports whether a step type waits rather than calls.
func isWait(t workflow.StepType) bool {
	return t == workflow.StepSleep || t == workflow.StepWaitForEvent || t == workflow.StepWaitForInput
}

// waitTimeout is how long a waiting step may wait: a call_workflow step
// without a timeout as long as its child runs.
func (s *core) waitTimeout(step *workflow.Step) time.Duration {
	var d workflow.Duration
	switch {
	case step.WaitForEvent != nil:
		d = step.WaitForEvent.Timeout
	case step.WaitForInput != nil:
		d = step.WaitForInput.Timeout
	case step.CallWorkflow != nil:
		if d = step.CallWorkflow.Timeout; d == 0 {
			return childWaitForever
		}
	}
	if d > 0 {
		return time.Duration(d)
	}
	return s.defaultWaitTimeout
}

// startWait starts a waiting step in tx: a sleep until its wake time, a wait
// for events (resolved at once by events received within its look-back
// window), or a wait for a person. The work item becomes the wait's timer.
// When the wait cannot begin (an expression fails), the step and the run
// fail instead.
func (s *core) startWait(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) error {
	a := newExecution(item, st, step)
	kind, wait := postgres.WorkWaitTimeout, s.waitTimeout(step)
	var wakeAt *time.Time
	var conditions []postgres.EventCondition
	var prepErr error
	switch {
	case step.Sleep != nil:
		var wake time.Time
		if wake, prepErr = step.Sleep.WakeAt(ctx, time.Now(), st.Activation()); prepErr == nil {
			kind, wait = postgres.WorkTimer, time.Until(wake)
			if step.Sleep.Duration == 0 {
				wakeAt = &wake // an absolute time: by the database's clock too
			}
		}
	case step.WaitForEvent != nil:
		conditions, prepErr = eventConditions(ctx, st, step.WaitForEvent, wait)
	}
	var hash []byte
	if step.WaitForInput != nil {
		// A stable token: GET /v1/runs/{id} shows its URL to whoever reads
		// the run, and only its hash is stored.
		token, h, err := s.secrets.StableCallbackToken(signing.CallbackRef{StepExecutionID: a.execID, Attempt: 1})
		if err != nil {
			return fmt.Errorf("new callback token: %w", err)
		}
		a.token, hash = token, h
	}
	exec := s.execution(a, nil)
	exec.CallbackHash = hash
	if prepErr != nil {
		// Start it as a step in progress, under the lease, to fail it.
		if err := s.beginExecution(ctx, tx, st, item, exec); err != nil {
			return err
		}
		return s.failStep(ctx, tx, a, engine.ErrorJSON(fmt.Sprintf("the wait could not begin: %v", prepErr), 0), 0, "failed")
	}
	if st.Run.Status == workflow.RunPending {
		appendHistory(tx, st.Run.ID, workflow.EventRunStarted, "", nil, nil)
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepStarted, a.key, &a.number, nil)
	deadline, ok, err := tx.StartWait(ctx, postgres.WaitStart{Work: item, Kind: kind, Wait: wait, WakeAt: wakeAt, Exec: exec})
	if err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	data := map[string]any{"deadline": deadline.UTC()}
	if len(conditions) > 0 {
		var events []map[string]string
		for _, c := range conditions {
			events = append(events, map[string]string{"event": c.Name, "key": c.Key})
		}
		data["events"] = events
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepWaiting, a.key, &a.number, data)
	if len(conditions) == 0 {
		return nil
	}
	// Waits begin in the order of their keys, as publishers lock them, so
	// that two transactions never wait for each other's key locks.
	slices.SortFunc(conditions, func(x, y postgres.EventCondition) int {
		return strings.Compare(x.Name+"\x00"+x.Key, y.Name+"\x00"+y.Key)
	})
	resolved := false
	for _, c := range conditions {
		if err := tx.LockEventKey(ctx, c.Name, c.Key); err != nil {
			return err
		}
		waitID, err := tx.InsertEventWait(ctx, st.Run.ID, a.execID, c)
		if err != nil {
			return err
		}
		e, found, err := tx.FindRecentEvent(ctx, st.Run.ID, c.Name, c.Key, c.Lookback)
		if err != nil {
			return err
		}
		if found {
			if _, err := tx.ResolveWait(ctx, waitID, e); err != nil {
				return err
			}
			resolved = true
		}
	}
	if !resolved {
		return nil
	}
	waits, err := tx.WaitsOfStep(ctx, a.execID)
	if err != nil {
		return err
	}
	if output, done := eventOutput(step.WaitForEvent, waits); done {
		return s.completeWait(ctx, tx, item.ID, a, output, map[string]any{"by": "lookback"})
	}
	return nil
}

// eventConditions evaluates the keys of a wait_for_event step.
func eventConditions(ctx context.Context, st *runState, w *workflow.WaitForEventStep, timeout time.Duration) ([]postgres.EventCondition, error) {
	out := make([]postgres.EventCondition, len(w.Events))
	for i, m := range w.Events {
		key, err := m.Key.EvalString(ctx, st.Activation())
		if err != nil {
			return nil, fmt.Errorf("the key of event %q: %w", m.Event, err)
		}
		out[i] = postgres.EventCondition{Index: i, Name: m.Event, Key: key, Lookback: time.Duration(w.Lookback), Timeout: timeout}
	}
	return out, nil
}

// eventOutput says whether a wait_for_event step's waits are satisfied and
// what its output is then: the payload of its event (one, any), or every
// payload by event name (all).
func eventOutput(w *workflow.WaitForEventStep, waits []workflow.Wait) (json.RawMessage, bool) {
	if w.Mode != workflow.EventAll {
		for _, wt := range waits {
			if wt.Status == "resolved" {
				return engine.OrNull(wt.Resolution), true
			}
		}
		return nil, false
	}
	byName := map[string]json.RawMessage{}
	for _, wt := range waits {
		if wt.Status != "resolved" {
			return nil, false
		}
		byName[wt.EventName] = engine.OrNull(wt.Resolution)
	}
	b, _ := json.Marshal(byName) // raw JSON values always encode
	return b, true
}

// completeWait ends a waiting step successfully with output: its attempt
// and execution succeed, its remaining waits close, and the run's work
// item (workID, locked by the caller) hands the run to the queue to start
// its next step.
func (s *core) completeWait(ctx context.Context, tx *postgres.Tx, workID int64, a *attempt, output json.RawMessage, data map[string]any) error {
	return s.endWait(ctx, tx, workID, a, "succeeded", output, data)
}

// endWait is completeWait with the attempt's own status: "timed_out" for a
// wait whose timeout continues the run.
func (s *core) endWait(ctx context.Context, tx *postgres.Tx, workID int64, a *attempt, attemptStatus string, output json.RawMessage, data map[string]any) error {
	runID := a.state.Run.ID
	if err := tx.RetargetWork(ctx, workID, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: a.key}, 0); err != nil {
		return err
	}
	if _, err := tx.MarkRunRunning(ctx, runID); err != nil {
		return err
	}
	_, err := s.recordSuccess(ctx, tx, a, success{output: output, attemptStatus: attemptStatus, closeWaits: true, data: data})
	return err
}

// fireSleep ends a sleep whose wake time came: the step succeeds, saying
// when it woke and how late (a timer due while no worker ran fires late).
func (s *core) fireSleep(ctx context.Context, item postgres.WorkItem) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error {
		a, exec, err := s.lockWaitingStep(ctx, tx, item)
		if err != nil || a == nil {
			return err
		}
		late := max(time.Since(*exec.Deadline), 0)
		output, _ := json.Marshal(map[string]any{"woke_at": time.Now().UTC(), "late_ms": late.Milliseconds()})
		return s.completeWait(ctx, tx, item.ID, a, output, map[string]any{"late_ms": late.Milliseconds()})
	})
}

// timeOutWait fires the deadline of a wait for events or a person: with
// on_timeout "fail" the step times out and the run ends timed_out; with
// "continue" the step succeeds with an output that says it timed out.
func (s *core) timeOutWait(ctx context.Context, item postgres.WorkItem) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error {
		a, exec, err := s.lockWaitingStep(ctx, tx, item)
		if err != nil || a == nil {
			return err
		}
		if err := tx.CloseStepWaits(ctx, a.execID, "timed_out"); err != nil {
			return err
		}
		if a.step.CallWorkflow != nil {
			// Nobody waits for the step's child any more; children started
			// without waiting are left to run.
			if err := s.cancelStepChild(ctx, tx, exec); err != nil {
				return err
			}
		}
		appendHistory(tx, a.state.Run.ID, workflow.EventStepTimedOut, a.key, &a.number, nil)
		onTimeout := workflow.ActionFail
		switch {
		case a.step.WaitForEvent != nil:
			onTimeout = a.step.WaitForEvent.OnTimeout
		case a.step.WaitForInput != nil:
			onTimeout = a.step.WaitForInput.OnTimeout
		}
		if onTimeout == workflow.ActionContinue {
			return s.endWait(ctx, tx, item.ID, a, "timed_out", json.RawMessage(`{"timed_out": true}`), map[string]any{"timed_out": true})
		}
		stepErr := engine.ErrorJSON(fmt.Sprintf("the wait timed out after %s", s.waitTimeout(a.step)), 0)
		if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: "timed_out", Error: stepErr}, "timed_out", nil); err != nil || !ok {
			return orStale(err, ok)
		}
		appendHistory(tx, a.state.Run.ID, workflow.EventStepFailed, a.key, &a.number, map[string]any{"error": stepErr})
		s.stepEnded(ctx, tx, a, "timed_out", stepErr)
		return s.propagateFailure(ctx, tx, a.state, a.key, a.execID, stepErr, true)
	})
}

// lockWaitingStep locks a timer item the caller leases, its run and the
// waiting step execution it belongs to, and describes the step's attempt.
// It returns errLeaseLost when the lease was lost; nil, having completed
// the stale item, when nothing waits on it any more; and nil, having
// rescheduled the item, when the deadline has not come yet.
func (s *core) lockWaitingStep(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem) (*attempt, workflow.StepExecution, error) {
	if _, ok, err := tx.LockLeasedWorkAndRun(ctx, item); err != nil || !ok {
		return nil, workflow.StepExecution{}, orLeaseLost(err, ok)
	}
	exec, expired, err := tx.LockStepExecution(ctx, *item.StepExecutionID)
	if err != nil {
		return nil, exec, err
	}
	if exec.Status != "waiting" || exec.Attempt != item.Attempt {
		_, err := tx.CompleteWork(ctx, item)
		return nil, exec, err
	}
	if !expired {
		_, err := tx.RescheduleWork(ctx, item, postgres.WorkTarget{Kind: item.Kind, StepExecutionID: &exec.ID, Attempt: exec.Attempt}, time.Until(*exec.Deadline))
		return nil, exec, err
	}
	run, err := tx.GetRun(ctx, item.RunID)
	if err != nil {
		return nil, exec, err
	}
	a, err := s.currentAttempt(ctx, tx, item, run, exec)
	return a, exec, err
}

// PublishedEvent is what publishing an event did.
type PublishedEvent struct {
	Event     workflow.Event
	Duplicate bool // an event with the same id was published before; nothing happened
	Resumed   int  // waiting steps the event matched
}

// PublishEvent stores an event and resumes every run waiting for it, each
// exactly once, in one transaction. An event id (dedupID) used before
// publishes nothing. The event is kept, so that a wait beginning within its
// look-back window after it still sees it.
func (s *API) PublishEvent(ctx context.Context, e workflow.Event) (PublishedEvent, error) {
	if len(e.Payload) > s.limits.MaxOutputBytes {
		return PublishedEvent{}, fault.WithProblems(fault.TooLarge, "the event payload is too large", []fault.Problem{{Path: "/payload", Message: fmt.Sprintf("the limit is %d bytes", s.limits.MaxOutputBytes)}})
	}
	e.ID = uuid.Must(uuid.NewV7())
	var out PublishedEvent
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		out = PublishedEvent{}
		if err := tx.LockEventKey(ctx, e.Name, e.Key); err != nil {
			return err
		}
		stored, inserted, err := tx.InsertEvent(ctx, e)
		if err != nil {
			return err
		}
		out.Event, out.Duplicate = stored, !inserted
		if !inserted {
			return nil
		}
		waits, err := tx.OpenWaitsForEvent(ctx, e.Name, e.Key, maxEventWaits)
		if err != nil {
			return err
		}
		for i := 0; i < len(waits); {
			j := i
			for j < len(waits) && waits[j].RunID == waits[i].RunID {
				j++
			}
			n, err := s.resumeRun(ctx, tx, waits[i:j], stored)
			if err != nil {
				return err
			}
			out.Resumed += n
			i = j
		}
		return nil
	})
	if err != nil {
		return PublishedEvent{}, fmt.Errorf("publish event %s: %w", e.Name, err)
	}
	if !out.Duplicate {
		s.obs.EventPublished()
	}
	return out, nil
}

// resumeRun applies an event to one run's open waits for it, returning how
// many waiting steps it matched.
func (s *core) resumeRun(ctx context.Context, tx *postgres.Tx, waits []workflow.Wait, e workflow.Event) (int, error) {
	items, err := tx.LockRunWork(ctx, waits[0].RunID)
	if err != nil {
		return 0, err
	}
	matched := 0
	for _, w := range waits {
		exec, expired, err := tx.LockStepExecution(ctx, w.StepExecutionID)
		if err != nil {
			return matched, err
		}
		if exec.Status != "waiting" || expired {
			continue
		}
		if ok, err := tx.ResolveWait(ctx, w.ID, e); err != nil || !ok {
			if err != nil {
				return matched, err
			}
			continue
		}
		matched++
		item, ok := workItemOf(items, exec.ID)
		if !ok {
			return matched, fmt.Errorf("run %s has no work item for step %s", exec.RunID, exec.Key)
		}
		run, err := tx.GetRun(ctx, exec.RunID)
		if err != nil {
			return matched, err
		}
		a, err := s.currentAttempt(ctx, tx, item, run, exec)
		if err != nil {
			return matched, err
		}
		all, err := tx.WaitsOfStep(ctx, exec.ID)
		if err != nil {
			return matched, err
		}
		if output, done := eventOutput(a.step.WaitForEvent, all); done {
			if err := s.completeWait(ctx, tx, item.ID, a, output, map[string]any{"event": e.Name, "event_id": e.ID}); err != nil {
				return matched, err
			}
		}
	}
	return matched, nil
}

// Input is a person's answer to a wait_for_input step.
type Input struct {
	Value   json.RawMessage
	By      string
	Comment string
}

// GiveInput answers the wait_for_input step stepKey of a run. The value is
// validated against what the step asks for (a boolean for approval, one of
// the options for choice, a string for text, an object valid against the
// form's schema); an invalid one is refused and the run keeps waiting.
func (s *API) GiveInput(ctx context.Context, runID uuid.UUID, stepKey string, in Input) (CallbackStep, error) {
	exec, err := s.db.GetStepExecutionByKey(ctx, runID, stepKey)
	if err != nil {
		return CallbackStep{}, err
	}
	return s.giveInput(ctx, exec.ID, 0, in)
}

// giveInput answers the waiting input step exec; a non-zero attempt
// requires that attempt (callbacks).
func (s *core) giveInput(ctx context.Context, execID uuid.UUID, attempt int, in Input) (CallbackStep, error) {
	var out CallbackStep
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		found, err := tx.GetStepExecution(ctx, execID)
		if err != nil {
			return err
		}
		items, err := tx.LockRunWork(ctx, found.RunID)
		if err != nil {
			return err
		}
		exec, expired, err := tx.LockStepExecution(ctx, execID)
		if err != nil {
			return err
		}
		run, err := tx.GetRun(ctx, exec.RunID)
		if err != nil {
			return err
		}
		out = callbackStepOf(run, exec)
		if exec.Type != string(workflow.StepWaitForInput) {
			return fault.New(fault.Conflict, "step %s is a %s step and takes no input", exec.Key, exec.Type)
		}
		current, _, err := tx.GetStepAttempt(ctx, exec.ID, exec.Attempt)
		if err != nil {
			return err
		}
		switch {
		case exec.Status == "timed_out" || current.Status == "timed_out" || (expired && exec.Status == "waiting"):
			return fault.New(fault.Gone, "step %s timed out; it takes no input any more", exec.Key)
		case run.Status.Terminal():
			return fault.New(fault.Conflict, "run %s is %s; the input changes nothing", run.ID, run.Status)
		case exec.Status != "waiting" || (attempt != 0 && attempt != exec.Attempt):
			return fault.New(fault.Conflict, "step %s is %s; it took its input already", exec.Key, exec.Status)
		}
		item, ok := workItemOf(items, exec.ID)
		if !ok {
			return fmt.Errorf("run %s has no work item for step %s", run.ID, exec.Key)
		}
		a, err := s.currentAttempt(ctx, tx, item, run, exec)
		if err != nil {
			return err
		}
		value, err := checkInput(a.step.WaitForInput, in.Value)
		if err != nil {
			return err
		}
		output := map[string]any{"value": json.RawMessage(in.Value)}
		if in.By != "" {
			output["by"] = in.By
		}
		if in.Comment != "" {
			output["comment"] = in.Comment
		}
		approval := a.step.WaitForInput.Kind == workflow.InputApproval
		if approval {
			output["approved"] = value
		}
		raw, err := json.Marshal(output)
		if err != nil {
			return fmt.Errorf("encode input: %w", err)
		}
		data := map[string]any{"by": in.By}
		if approval && value == false && a.step.WaitForInput.OnReject != workflow.ActionContinue {
			stepErr, _ := json.Marshal(map[string]any{"message": "the approval was rejected", "input": json.RawMessage(raw)})
			if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: "failed", Error: stepErr}, "failed", nil); err != nil || !ok {
				return orStale(err, ok)
			}
			out.Status = "failed"
			return s.failRun(ctx, tx, a, stepErr)
		}
		out.Status = "succeeded"
		return s.completeWait(ctx, tx, item.ID, a, raw, data)
	})
	return out, err
}

// checkInput validates a person's input for a step, returning it decoded.
func checkInput(w *workflow.WaitForInputStep, raw json.RawMessage) (any, error) {
	invalid := func(message string) error {
		return fault.WithProblems(fault.Invalid, "the input is not valid for this step", []fault.Problem{{Path: "/value", Message: message}})
	}
	if len(raw) == 0 {
		return nil, invalid("a value is required")
	}
	v, err := workflow.DecodeJSON(raw)
	if err != nil {
		return nil, invalid("not valid JSON")
	}
	switch w.Kind {
	case workflow.InputApproval:
		if _, ok := v.(bool); !ok {
			return nil, invalid("must be true (approve) or false (reject)")
		}
	case workflow.InputChoice:
		s, ok := v.(string)
		if !ok || !slices.Contains(w.Options, s) {
			return nil, invalid(fmt.Sprintf("must be one of %s", strings.Join(quoteAll(w.Options), ", ")))
		}
	case workflow.InputText:
		if _, ok := v.(string); !ok {
			return nil, invalid("must be a string")
		}
	case workflow.InputForm:
		if problems := w.ValidateInput(v); len(problems) > 0 {
			ps := make([]fault.Problem, len(problems))
			for i, p := range problems {
				ps[i] = fault.Problem{Path: "/value" + p.Path, Message: p.Message}
			}
			return nil, fault.WithProblems(fault.Invalid, "the input does not match the form", ps)
		}
	}
	return v, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// callbackStepOf describes a step execution for callback and input answers.
func callbackStepOf(run workflow.Run, exec workflow.StepExecution) CallbackStep {
	return CallbackStep{
		RunID: run.ID, Workflow: run.Workflow, Version: run.Version, Step: exec.Key, Type: exec.Type,
		Attempt: exec.Attempt, Status: exec.Status, Deadline: exec.Deadline,
	}
}
