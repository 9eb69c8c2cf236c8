package workflow

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// doc wraps steps (JSON objects) in a minimal definition.
func doc(steps ...string) string {
	return `{"name": "test", "steps": [` + strings.Join(steps, ",") + `]}`
}

func mustParse(t *testing.T, document string) *Definition {
	t.Helper()
	def, err := Parse([]byte(document), DefaultLimits())
	require.NoError(t, err)
	return def
}

// problemsOf parses a document that must be invalid and returns its problems.
func problemsOf(t *testing.T, document string, limits Limits) []Problem {
	t.Helper()
	def, err := Parse([]byte(document), limits)
	require.Nil(t, def)
	var verr *ValidationError
	require.ErrorAs(t, err, &verr)
	require.NotEmpty(t, verr.Problems)
	return verr.Problems
}

// want is an expected problem: the exact path and a substring of the message.
type want struct{ path, msg string }

func requireProblems(t *testing.T, got []Problem, wants ...want) {
	t.Helper()
	gotPaths := make([]string, len(got))
	for i, p := range got {
		gotPaths[i] = p.Path
	}
	wantPaths := make([]string, len(wants))
	for i, w := range wants {
		wantPaths[i] = w.path
	}
	require.Equal(t, wantPaths, gotPaths, "problems: %v", got)
	for i, w := range wants {
		require.Contains(t, got[i].Message, w.msg, "problem %d: %v", i, got[i])
	}
}

