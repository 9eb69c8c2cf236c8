package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/durablehq/durable/internal/workflow"
)

// State is what the engine knows of a run while it advances it in one
// scope: enough to evaluate expressions and build step inputs without
// reading the run again after each step.
type State struct {
	Run workflow.Run
	Def *workflow.Definition
	// Input and Ctx are the run's input and context, decoded; CtxRaw is
	// the context as stored.
	Input  any
	Ctx    map[string]any
	CtxRaw json.RawMessage
	// ctxMembers holds the context's members as their JSON text, so that
	// a merge keeps every value exactly as it was written (a decoded
	// number might not survive encoding again).
	ctxMembers map[string]json.RawMessage
	// Steps maps a step name to {"output": …} for the steps that
	// succeeded, as the scope sees them; Outputs holds the same outputs as
	// stored.
	Steps   map[string]any
	Outputs map[string]json.RawMessage
	// Scope is the foreach item or loop iteration the state is in
	// ("ship[3]."; "" outside any): the keys of the steps it starts are
	// qualified by it. Item and Index are the innermost foreach item's,
	// Iteration the innermost loop's.
	Scope     string
	Item      any
	Index     int64
	Iteration int64
}

// NewState is the state of run, with its input and context decoded, at the
// top scope and with no step outputs known yet.
func NewState(run workflow.Run, def *workflow.Definition) (*State, error) {
	st := &State{Run: run, Def: def}
	var err error
	if st.Input, err = workflow.DecodeJSON(run.Input); err != nil {
		return nil, fmt.Errorf("decode run input: %w", err)
	}
	if err := st.SetContext(run.Context); err != nil {
		return nil, err
	}
	st.Enter("")
	return st, nil
}

// Enter moves the state to scope, forgetting the step outputs, item and
// iteration it knew: the caller sets those the scope sees. The iteration
// comes from the scope itself.
func (st *State) Enter(scope string) {
	st.Scope, st.Steps, st.Outputs, st.Item, st.Index, st.Iteration = scope, map[string]any{}, map[string]json.RawMessage{}, nil, 0, 0
	for _, sc := range ScopeChain(scope)[1:] {
		if i, ok := loopIteration(st.Def, sc); ok {
			st.Iteration = i
		}
	}
}

// loopIteration is the iteration a scope's innermost segment names, when it
// is a loop's iteration.
func loopIteration(def *workflow.Definition, scope string) (int64, bool) {
	blockKey, index := LaneBlock(strings.TrimSuffix(scope, "."))
	if s := def.Step(BlockName(blockKey)); s == nil || s.Loop == nil {
		return 0, false
	}
	i, err := strconv.ParseInt(index, 10, 64)
	return i, err == nil
}

// Copy is a copy of st that shares its decoded input and context: a worker
// going on in another scope of the run does not decode them again.
func (st *State) Copy() *State {
	c := *st
	return &c
}

// Key is the key of the step named name in the state's scope.
func (st *State) Key(name string) string { return st.Scope + name }

// ParentKey is the key of the execution the step named name is nested in.
func (st *State) ParentKey(name string) string { return ParentKey(st.Def, st.Scope, name) }

// SetContext replaces the run's context with raw, as stored.
func (st *State) SetContext(raw json.RawMessage) error {
	v, err := workflow.DecodeJSON(raw)
	if err != nil {
		return fmt.Errorf("decode run context: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		m = map[string]any{}
	}
	members := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &members); err != nil {
		members = map[string]json.RawMessage{}
	}
	st.Ctx, st.CtxRaw, st.ctxMembers = m, raw, members
	return nil
}

// MergeContext merges a step's context answer (a JSON object) into the
// run's context as PostgreSQL's jsonb || does: top-level members replaced.
func (st *State) MergeContext(patch json.RawMessage) error {
	v, err := workflow.DecodeJSON(patch)
	if err != nil {
		return fmt.Errorf("decode context answer: %w", err)
	}
	decoded, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("the context answer is not an object")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(patch, &members); err != nil {
		return fmt.Errorf("decode context answer: %w", err)
	}
	ctx := make(map[string]any, len(st.Ctx)+len(decoded))
	for k, v := range st.Ctx {
		ctx[k] = v
	}
	all := make(map[string]json.RawMessage, len(st.ctxMembers)+len(members))
	for k, v := range st.ctxMembers {
		all[k] = v
	}
	for k, v := range decoded {
		ctx[k] = v
		all[k] = members[k]
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("encode run context: %w", err)
	}
	st.Ctx, st.ctxMembers, st.CtxRaw = ctx, all, raw
	return nil
}

// SetOutput records the output of the step named name, as stored.
func (st *State) SetOutput(name string, raw json.RawMessage) error {
	var v any
	if len(raw) > 0 {
		var err error
		if v, err = workflow.DecodeJSON(raw); err != nil {
			return fmt.Errorf("decode output of step %s: %w", name, err)
		}
	}
	st.Steps[name] = map[string]any{"output": v}
	st.Outputs[name] = raw
	return nil
}

// Activation is what expressions evaluated in the state see.
func (st *State) Activation() workflow.Activation {
	return workflow.Activation{
		Input: st.Input,
		Ctx:   st.Ctx,
		Steps: st.Steps,
		Run: map[string]any{
			"id": st.Run.ID.String(), "workflow": st.Run.Workflow,
			"version": int64(st.Run.Version), "attempt": int64(st.Run.Attempt),
		},
		Item:      st.Item,
		Index:     st.Index,
		Iteration: st.Iteration,
		Decoded:   true,
	}
}

// RenderInput evaluates a call step's input mapping; it fails when the
// rendered input exceeds the limit on a step's data.
func (st *State) RenderInput(ctx context.Context, step *workflow.Step, lim Limits) (json.RawMessage, error) {
	if step.Call.Input == nil {
		return json.RawMessage(`{}`), nil
	}
	input, err := step.Call.Input.RenderJSON(ctx, st.Activation())
	if err == nil && len(input) > lim.MaxOutputBytes {
		err = fmt.Errorf("the rendered input is %d bytes; the limit is %d", len(input), lim.MaxOutputBytes)
	}
	return input, err
}

// Finish is how a run that ran out of steps ends: succeeded, with its
// output mapping or its last step's output; failed when the mapping fails.
func (st *State) Finish(ctx context.Context, lastOutput json.RawMessage) RunEnd {
	output := lastOutput
	if st.Def.Output != nil {
		rendered, err := st.Def.Output.RenderJSON(ctx, st.Activation())
		if err != nil {
			return RunEnd{Status: workflow.RunFailed, Event: workflow.EventRunFailed,
				Error: RunError("the run's output mapping failed: "+err.Error(), "output_failed", "", nil)}
		}
		output = rendered
	}
	return RunEnd{Status: workflow.RunSucceeded, Event: workflow.EventRunSucceeded, Output: output}
}
