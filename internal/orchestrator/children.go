package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

const (
	// MaxRunDepth bounds the nesting of child runs: a workflow that calls
	// itself fails at this depth instead of running away.
	MaxRunDepth = 10
	// childWaitForever is the deadline of a call_workflow step without a
	// timeout: it waits as long as its child runs (the run's own timeout,
	// if any, still applies).
	childWaitForever = 100 * 365 * 24 * time.Hour
)

// childInput is what a call_workflow step execution records as its input.
type childInput struct {
	RunID    uuid.UUID       `json:"run_id"`
	Workflow string          `json:"workflow"`
	Version  int             `json:"version"`
	Input    json.RawMessage `json:"input"`
}

// startChild starts a call_workflow step: a child run of the named
// workflow, linked to the step both ways, starts in the same transaction.
// With wait (the default) the step waits for the child and takes its output
// or fails with its error; without, it succeeds at once with the child's
// id. A child that cannot start (unknown or archived workflow, too deep, an
// input that cannot be built) fails the step and the run.
func (s *core) startChild(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) error {
	cw := step.CallWorkflow
	a := newExecution(item, st, step)
	var problem error
	input := json.RawMessage(`{}`)
	if cw.Input != nil {
		rendered, err := cw.Input.RenderJSON(ctx, st.Activation())
		if err != nil {
			problem = fmt.Errorf("the child's input could not be built: %w", err)
		}
		input = rendered
	}
	if problem == nil && st.Run.Depth+1 > MaxRunDepth {
		problem = fmt.Errorf("child runs nest at most %d deep", MaxRunDepth)
	}
	var version workflow.WorkflowVersion
	if problem == nil {
		var err error
		if version, err = resolveVersion(ctx, tx, cw.Workflow, cw.Version); err != nil {
			if !fault.Is(err, fault.Invalid) && !fault.Is(err, fault.Conflict) {
				return err
			}
			problem = err // unknown, or archived
		}
	}
	if problem == nil {
		if canonical, err := canonicalJSON(input); err == nil {
			input = canonical
		}
		if len(input) > s.limits.MaxInputBytes {
			problem = fmt.Errorf("the child's input is %d bytes; the limit is %d", len(input), s.limits.MaxInputBytes)
		}
	}
	exec := s.execution(a, nil)
	if problem != nil {
		if err := s.beginExecution(ctx, tx, st, item, exec); err != nil {
			return err
		}
		return s.failStep(ctx, tx, a, engine.ErrorJSON(problem.Error(), 0), 0, "failed")
	}

	childID := uuid.Must(uuid.NewV7())
	exec.Input, _ = json.Marshal(childInput{RunID: childID, Workflow: version.Name, Version: version.Version, Input: input}) // valid JSON always encodes
	if st.Run.Status == workflow.RunPending {
		appendHistory(tx, st.Run.ID, workflow.EventRunStarted, "", nil, nil)
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepStarted, a.key, &a.number, nil)
	if _, ok, err := tx.StartWait(ctx, postgres.WaitStart{Work: item, Kind: postgres.WorkWaitTimeout, Wait: s.waitTimeout(step), Exec: exec}); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	parent, parentStep := st.Run.ID, a.execID
	child, _, err := s.startRunTx(ctx, tx, version.Name, version.Version, newRunInput{
		id: childID, input: input, parentRunID: &parent, parentStepID: &parentStep, depth: st.Run.Depth + 1,
		parent: stepSpan(st.Run, a.execID), priority: &st.Run.Priority,
	})
	if err != nil {
		return err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepWaiting, a.key, &a.number, map[string]any{"child_run_id": child.ID.String(), "wait": cw.Wait})
	if !cw.Wait {
		output, _ := json.Marshal(map[string]any{"run_id": child.ID}) // a uuid always encodes
		return s.completeWait(ctx, tx, item.ID, a, output, map[string]any{"child_run_id": child.ID.String()})
	}
	return nil
}