func TestParseEveryStepType(t *testing.T) {
	t.Parallel()

	// The examples of the design document, with their elided steps filled in.
	const leaf = `{"name": "%s", "type": "sleep", "duration": "1s"}`
	l := func(name string) string { return fmt.Sprintf(leaf, name) }
	tests := []struct {
		name  string
		step  string
		check func(t *testing.T, d *Definition, s *Step)
	}{
		{
			name: "call",
			step: `{"name": "charge", "type": "call", "url": "https://pay.example/charge",
				"method": "POST", "headers": {"X-Tenant": "acme", "X-Order": "${ ctx.order_id }", "X-Raw": "$${ raw }"}, "timeout": "30s",
				"retry": {"max_attempts": 5, "initial_interval": "1s", "backoff_coefficient": 2,
				          "max_interval": "1m", "non_retryable_statuses": [409]},
				"input": {"amount": "${ ctx.total }"},
				"compensate": {"url": "https://pay.example/refund"}}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, StepCall, s.Type)
				c := s.Call
				require.Equal(t, "https://pay.example/charge", c.URL)
				require.Equal(t, "POST", c.Method)
				require.Equal(t, Text{Literal: "acme"}, c.Headers["X-Tenant"])
				require.Equal(t, Text{Literal: "${ raw }"}, c.Headers["X-Raw"])
				require.Equal(t, "${ ctx.order_id }", c.Headers["X-Order"].Expr.String())
				require.Equal(t, Duration(30*time.Second), c.Timeout)
				require.Equal(t, RetryPolicy{
					MaxAttempts: 5, InitialInterval: Duration(time.Second), BackoffCoefficient: 2,
					MaxInterval: Duration(time.Minute), NonRetryableStatuses: []int{409},
				}, c.Retry)
				require.Equal(t, Duration(24*time.Hour), c.CallbackTimeout)
				require.NotNil(t, c.Input)
				require.NotNil(t, c.Compensate)
				require.Equal(t, "https://pay.example/refund", c.Compensate.URL)
				require.Equal(t, "POST", c.Compensate.Method)
				require.Equal(t, 10, c.Compensate.Retry.MaxAttempts)
				require.Nil(t, s.Branch)
			},
		},
		{
			name: "call defaults",
			step: `{"name": "lookup", "type": "call", "url": "http://127.0.0.1:9000/lookup", "method": "GET"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				c := s.Call
				require.Equal(t, "GET", c.Method)
				require.Equal(t, Duration(30*time.Second), c.Timeout)
				require.Equal(t, RetryPolicy{
					MaxAttempts: 10, InitialInterval: Duration(time.Second), BackoffCoefficient: 2,
					MaxInterval: Duration(100 * time.Second),
				}, c.Retry)
				require.Nil(t, c.Input)
				require.Nil(t, c.Compensate)
				require.Empty(t, c.Headers)
			},
		},
		{
			name: "branch",
			step: `{"name": "route", "type": "branch", "on": "${ input.tier }",
				"cases": [{"value": "gold", "steps": [` + l("gold") + `]},
				          {"if": "${ ctx.total > 100 }", "steps": [` + l("big") + `]},
				          {"value": null, "steps": [` + l("none") + `]}],
				"default": [` + l("other") + `]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				b := s.Branch
				require.Equal(t, "${ input.tier }", b.On.String())
				require.Len(t, b.Cases, 3)
				require.Equal(t, "gold", b.Cases[0].Value)
				require.Nil(t, b.Cases[0].If)
				require.Equal(t, "${ ctx.total > 100 }", b.Cases[1].If.String())
				require.Nil(t, b.Cases[2].Value)
				require.Nil(t, b.Cases[2].If)
				require.Equal(t, "other", b.Default[0].Name)
				require.Same(t, b.Cases[1].Steps[0], d.Step("big"))
				require.Equal(t, "/steps/0/cases/1/steps/0", d.Step("big").Path)
			},
		},
		{
			name: "parallel",
			step: `{"name": "notify", "type": "parallel", "merge": "object", "on_error": "fail_fast",
				"branches": [{"name": "email", "steps": [` + l("send_email") + `]},
				             {"name": "sms", "steps": [` + l("send_sms") + `]}]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				p := s.Parallel
				require.Equal(t, MergeObject, p.Merge)
				require.Equal(t, ErrorFailFast, p.OnError)
				require.Len(t, p.Branches, 2)
				require.Equal(t, "sms", p.Branches[1].Name)
				require.Equal(t, "/steps/0/branches/1/steps/0", d.Step("send_sms").Path)
			},
		},
		{
			name: "parallel defaults",
			step: `{"name": "notify", "type": "parallel", "branches": [{"name": "a", "steps": [` + l("x") + `]}]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, MergeObject, s.Parallel.Merge)
				require.Equal(t, ErrorFailFast, s.Parallel.OnError)
			},
		},
		{
			name: "foreach",
			step: `{"name": "ship", "type": "foreach", "items": "${ ctx.items }", "mode": "concurrent",
				"concurrency": 5, "collect_as": "shipments", "on_error": "continue",
				"steps": [{"name": "ship_one", "type": "call", "url": "https://ship.example/",
				           "input": {"sku": "${ item.sku }", "position": "${ index }"}}]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				f := s.Foreach
				require.Equal(t, "${ ctx.items }", f.Items.String())
				require.Equal(t, ForeachConcurrent, f.Mode)
				require.Equal(t, 5, f.Concurrency)
				require.Equal(t, "shipments", f.CollectAs)
				require.Equal(t, ErrorContinue, f.OnError)
				require.Equal(t, "ship_one", f.Steps[0].Name)
			},
		},
		{
			name: "foreach defaults",
			step: `{"name": "each", "type": "foreach", "items": "${ input.list }", "steps": [` + l("x") + `]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, ForeachSequential, s.Foreach.Mode)
				require.Equal(t, 1, s.Foreach.Concurrency)
				require.Equal(t, ErrorFailFast, s.Foreach.OnError)
			},
		},
		{
			name: "foreach concurrent default concurrency",
			step: `{"name": "each", "type": "foreach", "items": "${ input.list }", "mode": "concurrent", "steps": [` + l("x") + `]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, 10, s.Foreach.Concurrency)
			},
		},
		{
			name: "sleep duration",
			step: `{"name": "cool_off", "type": "sleep", "duration": "10m"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, Duration(10*time.Minute), s.Sleep.Duration)
				require.Nil(t, s.Sleep.Until)
			},
		},
		{
			name: "sleep until expression",
			step: `{"name": "at_noon", "type": "sleep", "until": "${ ctx.deliver_at }"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, "${ ctx.deliver_at }", s.Sleep.Until.String())
			},
		},
		{
			name: "sleep until literal",
			step: `{"name": "at_noon", "type": "sleep", "until": "2026-12-24T12:00:00+01:00"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, time.Date(2026, 12, 24, 11, 0, 0, 0, time.UTC), s.Sleep.UntilTime)
			},
		},
		{
			name: "wait_for_event",
			step: `{"name": "paid", "type": "wait_for_event", "event": "payment.settled",
				"key": "${ ctx.order_id }", "timeout": "24h", "on_timeout": "fail", "lookback": "0s"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				w := s.WaitForEvent
				require.Equal(t, EventOne, w.Mode)
				require.Len(t, w.Events, 1)
				require.Equal(t, "payment.settled", w.Events[0].Event)
				require.Equal(t, "${ ctx.order_id }", w.Events[0].Key.String())
				require.Equal(t, Duration(24*time.Hour), w.Timeout)
				require.Equal(t, ActionFail, w.OnTimeout)
				require.Zero(t, w.Lookback)
			},
		},
		{
			name: "wait_for_event all",
			step: `{"name": "both", "type": "wait_for_event", "all": [{"event": "a", "key": "${ ctx.id }"},
				{"event": "b", "key": "${ ctx.id }"}], "on_timeout": "continue", "lookback": "1h"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				w := s.WaitForEvent
				require.Equal(t, EventAll, w.Mode)
				require.Len(t, w.Events, 2)
				require.Equal(t, "b", w.Events[1].Event)
				require.Zero(t, w.Timeout, "no timeout: the engine applies its default")
				require.Equal(t, ActionContinue, w.OnTimeout)
				require.Equal(t, Duration(time.Hour), w.Lookback)
			},
		},
		{
			name: "wait_for_event any",
			step: `{"name": "either", "type": "wait_for_event", "any": [{"event": "a", "key": "${ ctx.id }"}]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, EventAny, s.WaitForEvent.Mode)
			},
		},
		{
			name: "wait_for_input form",
			step: `{"name": "review", "type": "wait_for_input", "kind": "form", "prompt": "Shipping details",
				"schema": {"type": "object", "required": ["address"], "properties": {"address": {"type": "string"}}},
				"timeout": "72h"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				w := s.WaitForInput
				require.Equal(t, InputForm, w.Kind)
				require.Equal(t, "Shipping details", w.Prompt)
				require.JSONEq(t, `{"type": "object", "required": ["address"], "properties": {"address": {"type": "string"}}}`, string(w.Schema))
				require.Equal(t, Duration(72*time.Hour), w.Timeout)
				require.Equal(t, ActionFail, w.OnTimeout)
			},
		},
		{
			name: "wait_for_input approval",
			step: `{"name": "approve", "type": "wait_for_input", "kind": "approval", "on_reject": "continue"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, ActionContinue, s.WaitForInput.OnReject)
			},
		},
		{
			name: "wait_for_input choice",
			step: `{"name": "pick", "type": "wait_for_input", "kind": "choice", "options": ["red", "green"]}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, []string{"red", "green"}, s.WaitForInput.Options)
			},
		},
		{
			name: "wait_for_input text",
			step: `{"name": "why", "type": "wait_for_input", "kind": "text", "prompt": "Why?"}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, InputText, s.WaitForInput.Kind)
			},
		},
		{
			name: "call_workflow",
			step: `{"name": "invoice", "type": "call_workflow", "workflow": "invoicing", "input": {"order": "${ ctx.order_id }"}}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				c := s.CallWorkflow
				require.Equal(t, "invoicing", c.Workflow)
				require.Zero(t, c.Version)
				require.True(t, c.Wait)
				require.NotNil(t, c.Input)
			},
		},
		{
			name: "call_workflow pinned without waiting",
			step: `{"name": "invoice", "type": "call_workflow", "workflow": "invoicing", "version": 3, "wait": false}`,
			check: func(t *testing.T, d *Definition, s *Step) {
				require.Equal(t, 3, s.CallWorkflow.Version)
				require.False(t, s.CallWorkflow.Wait)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := mustParse(t, doc(tt.step))
			require.Len(t, d.Steps, 1)
			s := d.Steps[0]
			require.Equal(t, "/steps/0", s.Path)
			require.Same(t, s, d.Step(s.Name))
			tt.check(t, d, s)
		})
	}
}

func TestParseDesignExample(t *testing.T) {
	t.Parallel()
	d := mustParse(t, `{
	  "name": "greet",
	  "description": "say hello",
	  "timeout": "1h",
	  "output": {"sent": "${ steps.send.output }"},
	  "steps": [
	    {"name": "lookup", "type": "call", "url": "http://127.0.0.1:9000/lookup"},
	    {"name": "send", "type": "call", "url": "http://127.0.0.1:9000/send",
	     "input": {"email": "${ steps.lookup.output.email }"},
	     "retry": {"max_attempts": 5}}
	  ]}`)
	require.Equal(t, "greet", d.Name)
	require.Equal(t, "say hello", d.Description)
	require.Equal(t, Duration(time.Hour), d.Timeout)
	require.Zero(t, d.Retention, "no retention: the deployment's default applies")
	require.NotNil(t, d.Output)
	require.Equal(t, 5, d.Step("send").Call.Retry.MaxAttempts)
	require.Nil(t, d.Step("nope"))
}

func TestParseRetention(t *testing.T) {
	t.Parallel()
	d := mustParse(t, `{"name": "r", "retention": "2160h", "steps": [{"name": "s", "type": "sleep", "duration": "1s"}]}`)
	require.Equal(t, Duration(90*24*time.Hour), d.Retention)
}

// The pattern tells the keys of steps in foreach items from every other
// key, loop iterations' and parallel branches' included, which look alike.
func TestItemKeyPattern(t *testing.T) {
	t.Parallel()
	call := func(name string) string { return `{"name": "` + name + `", "type": "call", "url": "https://h/"}` }
	d := mustParse(t, doc(
		call("first"),
		`{"name": "poll", "type": "loop", "while": "${ iteration < 3 }", "max_iterations": 3, "steps": [`+call("check")+`,
		   {"name": "ship", "type": "foreach", "items": "${ input.xs }", "steps": [`+call("label")+`,
		     {"name": "box", "type": "foreach", "items": "${ input.ys }", "steps": [`+call("seal")+`]}]}]}`,
		`{"name": "notify", "type": "parallel", "branches": [{"name": "email", "steps": [`+call("mail")+`]}]}`,
	))
	re := regexp.MustCompile(d.ItemKeyPattern())
	for key, inItem := range map[string]bool{
		"first": false, "poll": false, "poll[2].check": false, "poll[2].ship": false,
		"notify": false, "notify[email]": false, "mail": false,
		"poll[2].ship[3]": true, "poll[2].ship[3].label": true, "poll[2].ship[3].box": true,
		"poll[2].ship[3].box[0]": true, "poll[2].ship[3].box[0].seal": true,
		"shipping": false, "reship[1].x": false,
	} {
		require.Equal(t, inItem, re.MatchString(key), key)
	}
	require.Empty(t, mustParse(t, doc(call("only"))).ItemKeyPattern())
}

func TestWalk(t *testing.T) {
	t.Parallel()
	d := mustParse(t, doc(
		`{"name": "a", "type": "branch", "cases": [{"if": "${ true }", "steps": [
			{"name": "b", "type": "foreach", "items": "${ [1] }", "steps": [{"name": "c", "type": "sleep", "duration": "1s"}]}]}],
		  "default": [{"name": "d", "type": "sleep", "duration": "1s"}]}`,
		`{"name": "e", "type": "parallel", "branches": [{"name": "x", "steps": [{"name": "f", "type": "sleep", "duration": "1s"}]}]}`,
	))
	var visited []string
	d.Walk(func(path string, s *Step) bool {
		require.Equal(t, s.Path, path)
		visited = append(visited, s.Name+" "+path)
		return true
	})
	require.Equal(t, []string{
		"a /steps/0",
		"b /steps/0/cases/0/steps/0",
		"c /steps/0/cases/0/steps/0/steps/0",
		"d /steps/0/default/0",
		"e /steps/1",
		"f /steps/1/branches/0/steps/0",
	}, visited)

	visited = nil
	d.Walk(func(path string, s *Step) bool {
		visited = append(visited, s.Name)
		return s.Name != "a"
	})
	require.Equal(t, []string{"a", "e", "f"}, visited, "returning false skips nested steps")
}

func TestParseProblems(t *testing.T) {
	t.Parallel()

	const sleep = `{"name": "s", "type": "sleep", "duration": "1s"}`
	tests := []struct {
		name   string
		doc    string
		limits Limits
		want   []want
	}{
		// The document as a whole.
		{"not an object", `[]`, Limits{}, []want{{"", "must be an object, not an array"}}},
		{"missing name and steps", `{}`, Limits{}, []want{{"/name", "is required"}, {"/steps", "is required"}}},
		{"unknown top-level fields", `{"name": "x", "steps": [` + sleep + `], "foo": 1, "bar": 2}`, Limits{},
			[]want{{"/foo", `unknown field "foo"`}, {"/bar", `unknown field "bar"`}}},
		{"wrong types at the top", `{"name": 1, "description": true, "steps": {}, "timeout": 5}`, Limits{}, []want{
			{"/name", "must be a string, not a number"},
			{"/description", "must be a string, not a boolean"},
			{"/steps", "must be an array, not an object"},
			{"/timeout", "must be a duration string"},
		}},
		{"retention out of bounds", `{"name": "x", "steps": [` + sleep + `], "retention": "59m"}`, Limits{}, []want{{"/retention", "must be from 1h0m0s to 87600h0m0s"}}},
		{"retention too long", `{"name": "x", "steps": [` + sleep + `], "retention": "87601h"}`, Limits{}, []want{{"/retention", "must be from 1h0m0s"}}},
		{"retention not a duration", `{"name": "x", "steps": [` + sleep + `], "retention": "30 days"}`, Limits{}, []want{{"/retention", "is not a duration"}}},
		{"retention zero", `{"name": "x", "steps": [` + sleep + `], "retention": "0s"}`, Limits{}, []want{{"/retention", "greater than zero"}}},
		{"workflow name", `{"name": "Bad Name", "steps": [` + sleep + `]}`, Limits{}, []want{{"/name", "lowercase"}}},
		{"workflow name too long", `{"name": "` + strings.Repeat("a", 129) + `", "steps": [` + sleep + `]}`, Limits{}, []want{{"/name", "1 to 128"}}},
		{"empty steps", `{"name": "x", "steps": []}`, Limits{}, []want{{"/steps", "at least one step"}}},
		{"output with interpolation", `{"name": "x", "steps": [` + sleep + `], "output": {"a": ["total: ${ ctx.total }"]}}`, Limits{},
			[]want{{"/output/a/0", "an expression must be the whole string"}}},

		// Every step.
		{"step not an object", doc(`"s"`), Limits{}, []want{{"/steps/0", "must be an object, not a string"}}},
		{"step missing name and type", doc(`{}`), Limits{}, []want{{"/steps/0/name", "is required"}, {"/steps/0/type", "is required"}}},
		{"unknown step type", doc(`{"name": "s", "type": "http", "url": "x"}`), Limits{}, []want{
			{"/steps/0/type", `"http" is not one of "call", "branch", "parallel", "foreach", "loop", "sleep", "wait_for_event", "wait_for_input", "call_workflow"`},
		}},
		{"step names", doc(
			`{"name": "1st", "type": "sleep", "duration": "1s"}`,
			`{"name": "a-b", "type": "sleep", "duration": "1s"}`,
			`{"name": "`+strings.Repeat("a", 65)+`", "type": "sleep", "duration": "1s"}`,
		), Limits{}, []want{{"/steps/0/name", "not starting with a digit"}, {"/steps/1/name", "letters, digits"}, {"/steps/2/name", "1 to 64"}}},
		{"duplicate step names across nesting", doc(
			`{"name": "a", "type": "sleep", "duration": "1s"}`,
			`{"name": "b", "type": "foreach", "items": "${ [1] }", "steps": [{"name": "a", "type": "sleep", "duration": "1s"}]}`,
			`{"name": "b", "type": "sleep", "duration": "1s"}`,
		), Limits{}, []want{
			{"/steps/1/steps/0/name", `duplicate step name "a", first used by the step at /steps/0`},
			{"/steps/2/name", `duplicate step name "b", first used by the step at /steps/1`},
		}},
		{"unknown step field", doc(`{"name": "s", "type": "sleep", "duration": "1s", "retry": {}}`), Limits{},
			[]want{{"/steps/0/retry", `unknown field "retry"`}}},
		{"description type", doc(`{"name": "s", "type": "sleep", "duration": "1s", "description": 1}`), Limits{},
			[]want{{"/steps/0/description", "must be a string"}}},
		{"too many steps", doc(sleep[:0]+`{"name": "a", "type": "sleep", "duration": "1s"}`,
			`{"name": "b", "type": "foreach", "items": "${ [1] }", "steps": [{"name": "c", "type": "sleep", "duration": "1s"}]}`),
			Limits{MaxSteps: 2}, []want{{"/steps/1/steps/0", "more than 2 steps"}}},
		{"steps nested too deep", doc(`{"name": "a", "type": "foreach", "items": "${ [1] }", "steps": [
			{"name": "b", "type": "foreach", "items": "${ [1] }", "steps": [
			{"name": "c", "type": "sleep", "duration": "1s"}]}]}`),
			Limits{MaxDepth: 6}, []want{{"/steps/0/steps/0/steps/0", "nesting exceeds the maximum depth of 6"}}},

		// Durations.
		{"durations", doc(
			`{"name": "a", "type": "sleep", "duration": "5 minutes"}`,
			`{"name": "b", "type": "sleep", "duration": "2d"}`,
			`{"name": "c", "type": "sleep", "duration": "0s"}`,
			`{"name": "d", "type": "sleep", "duration": "-1s"}`,
			`{"name": "e", "type": "sleep", "duration": 60}`,
		), Limits{}, []want{
			{"/steps/0/duration", `"5 minutes" is not a duration; write a Go duration such as "90s"`},
			{"/steps/1/duration", `"2d" is not a duration`},
			{"/steps/2/duration", "must be greater than zero"},
			{"/steps/3/duration", "must be greater than zero"},
			{"/steps/4/duration", "must be a duration string"},
		}},

		// call.
		{"call url missing", doc(`{"name": "c", "type": "call"}`), Limits{}, []want{{"/steps/0/url", "is required"}}},
		{"call urls", doc(
			`{"name": "a", "type": "call", "url": "/relative"}`,
			`{"name": "b", "type": "call", "url": "ftp://host/x"}`,
			`{"name": "c", "type": "call", "url": "https:///nohost"}`,
			`{"name": "d", "type": "call", "url": "https://host/x#frag"}`,
			`{"name": "e", "type": "call", "url": "https://host/${ ctx.path }"}`,
			`{"name": "f", "type": "call", "url": "http://[::1"}`,
			`{"name": "g", "type": "call", "url": "https://host/#"}`,
		), Limits{}, []want{
			{"/steps/0/url", "absolute http or https URL"},
			{"/steps/1/url", "absolute http or https URL"},
			{"/steps/2/url", "must have a host"},
			{"/steps/3/url", "fragment"},
			{"/steps/4/url", "expressions are not supported"},
			{"/steps/5/url", "absolute http or https URL: missing ']' in host"},
			{"/steps/6/url", "fragment"},
		}},
		{"call method", doc(`{"name": "c", "type": "call", "url": "https://h/", "method": "post"}`), Limits{},
			[]want{{"/steps/0/method", `"post" is not one of "GET", "POST", "PUT", "PATCH", "DELETE"`}}},
		{"call headers", doc(`{"name": "c", "type": "call", "url": "https://h/", "headers": {
			"Bad Header": "x", "Content-Type": "text/plain", "Webhook-Signature": "v1,x", "idempotency-KEY": "k",
			"traceparent": "t", "X-A": "1", "x-a": "2", "X-Num": 5, "X-Crlf": "a\r\nInjected: 1",
			"X-Interp": "id ${ ctx.id }", "X-Type": "${ 1 + 1 }"}}`), Limits{}, []want{
			{"/steps/0/headers/Bad Header", "not a valid header name"},
			{"/steps/0/headers/Content-Type", "set by the engine"},
			{"/steps/0/headers/Webhook-Signature", "set by the engine"},
			{"/steps/0/headers/idempotency-KEY", "set by the engine"},
			{"/steps/0/headers/traceparent", "set by the engine"},
			{"/steps/0/headers/x-a", `duplicate header "x-a" (header names are case-insensitive); first given as "X-A"`},
			{"/steps/0/headers/X-Num", "must be a string, not a number"},
			{"/steps/0/headers/X-Crlf", "control characters"},
			{"/steps/0/headers/X-Interp", "an expression must be the whole string"},
			{"/steps/0/headers/X-Type", "must evaluate to a string, but evaluates to int"},
		}},
		{"call timeouts", doc(`{"name": "c", "type": "call", "url": "https://h/", "timeout": "16m", "callback_timeout": "0s"}`), Limits{},
			[]want{{"/steps/0/timeout", "at most 15m0s"}, {"/steps/0/callback_timeout", "greater than zero"}}},
		{"call retry", doc(`{"name": "c", "type": "call", "url": "https://h/", "retry": {
			"max_attempts": 0, "initial_interval": "1m", "backoff_coefficient": 0.5, "max_interval": "30s",
			"non_retryable_statuses": [409, 200, 409, "500", 600], "jitter": true}}`), Limits{}, []want{
			{"/steps/0/retry/max_attempts", "must be an integer from 1 to 1000"},
			{"/steps/0/retry/backoff_coefficient", "at least 1"},
			{"/steps/0/retry/max_interval", "must not be less than initial_interval (1m0s)"},
			{"/steps/0/retry/non_retryable_statuses/1", "from 400 to 599"},
			{"/steps/0/retry/non_retryable_statuses/2", "duplicate status 409"},
			{"/steps/0/retry/non_retryable_statuses/3", "must be an integer, not a string"},
			{"/steps/0/retry/non_retryable_statuses/4", "from 400 to 599"},
			{"/steps/0/retry/jitter", `unknown field "jitter"`},
		}},
		{"call retry types", doc(`{"name": "c", "type": "call", "url": "https://h/", "retry": {"max_attempts": 1001, "initial_interval": "0s", "backoff_coefficient": "2"}}`), Limits{}, []want{
			{"/steps/0/retry/max_attempts", "from 1 to 1000"},
			{"/steps/0/retry/initial_interval", "greater than zero"},
			{"/steps/0/retry/backoff_coefficient", "must be a number, not a string"},
		}},
		{"call retry fractional attempts", doc(`{"name": "c", "type": "call", "url": "https://h/", "retry": {"max_attempts": 2.5}}`), Limits{},
			[]want{{"/steps/0/retry/max_attempts", "must be an integer from 1 to 1000"}}},
		{"compensate", doc(`{"name": "c", "type": "call", "url": "https://h/", "compensate": {
			"name": "undo", "type": "call", "callback_timeout": "1h", "compensate": {}, "method": "PUT"}}`), Limits{}, []want{
			{"/steps/0/compensate/url", "is required"},
			{"/steps/0/compensate/name", `unknown field "name"`},
			{"/steps/0/compensate/type", `unknown field "type"`},
			{"/steps/0/compensate/callback_timeout", `unknown field "callback_timeout"`},
			{"/steps/0/compensate/compensate", `unknown field "compensate"`},
		}},

		// branch.
		{"branch cases", doc(`{"name": "b", "type": "branch", "cases": [
			{"value": 1, "steps": [{"name": "x", "type": "sleep", "duration": "1s"}]},
			{"value": 1, "if": "${ true }", "steps": [{"name": "y", "type": "sleep", "duration": "1s"}]},
			{"steps": [{"name": "z", "type": "sleep", "duration": "1s"}]},
			{"if": "ctx.total > 1"},
			{"if": "${ 1 + 2 }", "steps": []}
		], "default": []}`), Limits{}, []want{
			{"/steps/0/cases/0/value", `requires the branch step to have "on"`},
			{"/steps/0/cases/1", `exactly one of "value" or "if", not both`},
			{"/steps/0/cases/2", `must have "value" or "if"`},
			{"/steps/0/cases/3/if", `must be an expression of the form "${ expr }"`},
			{"/steps/0/cases/3/steps", "is required"},
			{"/steps/0/cases/4/steps", "at least one step"},
			{"/steps/0/default", "at least one step"},
			{"/steps/0/cases/4/if", "must evaluate to a bool, but evaluates to int"},
		}},
		{"branch without cases", doc(`{"name": "b", "type": "branch", "on": "${ input.x }", "cases": []}`), Limits{},
			[]want{{"/steps/0/cases", "at least one case"}}},
		{"branch on not an expression", doc(`{"name": "b", "type": "branch", "on": "tier", "cases": [{"value": 1, "steps": [` + sleep + `]}]}`), Limits{},
			[]want{{"/steps/0/on", "must be an expression"}}},

		// parallel.
		{"parallel", doc(`{"name": "p", "type": "parallel", "merge": "concat", "on_error": "continue", "branches": [
			{"name": "a", "steps": [{"name": "x", "type": "sleep", "duration": "1s"}]},
			{"name": "a", "steps": [{"name": "y", "type": "sleep", "duration": "1s"}]},
			{"name": "b-c", "steps": [], "extra": 1}
		]}`), Limits{}, []want{
			{"/steps/0/branches/1/name", `duplicate branch name "a", first used by the branch at /steps/0/branches/0`},
			{"/steps/0/branches/2/name", "letters, digits"},
			{"/steps/0/branches/2/steps", "at least one step"},
			{"/steps/0/branches/2/extra", `unknown field "extra"`},
			{"/steps/0/merge", `"concat" is not one of "object", "deep_merge"`},
			{"/steps/0/on_error", `"continue" is not one of "fail_fast", "complete_all"`},
		}},
		{"parallel without branches", doc(`{"name": "p", "type": "parallel", "branches": []}`), Limits{},
			[]want{{"/steps/0/branches", "at least one branch"}}},

		// foreach.
		{"foreach", doc(`{"name": "f", "type": "foreach", "items": "ctx.items", "steps": [` + sleep + `],
			"concurrency": 5, "collect_as": "1x", "on_error": "complete_all", "mode": "parallel"}`), Limits{}, []want{
			{"/steps/0/items", "must be an expression"},
			{"/steps/0/mode", `"parallel" is not one of "sequential", "concurrent"`},
			{"/steps/0/concurrency", `only allowed when mode is "concurrent"`},
			{"/steps/0/collect_as", "not starting with a digit"},
			{"/steps/0/on_error", `"complete_all" is not one of "fail_fast", "continue", "collect"`},
		}},
		{"foreach concurrency bounds", doc(`{"name": "f", "type": "foreach", "items": "${ ctx.items }", "mode": "concurrent", "concurrency": 0, "steps": [` + sleep + `]}`), Limits{},
			[]want{{"/steps/0/concurrency", "from 1 to 1000"}}},
		{"foreach missing", doc(`{"name": "f", "type": "foreach"}`), Limits{},
			[]want{{"/steps/0/items", "is required"}, {"/steps/0/steps", "is required"}}},
		{"foreach items type", doc(`{"name": "f", "type": "foreach", "items": "${ 'abc' }", "steps": [` + sleep + `]}`), Limits{},
			[]want{{"/steps/0/items", "must evaluate to a list, but evaluates to string"}}},

		// sleep.
		{"sleep both", doc(`{"name": "s", "type": "sleep", "duration": "1s", "until": "${ ctx.at }"}`), Limits{},
			[]want{{"/steps/0", `exactly one of "duration" or "until", not both`}}},
		{"sleep neither", doc(`{"name": "s", "type": "sleep"}`), Limits{}, []want{{"/steps/0", `must have "duration" or "until"`}}},
		{"sleep until", doc(
			`{"name": "a", "type": "sleep", "until": "tomorrow"}`,
			`{"name": "b", "type": "sleep", "until": "2026-01-02 15:04:05"}`,
			`{"name": "c", "type": "sleep", "until": "${ 42 }"}`,
		), Limits{}, []want{
			{"/steps/0/until", "RFC 3339 timestamp"},
			{"/steps/1/until", "RFC 3339 timestamp"},
			{"/steps/2/until", "must evaluate to a timestamp or an RFC 3339 string"},
		}},

		// wait_for_event.
		{"wait_for_event none", doc(`{"name": "w", "type": "wait_for_event"}`), Limits{},
			[]want{{"/steps/0", `must have "event" and "key", "any" or "all"`}}},
		{"wait_for_event several forms", doc(`{"name": "w", "type": "wait_for_event", "event": "a", "key": "${ ctx.id }", "any": [{"event": "b", "key": "${ ctx.id }"}]}`), Limits{},
			[]want{{"/steps/0", "only one of"}}},
		{"wait_for_event half", doc(
			`{"name": "a", "type": "wait_for_event", "event": "x"}`,
			`{"name": "b", "type": "wait_for_event", "key": "${ ctx.id }"}`,
		), Limits{}, []want{{"/steps/0/key", "is required"}, {"/steps/1/event", "is required"}}},
		{"wait_for_event names and keys", doc(`{"name": "w", "type": "wait_for_event", "all": [
			{"event": "", "key": "${ ctx.id }"},
			{"event": "a\u0007b", "key": "${ ctx.id }"},
			{"event": "` + strings.Repeat("é", 257) + `", "key": "${ ctx.id }"},
			{"event": "ok", "key": "ctx.id"},
			{"event": "ok", "key": "${ [1] }"},
			{"event": "ok", "key": "${ ctx.id }", "payload": 1}
		], "timeout": "0s", "on_timeout": "retry", "lookback": "169h"}`), Limits{}, []want{
			{"/steps/0/all/0/event", "must not be empty"},
			{"/steps/0/all/1/event", "control characters"},
			{"/steps/0/all/2/event", "at most 256 characters"},
			{"/steps/0/all/3/key", "must be an expression"},
			{"/steps/0/all/4/event", "listed twice"},
			{"/steps/0/all/5/event", "listed twice"},
			{"/steps/0/all/5/payload", `unknown field "payload"`},
			{"/steps/0/timeout", "greater than zero"},
			{"/steps/0/on_timeout", `"retry" is not one of "fail", "continue"`},
			{"/steps/0/lookback", "at most 168h0m0s"},
			{"/steps/0/all/4/key", "must evaluate to a string or an integer, but evaluates to list(int)"},
		}},
		{"wait_for_event sizes", doc(
			`{"name": "a", "type": "wait_for_event", "any": []}`,
			`{"name": "b", "type": "wait_for_event", "all": [`+distinctEvents(101)+`]}`,
			`{"name": "c", "type": "wait_for_event", "event": "e", "key": "${ ctx.id }", "lookback": "-1s"}`,
		), Limits{}, []want{
			{"/steps/0/any", "1 to 100 events"},
			{"/steps/1/all", "1 to 100 events"},
			{"/steps/2/lookback", "must not be negative"},
		}},

		// wait_for_input.
		{"wait_for_input kind", doc(
			`{"name": "a", "type": "wait_for_input"}`,
			`{"name": "b", "type": "wait_for_input", "kind": "signature", "options": ["x"]}`,
		), Limits{}, []want{
			{"/steps/0/kind", "is required"},
			{"/steps/1/kind", `"signature" is not one of "approval", "choice", "text", "form"`},
		}},
		{"wait_for_input fields per kind", doc(
			`{"name": "a", "type": "wait_for_input", "kind": "text", "options": ["x"], "schema": {}, "on_reject": "continue"}`,
			`{"name": "b", "type": "wait_for_input", "kind": "choice"}`,
			`{"name": "c", "type": "wait_for_input", "kind": "form"}`,
			`{"name": "d", "type": "wait_for_input", "kind": "choice", "options": ["x", "", "x", 1]}`,
			`{"name": "e", "type": "wait_for_input", "kind": "choice", "options": []}`,
			`{"name": "f", "type": "wait_for_input", "kind": "form", "schema": true}`,
		), Limits{}, []want{
			{"/steps/0/options", `only allowed when kind is "choice"`},
			{"/steps/0/schema", `only allowed when kind is "form"`},
			{"/steps/0/on_reject", `only allowed when kind is "approval"`},
			{"/steps/1/options", "is required"},
			{"/steps/2/schema", "is required"},
			{"/steps/3/options/1", "must not be empty"},
			{"/steps/3/options/2", `duplicate option "x"`},
			{"/steps/3/options/3", "must be a string"},
			{"/steps/4/options", "1 to 100 options"},
			{"/steps/5/schema", "must be an object, not a boolean"},
		}},
		{"form schema that does not compile", doc(
			`{"name": "a", "type": "wait_for_input", "kind": "form", "schema": {"type": "nope", "properties": {"x": {"minLength": -1}}}}`,
			`{"name": "b", "type": "wait_for_input", "kind": "form", "schema": {"$ref": "https://evil.example/schema.json"}}`,
			`{"name": "c", "type": "wait_for_input", "kind": "form", "schema": {"$ref": "file:///etc/passwd"}}`,
			`{"name": "d", "type": "wait_for_input", "kind": "form", "schema": {"$ref": "other.json"}}`,
			`{"name": "e", "type": "wait_for_input", "kind": "form", "schema": {"$schema": "https://evil.example/meta"}}`,
			`{"name": "f", "type": "wait_for_input", "kind": "form", "schema": {"properties": {"x": {"pattern": "("}}}}`,
		), Limits{}, []want{
			{"/steps/0/schema/properties/x/minLength", "invalid JSON Schema: minimum: got -1, want 0"},
			{"/steps/0/schema/type", "invalid JSON Schema: value must be one of 'array', 'boolean'"},
			{"/steps/0/schema/type", "invalid JSON Schema: got string, want array"},
			{"/steps/1/schema", `cannot load "https://evil.example/schema.json": references to other documents are not allowed`},
			{"/steps/2/schema", `cannot load "file:///etc/passwd": references to other documents are not allowed`},
			{"/steps/3/schema", `cannot load "other.json": references to other documents are not allowed`},
			{"/steps/4/schema", `cannot load "https://evil.example/meta": references to other documents are not allowed`},
			{"/steps/5/schema/properties/x/pattern", "invalid JSON Schema"},
		}},

		// call_workflow.
		{"call_workflow", doc(`{"name": "c", "type": "call_workflow", "workflow": "Invoicing", "version": 0,
			"wait": "yes", "timeout": "1h", "input": ["${ }"]}`), Limits{}, []want{
			{"/steps/0/workflow", "lowercase"},
			{"/steps/0/version", "from 1 to 2147483647"},
			{"/steps/0/wait", "must be a boolean, not a string"},
			{"/steps/0/input/0", "expression is empty"},
		}},
		{"call_workflow timeout without wait", doc(`{"name": "c", "type": "call_workflow", "workflow": "w", "wait": false, "timeout": "1h"}`), Limits{},
			[]want{{"/steps/0/timeout", `only allowed when "wait" is true`}}},
		{"call_workflow missing workflow", doc(`{"name": "c", "type": "call_workflow"}`), Limits{},
			[]want{{"/steps/0/workflow", "is required"}}},

		// Expressions.
		{"expressions", doc(
			`{"name": "a", "type": "call", "url": "https://h/", "input": {
				"syntax": "${ ctx. }",
				"undeclared": "${ nope.x }",
				"missing_step": "${ steps.ghost.output }",
				"missing_step_index": "${ steps['phantom'] }",
				"item": "${ item }",
				"index": "${ [1, 2].map(x, x + index) }",
				"shadowed": "${ [1].map(item, item) }",
				"forward_ref": "${ steps.later.output }",
				"self_ref": "${ steps.a.output }",
				"two": "${ ctx.a } and ${ ctx.b }",
				"nested": {"deep": ["price: ${ ctx.price }"]},
				"escaped": "price: $${ not an expression }",
				"too_nested": "${ [[[[1]]]].all(a, a.all(b, b.all(c, c.all(d, d > 0)))) }",
				"bad_duration": "${ duration('5 minutes') }"
			}}`,
			`{"name": "later", "type": "sleep", "duration": "1s"}`,
		), Limits{}, []want{
			{"/steps/0/input/nested/deep/0", "an expression must be the whole string"},
			{"/steps/0/input/syntax", "Syntax error"},
			{"/steps/0/input/undeclared", "undeclared reference to 'nope'"},
			{"/steps/0/input/missing_step", "steps.ghost refers to a step that does not exist"},
			{"/steps/0/input/missing_step_index", "steps.phantom refers to a step that does not exist"},
			{"/steps/0/input/item", "item is only available in the steps of a foreach"},
			{"/steps/0/input/index", "index is only available in the steps of a foreach"},
			{"/steps/0/input/two", "an expression must be the whole string"},
			{"/steps/0/input/too_nested", "comprehension exceeds nesting limit"},
			{"/steps/0/input/bad_duration", "invalid duration"},
		}},
		{"item in foreach items", doc(`{"name": "f", "type": "foreach", "items": "${ item.list }", "steps": [` + sleep + `]}`), Limits{},
			[]want{{"/steps/0/items", "item is only available"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireProblems(t, problemsOf(t, tt.doc, tt.limits), tt.want...)
		})
	}
}

func TestParseExpressionScopes(t *testing.T) {
	t.Parallel()
	// item and index are visible anywhere inside a foreach, including in
	// nested steps, compensations and nested foreach items.
	mustParse(t, doc(`{"name": "f", "type": "foreach", "items": "${ input.orders }", "steps": [
		{"name": "b", "type": "branch", "on": "${ item.kind }", "cases": [{"value": "x", "steps": [
			{"name": "g", "type": "foreach", "items": "${ item.lines }", "steps": [
				{"name": "c", "type": "call", "url": "https://h/", "headers": {"X-Index": "${ string(index) }"},
				 "input": {"line": "${ item }"}, "compensate": {"url": "https://h/undo", "input": {"i": "${ index }"}}}]}]}]},
		{"name": "w", "type": "wait_for_event", "event": "e", "key": "${ item.id }"}]}`,
		`{"name": "after", "type": "call", "url": "https://h/", "input": {"c": "${ steps.c.output }", "opt": "${ steps.?w.orValue(null) }", "has": "${ has(steps.b) }"}}`))
}

func TestParseMultipleProblemsAtOnce(t *testing.T) {
	t.Parallel()
	got := problemsOf(t, `{"name": "Bad", "extra": true, "steps": [
		{"name": "a", "type": "call", "url": "ftp://x", "retry": {"max_attempts": 0}},
		{"name": "a", "type": "sleep", "duration": "soon"},
		{"name": "c", "type": "branch", "cases": [{"if": "${ steps.nope }", "steps": [{"name": "d", "type": "magic"}]}]}
	]}`, Limits{})
	requireProblems(t, got,
		want{"/name", "lowercase"},
		want{"/steps/0/url", "absolute http or https URL"},
		want{"/steps/0/retry/max_attempts", "from 1 to 1000"},
		want{"/steps/1/name", "duplicate step name"},
		want{"/steps/1/duration", "not a duration"},
		want{"/steps/2/cases/0/steps/0/type", "is not one of"},
		want{"/extra", "unknown field"},
		want{"/steps/2/cases/0/if", "steps.nope refers to a step that does not exist"},
	)
}

func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"name": "x"}`), Limits{})
	require.EqualError(t, err, "invalid workflow definition: /steps: is required")
	_, err = Parse([]byte(`{}`), Limits{})
	require.EqualError(t, err, "invalid workflow definition: /name: is required (and 1 more problems)")
}

