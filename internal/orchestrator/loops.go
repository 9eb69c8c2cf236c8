package orchestrator

import (
	"context"
	"encoding/json"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// A loop runs its steps again and again, one iteration after another on
// the work item that reached it, while its condition holds and at most
// max_iterations times. Its execution is the parent of its steps' (their
// keys qualified by the iteration: "poll[2].check"); it succeeds with the
// output of its last iteration.

// startLoop starts a loop step: it records the loop's execution and starts
// its first iteration, or, when its condition says no at once, succeeds
// with null and goes on.
func (s *core) startLoop(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	a := newExecution(item, st, step)
	input, _ := json.Marshal(map[string]any{"max_iterations": step.Loop.MaxIterations}) // an int always encodes
	if err := s.beginExecution(ctx, tx, st, item, s.execution(a, input)); err != nil {
		return nil, err
	}
	return s.iterate(ctx, tx, item, st, engine.Loop(st.Scope, step), 0, nil)
}

// endIteration goes on after an iteration of loop e ended with output: the
// next iteration starts, or the loop ends.
func (s *core) endIteration(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, e engine.Enclosure, output json.RawMessage) (*attempt, error) {
	return s.iterate(ctx, tx, item, st, e, st.Iteration+1, output)
}

// iterate starts iteration i of loop e when its condition holds, st being
// in the scope of the iteration before (of the loop itself for the first,
// whose last output is nil); else the loop succeeds with that iteration's
// output, or fails when its condition cannot be evaluated.
func (s *core) iterate(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, e engine.Enclosure, i int64, last json.RawMessage) (*attempt, error) {
	more, err := engine.Continue(ctx, st, e.Step, i)
	if err != nil {
		st.Leave(e)
		stepErr := engine.ErrorJSON(err.Error(), 0)
		if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
		if err := s.finishEnclosing(ctx, tx, st, e.Key, nil, stepErr); err != nil {
			return nil, err
		}
		exec, err := tx.GetStepExecutionByKey(ctx, st.Run.ID, e.Key)
		if err != nil {
			return nil, err
		}
		return nil, s.propagateFailure(ctx, tx, st, e.Key, exec.ID, stepErr, false)
	}
	if more {
		st.EnterIteration(e, i)
		return s.startStep(ctx, tx, item, st, e.Step.Loop.Steps[0])
	}
	st.Leave(e)
	output := engine.OrNull(last)
	if err := s.finishEnclosing(ctx, tx, st, e.Key, output, nil); err != nil {
		return nil, err
	}
	if err := st.SetOutput(e.Step.Name, output); err != nil {
		return nil, err
	}
	return s.goOn(ctx, tx, item, st, engine.After(st.Def, st.Scope, e.Step.Name), output)
}
