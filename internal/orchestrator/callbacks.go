package orchestrator

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// Callback statuses.
const (
	CallbackSucceeded = "succeeded"
	CallbackFailed    = "failed"
	CallbackHeartbeat = "heartbeat"
)

// Callback is what a step endpoint (or anyone holding the callback URL)
// posts to finish a step or extend its deadline.
type Callback struct {
	Status  string
	Output  json.RawMessage
	Context json.RawMessage
	Logs    json.RawMessage
	Error   json.RawMessage
	// Retry asks for a failed callback to be retried by the step's policy;
	// without it a failure is final.
	Retry bool
	// Input answers a wait_for_input step through its callback URL.
	Input Input
}

// CallbackStep describes the step a callback token belongs to.
type CallbackStep struct {
	RunID    uuid.UUID
	Workflow string
	Version  int
	Step     string
	Type     string
	Attempt  int
	Status   string
	Deadline *time.Time
	// Question is what a wait_for_input step asks, so that a user interface
	// can be built from the callback URL alone.
	Question *Question
}

// Question is what a wait_for_input step asks a person.
type Question struct {
	Kind    string
	Prompt  string
	Options []string
	Schema  json.RawMessage
}

func questionOf(step *workflow.Step) *Question {
	if step == nil || step.WaitForInput == nil {
		return nil
	}
	w := step.WaitForInput
	return &Question{Kind: string(w.Kind), Prompt: w.Prompt, Options: w.Options, Schema: w.Schema}
}

// verifyToken checks a callback token: its MAC (forged → Unauthorized),
// then that it is the token of the attempt it names (only a hash of its
// random part is stored).
func (s *core) verifyToken(ctx context.Context, token string) (signing.CallbackRef, error) {
	ref, hash, err := s.secrets.ParseCallbackToken(token)
	switch {
	case errors.Is(err, signing.ErrForgedToken):
		return ref, fault.New(fault.Unauthorized, "the callback token is not valid")
	case err != nil:
		return ref, fault.New(fault.NotFound, "no such callback")
	}
	_, stored, err := s.db.GetStepAttempt(ctx, ref.StepExecutionID, ref.Attempt)
	if fault.Is(err, fault.NotFound) {
		return ref, fault.New(fault.NotFound, "no such callback")
	}
	if err != nil {
		return ref, err
	}
	if subtle.ConstantTimeCompare(stored, hash) != 1 {
		return ref, fault.New(fault.Unauthorized, "the callback token is not valid")
	}
	return ref, nil
}

// DescribeCallback returns what the step behind a callback token is and
// where it stands, so that a UI can be built from the URL alone.
func (s *API) DescribeCallback(ctx context.Context, token string) (CallbackStep, error) {
	ref, err := s.verifyToken(ctx, token)
	if err != nil {
		return CallbackStep{}, err
	}
	exec, err := s.db.GetStepExecution(ctx, ref.StepExecutionID)
	if err != nil {
		return CallbackStep{}, err
	}
	run, err := s.db.GetRun(ctx, exec.RunID)
	if err != nil {
		return CallbackStep{}, err
	}
	def, err := s.definitionOf(ctx, s.db, run.Workflow, run.Version)
	if err != nil {
		return CallbackStep{}, err
	}
	out := callbackStepOf(run, exec)
	out.Attempt, out.Question = ref.Attempt, questionOf(def.Step(exec.Name))
	return out, nil
}

// CompleteCallback applies a callback to the attempt its token belongs to,
// in one transaction. A step completes once: a second completion, a
// completion of a cancelled run, or one for an attempt superseded by a
// retry is a Conflict and changes nothing; one after the step's deadline is
// Gone. A success or final failure moves the run on through the queue.
func (s *API) CompleteCallback(ctx context.Context, token string, cb Callback) (CallbackStep, error) {
	out, err := s.completeCallback(ctx, token, cb)
	s.obs.CallbackAnswered(callbackOutcome(cb, err))
	return out, err
}

