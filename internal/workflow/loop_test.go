package workflow

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// loopDoc is the documented polling loop: check a job until it is done.
const loopDoc = `{"name": "poll-job", "steps": [
	{"name": "submit", "type": "call", "url": "https://jobs.example/submit"},
	{"name": "poll", "type": "loop", "description": "until the job is done",
	 "while": "${ iteration == 0 || steps.check.output.state != 'done' }", "max_iterations": 100,
	 "steps": [
		{"name": "check", "type": "call", "url": "https://jobs.example/status",
		 "input": {"job": "${ steps.submit.output.id }", "attempt": "${ iteration }"}},
		{"name": "pause", "type": "sleep", "duration": "10s"}]},
	{"name": "fetch", "type": "call", "url": "https://jobs.example/result", "input": {"last": "${ steps.poll.output }"}}]}`

// loopStep is a loop step named name with the given while and
// max_iterations (as written) around steps.
func loopStep(name, while, maxIterations string, steps ...string) string {
	return fmt.Sprintf(`{"name": %q, "type": "loop", "while": %s, "max_iterations": %s, "steps": [%s]}`,
		name, while, maxIterations, strings.Join(steps, ", "))
}

func TestParseLoop(t *testing.T) {
	t.Parallel()
	d := mustParse(t, loopDoc)
	s := d.Step("poll")
	require.Equal(t, StepLoop, s.Type)
	require.Equal(t, "until the job is done", s.Description)
	require.Nil(t, s.Foreach)
	l := s.Loop
	require.NotNil(t, l)
	require.Equal(t, "${ iteration == 0 || steps.check.output.state != 'done' }", l.While.String())
	require.Equal(t, "/steps/1/while", l.While.Path())
	require.Equal(t, 100, l.MaxIterations)
	require.Len(t, l.Steps, 2)
	require.Same(t, l.Steps[0], d.Step("check"))
	require.Equal(t, "/steps/1/steps/1", d.Step("pause").Path)
	require.Equal(t, [][]*Step{l.Steps}, s.Children())

	require.True(t, s.OpensScope(), "a loop's steps run once per iteration")
	require.False(t, s.OpensLanes(), "a loop's iterations run one after another")
	require.False(t, d.HasLanes())
	parent, list := d.Enclosing("check")
	require.Same(t, s, parent)
	require.Equal(t, 0, list)

	var visited []string
	d.Walk(func(_ string, s *Step) bool {
		visited = append(visited, s.Name)
		return true
	})
	require.Equal(t, []string{"submit", "poll", "check", "pause", "fetch"}, visited)

	// The end of the body ends an iteration, and the loop only when it
	// does not continue.
	next, ended := d.Successor("pause")
	require.Equal(t, "fetch", next.Name)
	require.Equal(t, []*Step{s}, ended)
	next, ended = d.Successor("check")
	require.Equal(t, "pause", next.Name)
	require.Empty(t, ended)
}

func TestOpensScope(t *testing.T) {
	t.Parallel()
	const sleep = `{"name": "%s", "type": "sleep", "duration": "1s"}`
	d := mustParse(t, doc(
		`{"name": "f", "type": "foreach", "items": "${ [1] }", "steps": [`+fmt.Sprintf(sleep, "a")+`]}`,
		loopStep("l", `"${ true }"`, "1", fmt.Sprintf(sleep, "b")),
		`{"name": "p", "type": "parallel", "branches": [{"name": "x", "steps": [`+fmt.Sprintf(sleep, "c")+`]}]}`,
		`{"name": "br", "type": "branch", "cases": [{"if": "${ true }", "steps": [`+fmt.Sprintf(sleep, "e")+`]}]}`,
	))
	for name, want := range map[string][2]bool{
		"f": {true, true}, "l": {true, false}, "p": {false, true}, "br": {false, false}, "a": {false, false},
	} {
		s := d.Step(name)
		require.Equal(t, want[0], s.OpensScope(), "OpensScope of %s", name)
		require.Equal(t, want[1], s.OpensLanes(), "OpensLanes of %s", name)
	}
}