func TestPointerEscaping(t *testing.T) {
	t.Parallel()
	got := problemsOf(t, `{"name": "x", "steps": [{"name": "a", "type": "call", "url": "https://h/", "input": {"a/b~c": "x ${ y }"}}], "o~/": 1}`, Limits{})
	requireProblems(t, got,
		want{"/steps/0/input/a~1b~0c", "whole string"},
		want{"/o~0~1", "unknown field"},
	)
}

func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 10, InitialInterval: Duration(time.Second), BackoffCoefficient: 2, MaxInterval: Duration(10 * time.Second)}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 10 * time.Second},
		{1000, 10 * time.Second},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, p.Backoff(tt.n), "retry %d", tt.n)
	}
}

func TestDefaultMaxIntervalSaturates(t *testing.T) {
	t.Parallel()
	d := mustParse(t, doc(`{"name": "c", "type": "call", "url": "https://h/", "retry": {"initial_interval": "2000000h"}}`))
	require.Equal(t, Duration(1<<63-1), d.Steps[0].Call.Retry.MaxInterval)
}

func TestDurationText(t *testing.T) {
	t.Parallel()
	var d Duration
	require.NoError(t, d.UnmarshalText([]byte("1h30m")))
	require.Equal(t, Duration(90*time.Minute), d)
	b, err := d.MarshalText()
	require.NoError(t, err)
	require.Equal(t, "1h30m0s", string(b))
	require.Error(t, d.UnmarshalText([]byte("5 minutes")))
}

// distinctEvents lists n events of distinct names for an any or all wait.
func distinctEvents(n int) string {
	events := make([]string, n)
	for i := range events {
		events[i] = fmt.Sprintf(`{"event": "e%d", "key": "${ ctx.id }"}`, i)
	}
	return strings.Join(events, ",")
}