// callbackOutcome is what a callback did, or why it was refused, as the
// metrics count it.
func callbackOutcome(cb Callback, err error) string {
	if err == nil {
		if cb.Status == "" {
			return "input"
		}
		return string(cb.Status)
	}
	switch fault.KindOf(err) {
	case fault.Gone:
		return "expired"
	case fault.Conflict:
		return "conflict"
	case fault.NotFound, fault.Unauthorized:
		return "rejected"
	case fault.Malformed, fault.Invalid, fault.TooLarge:
		return "invalid"
	case fault.Unavailable:
		return "unavailable"
	}
	return "error"
}

func (s *API) completeCallback(ctx context.Context, token string, cb Callback) (CallbackStep, error) {
	ref, err := s.verifyToken(ctx, token)
	if err != nil {
		return CallbackStep{}, err
	}
	if exec, err := s.db.GetStepExecution(ctx, ref.StepExecutionID); err != nil {
		return CallbackStep{}, err
	} else if exec.Type == string(workflow.StepWaitForInput) {
		return s.giveInput(ctx, ref.StepExecutionID, ref.Attempt, cb.Input)
	}
	switch cb.Status {
	case CallbackSucceeded, CallbackFailed, CallbackHeartbeat:
	default:
		return CallbackStep{}, fault.WithProblems(fault.Invalid, "the callback has no status", []fault.Problem{{Path: "/status", Message: "must be succeeded, failed or heartbeat for a call step"}})
	}
	var out CallbackStep
	err = s.db.InTx(ctx, func(tx *postgres.Tx) error {
		found, err := tx.GetStepExecution(ctx, ref.StepExecutionID)
		if err != nil {
			return err
		}
		items, err := tx.LockRunWork(ctx, found.RunID)
		if err != nil {
			return err
		}
		exec, expired, err := tx.LockStepExecution(ctx, ref.StepExecutionID)
		if err != nil {
			return err
		}
		run, err := tx.GetRun(ctx, exec.RunID)
		if err != nil {
			return err
		}
		out = callbackStepOf(run, exec)
		out.Attempt = ref.Attempt
		tokenAttempt, _, err := tx.GetStepAttempt(ctx, ref.StepExecutionID, ref.Attempt)
		if err != nil {
			return err
		}
		// Expiry first: a callback past its deadline is Gone even once the
		// timeout has failed the step and its run.
		switch {
		case tokenAttempt.Status == "timed_out":
			return fault.New(fault.Gone, "attempt %d of step %s timed out; the callback has expired", ref.Attempt, exec.Key)
		case expired && exec.Attempt == ref.Attempt && (exec.Status == "running" || exec.Status == "waiting"):
			return fault.New(fault.Gone, "the deadline of step %s has passed; the callback has expired", exec.Key)
		case run.Status.Terminal():
			return fault.New(fault.Conflict, "run %s is %s; the callback changes nothing", run.ID, run.Status)
		case exec.Attempt != ref.Attempt:
			return fault.New(fault.Conflict, "attempt %d of step %s is over; attempt %d is current", ref.Attempt, exec.Key, exec.Attempt)
		case exec.Status != "running" && exec.Status != "waiting":
			return fault.New(fault.Conflict, "step %s is %s already", exec.Key, exec.Status)
		}
		item, ok := workItemOf(items, exec.ID)
		if !ok {
			return fmt.Errorf("run %s has no work item for step %s", run.ID, exec.Key)
		}
		a, err := s.currentAttempt(ctx, tx, item, run, exec)
		if err != nil {
			return err
		}
		if a.step.Call == nil {
			return fault.New(fault.Conflict, "step %s is a %s step and takes no callback", exec.Key, exec.Type)
		}
		if cb.Status == CallbackHeartbeat {
			deadline, err := s.heartbeat(ctx, tx, a, exec.Status)
			out.Deadline = &deadline
			return err
		}
		out.Status, err = s.applyCallback(ctx, tx, a, cb)
		return err
	})
	return out, err
}

// workItemOf finds the work item that tracks a step execution.
func workItemOf(items []postgres.WorkItem, execID uuid.UUID) (postgres.WorkItem, bool) {
	for _, it := range items {
		if it.StepExecutionID != nil && *it.StepExecutionID == execID {
			return it, true
		}
	}
	return postgres.WorkItem{}, false
}

