package engine

import (
	"context"
	"fmt"
	"maps"

	"github.com/durablehq/durable/internal/workflow"
)

// Continue decides whether a loop runs iteration i (0 for the first): not
// once it ran max_iterations, else as its while condition says, evaluated
// with iteration i and the outputs of the iteration before in scope. st is
// in the scope of that iteration, or of the loop itself before the first.
func Continue(ctx context.Context, st *State, loop *workflow.Step, i int64) (bool, error) {
	if i >= int64(loop.Loop.MaxIterations) {
		return false, nil
	}
	saved := st.Iteration
	st.Iteration = i
	defer func() { st.Iteration = saved }()
	ok, err := loop.Loop.Continue(ctx, st.Activation())
	if err != nil {
		return false, fmt.Errorf("the loop's while condition failed before iteration %d: %w", i, err)
	}
	return ok, nil
}

// EnterIteration moves st, in the loop's own scope or in an iteration of
// it, into iteration i of loop e: the outputs of the loop's steps are
// forgotten, those around it kept.
func (st *State) EnterIteration(e Enclosure, i int64) {
	st.forget(e.Step)
	st.Scope, st.Iteration = IterationScope(e.Scope, e.Step.Name, i), i
}

// Leave moves st out of the loop e it is in, to the loop's own scope.
func (st *State) Leave(e Enclosure) {
	st.forget(e.Step)
	st.Scope = e.Scope
	st.Iteration = 0
	for _, sc := range ScopeChain(e.Scope)[1:] {
		if i, ok := loopIteration(st.Def, sc); ok {
			st.Iteration = i
		}
	}
}

// forget drops the outputs of the steps nested in step: step names are
// unique in a definition, so what is left is what the scope around sees.
func (st *State) forget(step *workflow.Step) {
	for _, list := range step.Children() {
		for _, s := range list {
			delete(st.Steps, s.Name)
			delete(st.Outputs, s.Name)
			st.forget(s)
		}
	}
}

// Loop describes the loop step for its steps, the loop running in scope.
func Loop(scope string, step *workflow.Step) Enclosure {
	return Enclosure{Step: step, Scope: scope, Key: scope + step.Name, Parent: scope + step.Name}
}

// EnterItem moves a copy of st, in a foreach's scope or in one of its
// items, into the item whose lane is laneKey, with its item and index: the
// outputs of the foreach's steps are forgotten, those around it kept.
func (st *State) EnterItem(foreach *workflow.Step, laneKey string, item any, index int64) *State {
	c := st.Copy()
	c.Steps, c.Outputs = maps.Clone(st.Steps), maps.Clone(st.Outputs)
	c.forget(foreach)
	c.Scope, c.Item, c.Index = laneKey+".", item, index
	return c
}
