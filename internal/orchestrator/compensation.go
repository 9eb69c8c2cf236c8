package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// compensableSteps names a definition's call steps that have a compensation.
func compensableSteps(def *workflow.Definition) []string {
	var names []string
	def.Walk(func(_ string, step *workflow.Step) bool {
		if step.Call != nil && step.Call.Compensate != nil {
			names = append(names, step.Name)
		}
		return true
	})
	return names
}

// startCompensation turns a failing run into a compensating one when steps
// with a compensation have succeeded: the run keeps its failure as its
// error, its other work is dropped, and the compensation of the step that
// finished last is queued. It returns false when there is nothing to
// compensate, and the run should simply fail.
func (s *core) startCompensation(ctx context.Context, tx *postgres.Tx, runID uuid.UUID, runErr json.RawMessage) (bool, error) {
	run, err := tx.GetRun(ctx, runID)
	if err != nil {
		return false, err
	}
	def, err := s.definitionOf(ctx, tx, run.Workflow, run.Version)
	if err != nil {
		return false, err
	}
	names := compensableSteps(def)
	if len(names) == 0 {
		return false, nil
	}
	next, ok, err := tx.NextToCompensate(ctx, runID, names)
	if err != nil || !ok {
		return false, err
	}
	if ok, err := tx.StartCompensating(ctx, runID, runErr); err != nil || !ok {
		return false, err
	}
	if err := tx.DeleteRunWork(ctx, runID); err != nil {
		return false, err
	}
	if err := tx.EnqueueWork(ctx, runID, postgres.WorkTarget{Kind: postgres.WorkCompensate, StepExecutionID: &next.ID, Attempt: 1}, 0); err != nil {
		return false, err
	}
	appendHistory(tx, runID, workflow.EventRunCompensating, "", nil, map[string]any{"error": runErr})
	s.runEnded(ctx, tx, run, workflow.RunCompensating, runErr)
	return true, nil
}

// compensation is one attempt at a step's compensation, ready to be made:
// the worker holds the lease of item while it makes it.
type compensation struct {
	item    postgres.WorkItem
	run     workflow.Run
	step    *workflow.Step
	key     string // the compensated step execution's key
	execID  uuid.UUID
	number  int
	request httpstep.Request
	// leaseEnd is when the worker's lease on the attempt ends, by this
	// process's clock (a little before the database's).
	leaseEnd time.Time
}

// compensate makes one attempt at a compensation and records its outcome.
// A worker lost in the middle loses its lease, and another makes the same
// attempt again; the endpoint recognises it by its webhook-id.
func (w *Worker) compensate(ctx context.Context, item postgres.WorkItem) {
	c, err := w.svc.prepareCompensation(ctx, item)
	if err == nil && c != nil {
		comp := c.step.Call.Compensate
		span := w.svc.startAttemptSpan(ctx, stepSpan(c.run, c.execID), attemptOf{
			run: c.run, name: c.step.Name, key: c.key, number: c.number, compensation: true, method: comp.Method, url: comp.URL,
		})
		carryTrace(span, &c.request)
		res := w.cfg.Client.Invoke(ctx, c.request)
		endAttemptSpan(span, res)
		if ctx.Err() != nil {
			return // the lease runs out and the attempt is made again
		}
		err = w.recording(ctx, item.RunID, c.key, c.leaseEnd, func(ctx context.Context) error {
			return w.svc.recordCompensation(ctx, c, res)
		})
	}
	if err != nil && !errors.Is(err, errLeaseLost) && !errors.Is(err, errStale) {
		w.svc.logger.ErrorContext(ctx, "compensate", "run_id", item.RunID, "error", err)
	}
}