// heartbeat extends a step's deadline by its callback timeout from now.
func (s *core) heartbeat(ctx context.Context, tx *postgres.Tx, a *attempt, status string) (time.Time, error) {
	wait := time.Duration(a.step.Call.CallbackTimeout)
	deadline, ok, err := tx.ExtendStepDeadline(ctx, a.execID, a.number, wait)
	if err != nil || !ok {
		return deadline, orStale(err, ok)
	}
	if status == "waiting" {
		// Move the timeout with the deadline. A step still "running" (its
		// 202 not recorded yet) keeps the worker's lease.
		if err := tx.RetargetWork(ctx, a.item.ID, postgres.WorkTarget{Kind: postgres.WorkStepTimeout, StepExecutionID: &a.execID, Attempt: a.number}, wait); err != nil {
			return deadline, err
		}
	}
	appendHistory(tx, a.state.Run.ID, workflow.EventStepHeartbeat, a.key, &a.number, map[string]any{"deadline": deadline.UTC()})
	return deadline, nil
}

// applyCallback finishes a step from a callback: success hands the run to
// the queue to start its next step; failure is retried (when the callback
// asks for it and attempts remain) or fails the step and the run. The work
// item is repointed without regard to any lease, so a worker still holding
// it (the 202 not recorded yet) finds its lease gone.
func (s *core) applyCallback(ctx context.Context, tx *postgres.Tx, a *attempt, cb Callback) (string, error) {
	runID := a.state.Run.ID
	// A callback whose data is too large is refused, not recorded: its
	// sender can send a smaller one.
	if len(cb.Output) > s.limits.MaxOutputBytes {
		return "", fault.WithProblems(fault.TooLarge, "the output is too large", []fault.Problem{{Path: "/output", Message: fmt.Sprintf("the limit is %d bytes", s.limits.MaxOutputBytes)}})
	}
	tooLarge := fault.WithProblems(fault.TooLarge, "the context is too large", []fault.Problem{{Path: "/context", Message: fmt.Sprintf("merged into the run's context it exceeds the limit of %d bytes", s.limits.MaxContextBytes)}})
	if len(cb.Context) > s.limits.MaxContextBytes {
		return "", tooLarge
	}
	ans := engine.Answer{Outcome: engine.Succeeded, Output: cb.Output, Context: cb.Context, Logs: cb.Logs}
	if cb.Status != CallbackSucceeded {
		ans = engine.Answer{Outcome: engine.Permanent, Error: cb.Error}
		if ans.Error == nil {
			ans.Error = engine.ErrorJSON("the step reported a failure through its callback", 0)
		}
		if cb.Retry {
			ans.Outcome = engine.Retryable
		}
	}
	d := engine.Judge(a.state, a.step, a.at(), ans, s.limits.engine(), rand.Int64N)
	switch d.Verdict {
	case engine.Succeed:
		if err := tx.RetargetWork(ctx, a.item.ID, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: a.key}, 0); err != nil {
			return "", err
		}
		if _, err := tx.MarkRunRunning(ctx, runID); err != nil {
			return "", err
		}
		merged, err := s.recordSuccess(ctx, tx, a, success{output: d.Output, patch: d.Patch, logs: cb.Logs, data: map[string]any{"by": "callback"}})
		if err != nil {
			return "", err
		}
		if len(merged) > s.limits.MaxContextBytes {
			return "", tooLarge
		}
		return "succeeded", nil
	case engine.Retry:
		if err := tx.RetargetWork(ctx, a.item.ID, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: a.number + 1}, d.Delay); err != nil {
			return "", err
		}
		if _, err := tx.MarkRunRunning(ctx, runID); err != nil {
			return "", err
		}
		if err := s.recordRetry(ctx, tx, a, d.Error, 0, "failed", d.Delay, map[string]any{"by": "callback"}); err != nil {
			return "", err
		}
		return "pending", nil
	}
	if ok, err := tx.FinishStepAttempt(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: "failed", Error: d.Error}); err != nil || !ok {
		return "", orStale(err, ok)
	}
	return "failed", s.failStepExecution(ctx, tx, a, d.Error)
}