// tellParent queues, for a child run that has just ended, the work that
// ends its parent's waiting call_workflow step. Inserting the parent's work
// item locks none of the parent's rows, so a child ending never waits for
// its parent.
func tellParent(ctx context.Context, tx *postgres.Tx, run workflow.Run) error {
	if run.ParentRunID == nil || run.ParentStepExecutionID == nil {
		return nil
	}
	return tx.EnqueueWork(ctx, *run.ParentRunID, postgres.WorkTarget{Kind: postgres.WorkChildDone, StepExecutionID: run.ParentStepExecutionID, Attempt: 1}, 0)
}

// cancelChildren cancels a run's child runs that have not ended.
func (s *core) cancelChildren(ctx context.Context, tx *postgres.Tx, runID uuid.UUID) error {
	children, err := tx.ActiveChildren(ctx, runID)
	if err != nil {
		return err
	}
	for _, id := range children {
		if err := s.cancelChild(ctx, tx, id, "its parent run ended", "its parent run "+runID.String()+" ended"); err != nil {
			return err
		}
	}
	return nil
}

// cancelStepChild cancels the child run a call_workflow step execution
// waits for, unless it has ended.
func (s *core) cancelStepChild(ctx context.Context, tx *postgres.Tx, exec workflow.StepExecution) error {
	var in childInput
	if err := json.Unmarshal(exec.Input, &in); err != nil {
		return fmt.Errorf("read child of step %s: %w", exec.Key, err)
	}
	return s.cancelChild(ctx, tx, in.RunID, "its parent's step timed out", "step "+exec.Key+" of its parent run "+exec.RunID.String()+" timed out")
}

// cancelChild cancels a child run with an error message and a reason for
// its history; a child that has ended already is left alone.
func (s *core) cancelChild(ctx context.Context, tx *postgres.Tx, child uuid.UUID, message, reason string) error {
	runErr := engine.RunError(message, "cancelled", "", nil)
	if _, err := s.cancelRunTx(ctx, tx, child, reason, runErr); err != nil && !fault.Is(err, fault.Conflict) {
		return err
	}
	return nil
}

// childDone ends a call_workflow step whose child run ended: with the
// child's output when it succeeded, else failing with the child's error.
func (s *core) childDone(ctx context.Context, item postgres.WorkItem) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if ok, err := tx.LockLeasedWork(ctx, item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		items, err := tx.LockRunWork(ctx, item.RunID)
		if err != nil {
			return err
		}
		exec, _, err := tx.LockStepExecution(ctx, *item.StepExecutionID)
		if err != nil {
			return err
		}
		if _, err := tx.CompleteWork(ctx, item); err != nil {
			return err
		}
		if exec.Status != "waiting" {
			return nil // the step ended otherwise (timeout, cancellation)
		}
		var in childInput
		if err := json.Unmarshal(exec.Input, &in); err != nil {
			return fmt.Errorf("read child of step %s: %w", exec.Key, err)
		}
		child, err := tx.GetRun(ctx, in.RunID)
		if err != nil {
			return err
		}
		var main postgres.WorkItem
		for _, it := range items {
			if it.ID != item.ID && it.StepExecutionID != nil && *it.StepExecutionID == exec.ID {
				main = it
			}
		}
		run, err := tx.GetRun(ctx, item.RunID)
		if err != nil {
			return err
		}
		a, err := s.currentAttempt(ctx, tx, main, run, exec)
		if err != nil {
			return err
		}
		data := map[string]any{"child_run_id": child.ID.String(), "child_status": string(child.Status)}
		if child.Status == workflow.RunSucceeded {
			if main.ID == 0 {
				return fmt.Errorf("run %s has no work item for step %s", run.ID, exec.Key)
			}
			return s.completeWait(ctx, tx, main.ID, a, engine.OrNull(child.Output), data)
		}
		stepErr, _ := json.Marshal(map[string]any{
			"message": fmt.Sprintf("the child run %s ended %s", child.ID, child.Status), "child_run_id": child.ID, "child_error": json.RawMessage(engine.OrNull(child.Error)),
		}) // valid JSON always encodes
		if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: "failed", Error: stepErr}, "failed", nil); err != nil || !ok {
			return orStale(err, ok)
		}
		return s.failRun(ctx, tx, a, stepErr)
	})
}