// prepareCompensation builds the request of a compensation attempt and
// extends the lease to cover it. It returns nil when the run is no longer
// compensating (it was cancelled) or the step is compensated already.
func (s *core) prepareCompensation(ctx context.Context, item postgres.WorkItem) (*compensation, error) {
	var c *compensation
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if ok, err := tx.LockLeasedWork(ctx, item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		run, err := tx.GetRun(ctx, item.RunID)
		if err != nil {
			return err
		}
		exec, err := tx.GetStepExecution(ctx, *item.StepExecutionID)
		if err != nil {
			return err
		}
		if run.Status != workflow.RunCompensating || exec.Status != "succeeded" {
			_, err := tx.CompleteWork(ctx, item)
			return err
		}
		scope, _ := engine.SplitKey(exec.Key)
		st, err := s.loadRunState(ctx, tx, run, scope)
		if err != nil {
			return err
		}
		step := st.Def.Step(exec.Name)
		if step == nil || step.Call == nil || step.Call.Compensate == nil {
			return fmt.Errorf("step %s of run %s has no compensation", exec.Name, run.ID)
		}
		comp := step.Call.Compensate
		job := &compensation{item: item, run: run, step: step, key: exec.Key, execID: exec.ID, number: item.Attempt}
		lost, ok, err := tx.PrepareCompensation(ctx, exec.ID, job.number)
		if err != nil || !ok {
			return orStale(err, ok)
		}
		if lost > engine.MaxAbandoned {
			// Its workers keep dying: the compensation fails for good
			// rather than loop for ever.
			return s.endCompensation(ctx, tx, job, engine.ErrorJSON(fmt.Sprintf("the compensation's workers were lost during %d of its attempts", lost), 0))
		}
		input := exec.Input
		var problem error
		if comp.Input != nil {
			if input, problem = comp.Input.RenderJSON(ctx, st.Activation()); problem != nil {
				problem = fmt.Errorf("the compensation's input could not be built: %w", problem)
			}
		}
		headers, err := comp.RenderHeaders(ctx, st.Activation())
		if err != nil && problem == nil {
			problem = fmt.Errorf("the compensation's headers could not be built: %w", err)
		}
		if problem != nil {
			// Rendering fails the same way every time: the compensation
			// fails for good without a request.
			return s.endCompensation(ctx, tx, job, engine.ErrorJSON(problem.Error(), 0))
		}
		deadline := time.Now().Add(time.Duration(comp.Timeout))
		body, err := json.Marshal(stepRequestBody{
			RunID: run.ID, Workflow: workflowRef{run.Workflow, run.Version}, Step: step.Name, Attempt: job.number,
			Compensation: true, Input: engine.OrNull(input), Output: engine.OrNull(exec.Output), Context: st.CtxRaw,
			Deadline: deadline.UTC().Truncate(time.Second),
		})
		if err != nil {
			return fmt.Errorf("encode compensation request: %w", err)
		}
		job.request = httpstep.Request{
			URL: comp.URL, Method: comp.Method, Headers: headers, Body: body,
			WebhookID: "cmp_" + exec.ID.String(), Timeout: time.Duration(comp.Timeout),
		}
		target := postgres.WorkTarget{Kind: postgres.WorkCompensate, StepExecutionID: &exec.ID, Attempt: job.number}
		if ok, err := tx.ContinueWork(ctx, item, target, time.Duration(comp.Timeout)+s.leaseMargin); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		job.leaseEnd = deadline.Add(s.leaseMargin)
		c = job
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// recordCompensation records how a compensation attempt ended: the next
// compensation is queued, or the attempt is retried later, or the run ends.
// Any 2xx answer, 202 included, counts as done.
func (s *core) recordCompensation(ctx context.Context, c *compensation, res httpstep.Result) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if ok, err := tx.LockLeasedWork(ctx, c.item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		switch d := engine.JudgeCompensation(c.step.Call.Compensate.Retry, c.number, answerOf(res), rand.Int64N); d.Verdict {
		case engine.Succeed:
			return s.endCompensation(ctx, tx, c, nil)
		case engine.Retry:
			target := postgres.WorkTarget{Kind: postgres.WorkCompensate, StepExecutionID: &c.execID, Attempt: c.number + 1}
			if ok, err := tx.RescheduleWork(ctx, c.item, target, d.Delay); err != nil || !ok {
				return orLeaseLost(err, ok)
			}
			appendHistory(tx, c.run.ID, workflow.EventCompensationRetryScheduled, c.key, &c.number,
				map[string]any{"http_status": res.HTTPStatus, "error": d.Error, "retry_in_ms": d.Delay.Milliseconds()})
			return nil
		default:
			return s.endCompensation(ctx, tx, c, d.Error)
		}
	})
}

// endCompensation records a step's compensation as done (stepErr nil) or
// failed for good. After a success the next compensation is queued, or the
// run ends compensated when none is left; after a failure the run ends
// compensation_failed at once, leaving the earlier steps uncompensated,
// since their compensations may rely on this one.
func (s *core) endCompensation(ctx context.Context, tx *postgres.Tx, c *compensation, stepErr json.RawMessage) error {
	status, event := "compensated", workflow.EventStepCompensated
	if stepErr != nil {
		status, event = "compensation_failed", workflow.EventStepCompensationFailed
	}
	if ok, err := tx.SetCompensation(ctx, c.execID, status, stepErr); err != nil || !ok {
		return orStale(err, ok)
	}
	var data map[string]any
	if stepErr != nil {
		data = map[string]any{"error": stepErr}
	}
	appendHistory(tx, c.run.ID, event, c.key, &c.number, data)
	s.countStep(tx, c.run, c.key, status)
	if stepErr != nil {
		details, err := json.Marshal(map[string]json.RawMessage{"run_error": engine.OrNull(c.run.Error), "compensation_error": stepErr})
		if err != nil {
			return fmt.Errorf("encode the compensation's failure: %w", err)
		}
		runErr := engine.RunError(fmt.Sprintf("the compensation of step %s failed", c.key), "compensation_failed", c.key, details)
		return s.endRun(ctx, tx, c.run.ID, engine.RunEnd{Status: workflow.RunCompensationFailed, Event: workflow.EventRunCompensationFailed, Error: runErr})
	}
	def, err := s.definitionOf(ctx, tx, c.run.Workflow, c.run.Version)
	if err != nil {
		return err
	}
	next, ok, err := tx.NextToCompensate(ctx, c.run.ID, compensableSteps(def))
	if err != nil {
		return err
	}
	if !ok {
		return s.endRun(ctx, tx, c.run.ID, engine.RunEnd{Status: workflow.RunCompensated, Event: workflow.EventRunCompensated, Error: c.run.Error})
	}
	target := postgres.WorkTarget{Kind: postgres.WorkCompensate, StepExecutionID: &next.ID, Attempt: 1}
	if ok, err := tx.RescheduleWork(ctx, c.item, target, 0); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	return tx.Notify(ctx)
}