func TestParseLoopProblems(t *testing.T) {
	t.Parallel()
	const sleep = `{"name": "s", "type": "sleep", "duration": "1s"}`
	tests := []struct {
		name   string
		doc    string
		limits Limits
		want   []want
	}{
		{"missing everything", doc(`{"name": "l", "type": "loop"}`), Limits{}, []want{
			{"/steps/0/while", "is required"},
			{"/steps/0/max_iterations", "is required"},
			{"/steps/0/steps", "is required"},
		}},
		{"while not a string", doc(loopStep("l", "true", "3", sleep)), Limits{},
			[]want{{"/steps/0/while", "must be a string, not a boolean"}}},
		{"while not an expression", doc(loopStep("l", `"iteration < 3"`, "3", sleep)), Limits{},
			[]want{{"/steps/0/while", `must be an expression of the form "${ expr }"`}}},
		{"while not a bool", doc(loopStep("l", `"${ iteration + 1 }"`, "3", sleep)), Limits{},
			[]want{{"/steps/0/while", "must evaluate to a bool, but evaluates to int"}}},
		{"while that does not compile", doc(loopStep("l", `"${ iteration < }"`, "3", sleep)), Limits{},
			[]want{{"/steps/0/while", "Syntax error"}}},
		{"while naming a missing step", doc(loopStep("l", `"${ has(steps.ghost.output) }"`, "3", sleep)), Limits{},
			[]want{{"/steps/0/while", "steps.ghost refers to a step that does not exist"}}},
		{"max_iterations zero", doc(loopStep("l", `"${ true }"`, "0", sleep)), Limits{},
			[]want{{"/steps/0/max_iterations", "must be an integer from 1 to 10000"}}},
		{"max_iterations too large", doc(loopStep("l", `"${ true }"`, "10001", sleep)), Limits{},
			[]want{{"/steps/0/max_iterations", "must be an integer from 1 to 10000"}}},
		{"max_iterations negative", doc(loopStep("l", `"${ true }"`, "-1", sleep)), Limits{},
			[]want{{"/steps/0/max_iterations", "must be an integer from 1 to 10000"}}},
		{"max_iterations fractional", doc(loopStep("l", `"${ true }"`, "2.5", sleep)), Limits{},
			[]want{{"/steps/0/max_iterations", "must be an integer from 1 to 10000"}}},
		{"max_iterations a string", doc(loopStep("l", `"${ true }"`, `"10"`, sleep)), Limits{},
			[]want{{"/steps/0/max_iterations", "must be an integer, not a string"}}},
		{"empty steps", doc(loopStep("l", `"${ true }"`, "3")), Limits{},
			[]want{{"/steps/0/steps", "must contain at least one step"}}},
		{"steps not an array", doc(`{"name": "l", "type": "loop", "while": "${ true }", "max_iterations": 3, "steps": {}}`), Limits{},
			[]want{{"/steps/0/steps", "must be an array, not an object"}}},
		{"foreach fields", doc(`{"name": "l", "type": "loop", "while": "${ true }", "max_iterations": 3, "items": "${ [] }", "steps": [` + sleep + `]}`), Limits{},
			[]want{{"/steps/0/items", `unknown field "items"`}}},
		{"invalid body step", doc(loopStep("l", `"${ true }"`, "3", `{"name": "s", "type": "sleep"}`)), Limits{},
			[]want{{"/steps/0/steps/0", `a sleep must have "duration" or "until"`}}},
		{"body step names are unique across the definition", doc(sleep, loopStep("l", `"${ true }"`, "3", sleep)), Limits{},
			[]want{{"/steps/1/steps/0/name", `duplicate step name "s", first used by the step at /steps/0`}}},
		{"body steps count against the step limit", doc(loopStep("l", `"${ true }"`, "3", sleep)), Limits{MaxSteps: 1},
			[]want{{"/steps/0/steps/0", "more than 1 steps"}}},
		{"nested loops count against the depth limit", doc(loopStep("a", `"${ true }"`, "3", loopStep("b", `"${ true }"`, "3", sleep))), Limits{MaxDepth: 6},
			[]want{{"/steps/0/steps/0/steps/0", "nesting exceeds the maximum depth of 6"}}},
		{"iteration outside a loop", doc(
			`{"name": "a", "type": "call", "url": "https://h/", "input": {"n": "${ iteration }"}, "headers": {"X-N": "${ string(iteration) }"}}`,
			`{"name": "b", "type": "branch", "cases": [{"if": "${ iteration > 1 }", "steps": [`+sleep+`]}]}`,
			`{"name": "f", "type": "foreach", "items": "${ [iteration] }", "steps": [
				{"name": "c", "type": "wait_for_event", "event": "e", "key": "${ string(iteration) }"}]}`,
			`{"name": "z", "type": "sleep", "until": "${ timestamp(0) + duration(string(iteration) + 's') }"}`,
		), Limits{}, []want{
			{"/steps/0/headers/X-N", "iteration is only available in the while and the steps of a loop"},
			{"/steps/0/input/n", "iteration is only available in the while and the steps of a loop"},
			{"/steps/1/cases/0/if", "iteration is only available in the while and the steps of a loop"},
			{"/steps/2/items", "iteration is only available in the while and the steps of a loop"},
			{"/steps/2/steps/0/key", "iteration is only available in the while and the steps of a loop"},
			{"/steps/3/until", "iteration is only available in the while and the steps of a loop"},
		}},
		{"iteration after a loop", doc(
			loopStep("l", `"${ iteration < 3 }"`, "3", sleep),
			`{"name": "after", "type": "call", "url": "https://h/", "input": "${ iteration }"}`,
		), Limits{}, []want{{"/steps/1/input", "iteration is only available in the while and the steps of a loop"}}},
		{"item in a loop outside a foreach", doc(loopStep("l", `"${ index < 3 }"`, "3",
			`{"name": "c", "type": "call", "url": "https://h/", "input": "${ item }"}`)), Limits{}, []want{
			{"/steps/0/while", "index is only available in the steps of a foreach"},
			{"/steps/0/steps/0/input", "item is only available in the steps of a foreach"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireProblems(t, problemsOf(t, tt.doc, tt.limits), tt.want...)
		})
	}
}

func TestParseLoopScopes(t *testing.T) {
	t.Parallel()
	// iteration is visible in a loop's while and anywhere in its steps:
	// nested blocks, compensations, waits, a foreach inside the loop (with
	// item and index as well) and a loop inside a foreach.
	mustParse(t, doc(
		`{"name": "each", "type": "foreach", "items": "${ input.orders }", "steps": [`+
			loopStep("retry", `"${ iteration < item.tries && index >= 0 }"`, "10",
				`{"name": "b", "type": "branch", "on": "${ iteration % 2 }", "cases": [{"value": 0, "steps": [
					{"name": "c", "type": "call", "url": "https://h/", "headers": {"X-Try": "${ string(iteration) }"},
					 "input": {"order": "${ item }", "at": "${ index }", "try": "${ iteration }"},
					 "compensate": {"url": "https://h/undo", "input": {"try": "${ iteration }"}}}]}]}`,
				`{"name": "w", "type": "wait_for_event", "event": "e", "key": "${ string(index) + '-' + string(iteration) }"}`,
				`{"name": "lines", "type": "foreach", "items": "${ item.lines }", "steps": [
					{"name": "line", "type": "call", "url": "https://h/", "input": {"line": "${ item }", "try": "${ iteration }"}}]}`,
				loopStep("inner", `"${ iteration < 2 && has(steps.c) }"`, "2",
					`{"name": "z", "type": "sleep", "until": "${ timestamp(0) + duration(string(iteration) + 's') }"}`),
			)+`]}`,
		// A comprehension variable named iteration shadows it outside a
		// loop.
		`{"name": "after", "type": "call", "url": "https://h/", "input": {"n": "${ [1, 2].map(iteration, iteration * 2) }"}}`,
	))
	// while may name the loop's own steps, which have no output before the
	// first iteration, and steps after the loop.
	mustParse(t, loopDoc)
	mustParse(t, doc(
		loopStep("l", `"${ !has(steps.check) || steps.check.output.n < steps.?later.output.orValue(10) }"`, "5",
			`{"name": "check", "type": "call", "url": "https://h/"}`),
		`{"name": "later", "type": "sleep", "duration": "1s"}`,
	))
}

func TestLoopContinue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := mustParse(t, loopDoc)
	l := d.Step("poll").Loop
	check := func(state string) map[string]any {
		return map[string]any{
			"submit": map[string]any{"output": map[string]any{"id": "j-1"}},
			"check":  map[string]any{"output": map[string]any{"state": state}},
		}
	}
	for _, tt := range []struct {
		name      string
		iteration int64
		steps     map[string]any
		want      bool
	}{
		{"before the first iteration", 0, map[string]any{"submit": map[string]any{"output": map[string]any{"id": "j-1"}}}, true},
		{"the job runs", 1, check("running"), true},
		{"the job is done", 2, check("done"), false},
		{"the last iteration allowed ran", 100, check("running"), false},
		{"beyond the limit", 150, check("running"), false},
		{"one before the limit", 99, check("running"), true},
	} {
		ok, err := l.Continue(ctx, Activation{Steps: tt.steps, Iteration: tt.iteration})
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, ok, tt.name)
	}

	// Referring to a body step before it ran, without has(), fails as an
	// evaluation error naming the expression.
	_, err := l.Continue(ctx, Activation{Iteration: 1})
	var eerr *EvalError
	require.ErrorAs(t, err, &eerr)
	require.Equal(t, "/steps/1/while", eerr.Path)
	require.ErrorContains(t, err, "no such key: check")

	_, err = l.Continue(ctx, Activation{Iteration: -1})
	require.ErrorContains(t, err, "negative")

	// A dynamic value that is not a bool fails when evaluated.
	d = mustParse(t, doc(loopStep("l", `"${ ctx.again }"`, "3", `{"name": "s", "type": "sleep", "duration": "1s"}`)))
	_, err = d.Step("l").Loop.Continue(ctx, Activation{Ctx: map[string]any{"again": "yes"}})
	require.ErrorAs(t, err, &eerr)
	require.ErrorContains(t, err, "must evaluate to a bool, got string")

	// Inside a foreach, while sees the item too; inside the body,
	// iteration is the current iteration.
	d = mustParse(t, doc(`{"name": "f", "type": "foreach", "items": "${ input.jobs }", "steps": [`+
		loopStep("l", `"${ iteration < item.tries }"`, "10",
			`{"name": "c", "type": "call", "url": "https://h/", "input": {"job": "${ item.id }", "try": "${ iteration }", "at": "${ index }"}}`)+`]}`))
	a := Activation{Item: map[string]any{"tries": 2.0, "id": "j-7"}, Index: 4}
	for i, want := range []bool{true, true, false} {
		a.Iteration = int64(i)
		ok, err := d.Step("l").Loop.Continue(ctx, a)
		require.NoError(t, err)
		require.Equal(t, want, ok, "iteration %d", i)
	}
	a.Iteration = 1
	got, err := d.Step("c").Call.Input.Render(ctx, a)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"job": "j-7", "try": int64(1), "at": int64(4)}, got)
}

func TestLoopCanonicalForm(t *testing.T) {
	t.Parallel()
	const sleep = `{"name": "s", "type": "sleep", "duration": "1s"}`
	base := doc(loopStep("l", `"${ iteration < 3 }"`, "3", sleep))
	d := mustParse(t, base)
	require.Equal(t,
		`{"name":"test","steps":[{"max_iterations":3,"name":"l","steps":[{"duration":"1s","name":"s","type":"sleep"}],"type":"loop","while":"${ iteration < 3 }"}]}`,
		string(d.Canonical()))
	require.Equal(t, d.Hash(), mustParse(t, string(d.Canonical())).Hash())
	for _, variant := range []string{
		doc(loopStep("l", `"${ iteration < 4 }"`, "3", sleep)),
		doc(loopStep("l", `"${ iteration < 3 }"`, "4", sleep)),
		doc(loopStep("l", `"${ iteration < 3 }"`, "3", `{"name": "s", "type": "sleep", "duration": "2s"}`)),
		doc(loopStep("l", `"${ iteration < 3 }"`, "3", sleep, `{"name": "t", "type": "sleep", "duration": "1s"}`)),
	} {
		require.NotEqual(t, d.Hash(), mustParse(t, variant).Hash(), variant)
	}
}
