package engine

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

func TestEnterKnowsTheIteration(t *testing.T) {
	t.Parallel()
	def := parse(t, shapes)
	st, err := NewState(workflow.Run{Input: json.RawMessage(`{}`), Context: json.RawMessage(`{}`)}, def)
	require.NoError(t, err)
	for scope, want := range map[string]int64{"": 0, "f[2].": 0, "l[3].": 3, "f[2].m[1].": 1, "f[2].m[12].": 12} {
		st.Enter(scope)
		require.Equal(t, want, st.Iteration, scope)
		require.Equal(t, scope, st.Scope)
		require.Empty(t, st.Steps, "entering forgets the outputs")
	}
}

func TestIterations(t *testing.T) {
	t.Parallel()
	def := parse(t, shapes)
	ctx := context.Background()
	st, err := NewState(workflow.Run{Input: json.RawMessage(`{}`), Context: json.RawMessage(`{}`)}, def)
	require.NoError(t, err)
	require.NoError(t, st.SetOutput("a", json.RawMessage(`1`)))
	loop := Loop("", def.Step("l"))
	require.Equal(t, "l", loop.Key)

	ok, err := Continue(ctx, st, def.Step("l"), 0)
	require.NoError(t, err)
	require.True(t, ok)
	st.EnterIteration(loop, 0)
	require.Equal(t, "l[0].", st.Scope)
	require.NoError(t, st.SetOutput("l1", json.RawMessage(`"first"`)))
	require.NoError(t, st.SetOutput("lb1", json.RawMessage(`"deep"`)))
	require.Equal(t, "l[0].l1", st.Key("l1"))
	require.Equal(t, "l", st.ParentKey("l1"))

	st.EnterIteration(loop, 1)
	require.Equal(t, int64(1), st.Iteration)
	require.NotContains(t, st.Steps, "l1", "an iteration does not see the one before's outputs")
	require.NotContains(t, st.Steps, "lb1", "nor those nested deeper")
	require.Contains(t, st.Steps, "a", "but sees the steps around the loop")

	for i, want := range map[int64]bool{4: true, 5: false, 9: false} {
		ok, err := Continue(ctx, st, def.Step("l"), i)
		require.NoError(t, err)
		require.Equal(t, want, ok, "iteration %d", i)
	}
	require.Equal(t, int64(1), st.Iteration, "Continue leaves the state as it was")

	st.Leave(loop)
	require.Equal(t, "", st.Scope)
	require.Equal(t, int64(0), st.Iteration)

	bounded := parse(t, `{"name": "w", "steps": [{"name": "l", "type": "loop", "while": "${ true }", "max_iterations": 2, "steps": [
	  {"name": "s", "type": "call", "url": "http://x/s"}]}]}`)
	bst, err := NewState(workflow.Run{Input: json.RawMessage(`{}`), Context: json.RawMessage(`{}`)}, bounded)
	require.NoError(t, err)
	ok, _ = Continue(ctx, bst, bounded.Step("l"), 1)
	require.True(t, ok)
	ok, _ = Continue(ctx, bst, bounded.Step("l"), 2)
	require.False(t, ok, "max_iterations ends the loop whatever its condition")

	failing := parse(t, `{"name": "w", "steps": [{"name": "l", "type": "loop", "while": "${ iteration == 0 || steps.s.output.x > 1 }", "max_iterations": 5, "steps": [
	  {"name": "s", "type": "call", "url": "http://x/s"}]}]}`)
	fst, err := NewState(workflow.Run{Input: json.RawMessage(`{}`), Context: json.RawMessage(`{}`)}, failing)
	require.NoError(t, err)
	fst.EnterIteration(Loop("", failing.Step("l")), 0)
	require.NoError(t, fst.SetOutput("s", json.RawMessage(`{"y": 1}`)))
	_, err = Continue(ctx, fst, failing.Step("l"), 1)
	require.ErrorContains(t, err, "the loop's while condition failed before iteration 1")
}

func TestFinishAndRunFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := workflow.Run{Input: json.RawMessage(`{"n": 2}`), Context: json.RawMessage(`{}`)}
	plain, err := NewState(run, parse(t, `{"name": "w", "steps": [{"name": "s", "type": "call", "url": "http://x/s"}]}`))
	require.NoError(t, err)
	end := plain.Finish(ctx, json.RawMessage(`{"last": true}`))
	require.Equal(t, workflow.RunSucceeded, end.Status)
	require.Equal(t, workflow.EventRunSucceeded, end.Event)
	require.JSONEq(t, `{"last": true}`, string(end.Output))

	mapped, err := NewState(run, parse(t, `{"name": "w", "output": {"twice": "${ input.n * 2 }"}, "steps": [{"name": "s", "type": "call", "url": "http://x/s"}]}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"twice": 4}`, string(mapped.Finish(ctx, nil).Output))

	broken, err := NewState(workflow.Run{Input: json.RawMessage(`{"n": "x"}`), Context: json.RawMessage(`{}`)},
		parse(t, `{"name": "w", "output": {"twice": "${ input.n * 2 }"}, "steps": [{"name": "s", "type": "call", "url": "http://x/s"}]}`))
	require.NoError(t, err)
	end = broken.Finish(ctx, nil)
	require.Equal(t, workflow.RunFailed, end.Status)
	require.Contains(t, string(end.Error), `"code":"output_failed"`)

	end = RunFails("ship[2].label", json.RawMessage(`{"message": "printer jammed"}`), false)
	require.Equal(t, workflow.RunFailed, end.Status)
	var re workflow.RunError
	require.NoError(t, json.Unmarshal(end.Error, &re))
	require.Equal(t, "step ship[2].label failed: printer jammed", re.Message)
	require.Equal(t, "step_failed", re.Code)
	require.Equal(t, "ship[2].label", re.Step)

	end = RunFails("approve", nil, true)
	require.Equal(t, workflow.RunTimedOut, end.Status)
	require.Equal(t, workflow.EventRunTimedOut, end.Event)
	require.Contains(t, string(end.Error), "step approve timed out waiting")
}

func TestEnterItem(t *testing.T) {
	t.Parallel()
	def := parse(t, shapes)
	st, err := NewState(workflow.Run{Input: json.RawMessage(`{}`), Context: json.RawMessage(`{}`)}, def)
	require.NoError(t, err)
	st.Enter("f[2].")
	st.Item, st.Index = "two", 2
	require.NoError(t, st.SetOutput("a", json.RawMessage(`1`)))
	require.NoError(t, st.SetOutput("f1", json.RawMessage(`"of item 2"`)))
	require.NoError(t, st.SetOutput("m1", json.RawMessage(`"deeper"`)))
	next := st.EnterItem(def.Step("f"), "f[3]", "three", 3)
	require.Equal(t, "f[3].", next.Scope)
	require.Equal(t, "three", next.Item)
	require.Equal(t, int64(3), next.Index)
	require.Contains(t, next.Steps, "a", "the steps around the foreach are still seen")
	require.NotContains(t, next.Steps, "f1", "the item before's are not")
	require.NotContains(t, next.Outputs, "m1")
	require.Contains(t, st.Steps, "f1", "the state it came from is left as it was")
	require.Equal(t, "f[2].", st.Scope)
	require.Equal(t, "f[3].f1", next.Key("f1"))
}
