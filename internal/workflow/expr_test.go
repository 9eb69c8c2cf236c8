package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// inputTemplate parses a definition whose only step is a call with the given
// input mapping, inside a foreach when inForeach is set, and returns the
// mapping.
func inputTemplate(t *testing.T, input string, inForeach bool) *Template {
	t.Helper()
	call := `{"name": "c", "type": "call", "url": "https://h/", "input": ` + input + `}`
	steps := []string{`{"name": "lookup", "type": "sleep", "duration": "1s"}`}
	if inForeach {
		steps = append(steps, `{"name": "each", "type": "foreach", "items": "${ input.items }", "steps": [`+call+`]}`)
	} else {
		steps = append(steps, call)
	}
	return mustParse(t, doc(steps...)).Step("c").Call.Input
}

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	v, err := DecodeJSON([]byte(s))
	require.NoError(t, err)
	return v
}

func testActivation(t *testing.T) Activation {
	return Activation{
		Input: mustDecode(t, `{"user_id": 42, "tier": "gold", "items": [{"sku": "a"}, {"sku": "b"}], "ratio": 0.5}`),
		Ctx:   mustDecode(t, `{"total": 150.5, "order_id": "o-1", "count": 3.0, "nested": {"list": [1, 2, 3]}, "at": "2026-01-02T03:04:05Z"}`).(map[string]any),
		Steps: mustDecode(t, `{"lookup": {"output": {"email": "a@example.com", "age": 30}}}`).(map[string]any),
		Run:   map[string]any{"id": "run-1", "workflow": "greet", "version": int64(3), "attempt": int64(1)},
		Item:  mustDecode(t, `{"sku": "b", "qty": 2}`),
		Index: 1,
	}
}

func TestTemplateRender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		input     string
		inForeach bool
		want      string // JSON
	}{
		{"number stays a number", `{"amount": "${ ctx.total }"}`, false, `{"amount": 150.5}`},
		{"integers are ints", `{"id": "${ input.user_id }", "eq": "${ input.user_id == 42 }", "type": "${ type(input.user_id) == int }"}`, false,
			`{"id": 42, "eq": true, "type": true}`},
		{"integral double from JSON is an int", `{"c": "${ ctx.count + 1 }"}`, false, `{"c": 4}`},
		{"cross-type comparison", `{"big": "${ ctx.total > 100 }", "ratio": "${ input.ratio < 1 }"}`, false, `{"big": true, "ratio": true}`},
		{"object stays an object", `{"whole": "${ input }"}`, false,
			`{"whole": {"user_id": 42, "tier": "gold", "items": [{"sku": "a"}, {"sku": "b"}], "ratio": 0.5}}`},
		{"steps and run", `{"email": "${ steps.lookup.output.email }", "run": "${ run.id + '/' + string(run.version) }"}`, false,
			`{"email": "a@example.com", "run": "run-1/3"}`},
		{"nested mapping with literals", `{"a": {"b": ["${ ctx.nested.list }", 1, "lit", null, true, {"c": "${ ctx.order_id }"}]}, "n": 1.50}`, false,
			`{"a": {"b": [[1, 2, 3], 1, "lit", null, true, {"c": "o-1"}]}, "n": 1.5}`},
		{"whole mapping is an expression", `"${ ctx.nested }"`, false, `{"list": [1, 2, 3]}`},
		{"literal mapping", `{"a": [1, {"b": "x"}]}`, false, `{"a": [1, {"b": "x"}]}`},
		{"escape", `{"s": "$${ not.an.expression }", "t": "cost: $${x} and $${y}", "u": "$$5"}`, false,
			`{"s": "${ not.an.expression }", "t": "cost: ${x} and ${y}", "u": "$$5"}`},
		{"keys are not expressions", `{"${ ctx.total }": 1}`, false, `{"${ ctx.total }": 1}`},
		{"item and index", `{"sku": "${ item.sku }", "i": "${ index }", "first": "${ index == 0 }"}`, true, `{"sku": "b", "i": 1, "first": false}`},
		{"no whitespace and multi-line", `{"a": "${ctx.order_id}", "b": "${\n  ctx.total\n  > 1\n}"}`, false, `{"a": "o-1", "b": true}`},
		{"macros", `{"skus": "${ input.items.map(i, i.sku) }", "any": "${ input.items.exists(i, i.sku == 'b') }"}`, false,
			`{"skus": ["a", "b"], "any": true}`},
		{"CEL types to JSON", `{"ts": "${ timestamp('2026-01-02T03:04:05Z') + duration('90m') }", "d": "${ duration('1h') }",
			"b": "${ b'hi' }", "u": "${ 5u }", "half": "${ 5.0 / 2.0 }", "whole": "${ 4.0 / 2.0 }", "map": "${ {1: 'a'} }",
			"opt": "${ ctx.?missing }", "optv": "${ ctx.?order_id }", "null": "${ null }"}`, false,
			`{"ts": "2026-01-02T04:34:05Z", "d": "1h0m0s", "b": "aGk=", "u": 5, "half": 2.5, "whole": 2, "map": {"1": "a"},
			  "opt": null, "optv": "o-1", "null": null}`},
		{"library", `{"max": "${ math.greatest(1, 5, 3) }", "b64": "${ base64.encode(b'hi') }", "re": "${ ctx.order_id.matches('^o-[0-9]+$') }",
			"has": "${ has(ctx.order_id) && !has(ctx.nope) }", "in": "${ 'gold' in ['gold', 'silver'] }"}`, false,
			`{"max": 5, "b64": "aGk=", "re": true, "has": true, "in": true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl := inputTemplate(t, tt.input, tt.inForeach)
			got, err := tmpl.RenderJSON(context.Background(), testActivation(t))
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))

			v, err := tmpl.Render(context.Background(), testActivation(t))
			require.NoError(t, err)
			requireJSONModel(t, v)
		})
	}
}

// requireJSONModel checks that v uses only the types the package promises.
func requireJSONModel(t *testing.T, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil, bool, string, int64, uint64, float64:
	case []any:
		for _, e := range v {
			requireJSONModel(t, e)
		}
	case map[string]any:
		for _, e := range v {
			requireJSONModel(t, e)
		}
	default:
		t.Fatalf("value %v of type %T is outside the JSON value model", v, v)
	}
}

func TestRenderKeepsNumbersTyped(t *testing.T) {
	t.Parallel()
	tmpl := inputTemplate(t, `{"i": "${ input.user_id }", "f": "${ ctx.total }", "s": "${ string(input.user_id) }"}`, false)
	got, err := tmpl.Render(context.Background(), testActivation(t))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"i": int64(42), "f": 150.5, "s": "42"}, got)
}

func TestRenderAcceptsEveryNumberRepresentation(t *testing.T) {
	t.Parallel()
	tmpl := inputTemplate(t, `{"eq": "${ input.user_id == 42 }", "sum": "${ input.user_id + 1 }", "list": "${ ctx.list.map(x, x * 2) }"}`, false)
	for _, input := range []any{
		map[string]any{"user_id": float64(42)},
		map[string]any{"user_id": json.Number("42")},
		map[string]any{"user_id": json.Number("42.0")},
		map[string]any{"user_id": int64(42)},
		map[string]any{"user_id": 42},
	} {
		a := Activation{Input: input, Ctx: map[string]any{"list": []any{json.Number("1"), float64(2), 3}}}
		got, err := tmpl.Render(context.Background(), a)
		require.NoError(t, err, "input %#v", input)
		require.Equal(t, map[string]any{"eq": true, "sum": int64(43), "list": []any{int64(2), int64(4), int64(6)}}, got, "input %#v", input)
	}
}

func TestRenderDoesNotModifyTheActivation(t *testing.T) {
	t.Parallel()
	input := map[string]any{"n": json.Number("1"), "list": []any{float64(2)}}
	tmpl := inputTemplate(t, `{"n": "${ input.n }", "lit": {"a": [1]}}`, false)
	out, err := tmpl.Render(context.Background(), Activation{Input: input})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"n": json.Number("1"), "list": []any{float64(2)}}, input)

	// The result shares nothing with the template: modifying it changes
	// nothing for the next render.
	out.(map[string]any)["lit"].(map[string]any)["a"].([]any)[0] = "changed"
	again, err := tmpl.Render(context.Background(), Activation{Input: input})
	require.NoError(t, err)
	require.Equal(t, []any{int64(1)}, again.(map[string]any)["lit"].(map[string]any)["a"])
}

func TestNilTemplate(t *testing.T) {
	t.Parallel()
	var tmpl *Template
	v, err := tmpl.Render(context.Background(), Activation{})
	require.NoError(t, err)
	require.Nil(t, v)
	b, err := tmpl.RenderJSON(context.Background(), Activation{})
	require.NoError(t, err)
	require.Equal(t, "null", string(b))
}

func TestEvalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		act   func(*Activation)
		want  string
	}{
		{"missing key", `{"x": "${ ctx.missing }"}`, nil, `evaluate ${ ctx.missing } at /steps/1/input/x: no such key: missing`},
		{"missing nested key", `{"x": ["${ input.a.b }"]}`, nil, `evaluate ${ input.a.b } at /steps/1/input/x/0: no such key: a`},
		{"type error", `{"x": "${ input.tier + 1 }"}`, nil, `no such overload`},
		{"division by zero", `{"x": "${ input.user_id / 0 }"}`, nil, `division by zero`},
		{"null input", `{"x": "${ input.a }"}`, func(a *Activation) { a.Input = nil }, `evaluate ${ input.a }`},
		{"not JSON: NaN", `{"x": "${ 0.0 / 0.0 }"}`, nil, `cannot be represented in JSON`},
		{"not JSON: type", `{"x": "${ type(1) }"}`, nil, `cannot be represented in JSON`},
		{"not JSON: map key", `{"x": "${ {true: 1} }"}`, nil, `a map key of type bool cannot be represented in JSON`},
		{"invalid number in data", `{"x": "${ input }"}`, func(a *Activation) { a.Input = json.Number("1e999") }, "number 1e999 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl := inputTemplate(t, tt.input, false)
			a := testActivation(t)
			if tt.act != nil {
				tt.act(&a)
			}
			_, err := tmpl.Render(context.Background(), a)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestEvalErrorType(t *testing.T) {
	t.Parallel()
	e := mustParse(t, doc(`{"name": "b", "type": "branch", "on": "${ ctx.nope }", "cases": [{"value": 1, "steps": [{"name": "s", "type": "sleep", "duration": "1s"}]}]}`)).Steps[0].Branch.On
	_, err := e.Eval(context.Background(), Activation{})
	var eerr *EvalError
	require.ErrorAs(t, err, &eerr)
	require.Equal(t, "/steps/0/on", eerr.Path)
	require.Equal(t, "${ ctx.nope }", eerr.Expr)
	require.Equal(t, "/steps/0/on", e.Path())
}

func TestEvalLimits(t *testing.T) {
	t.Parallel()
	list := make([]any, 2000)
	for i := range list {
		list[i] = int64(i)
	}
	long := make([]any, 100_000)
	for i := range long {
		long[i] = int64(i)
	}
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name   string
		expr   string
		ctx    map[string]any
		limits Limits
		want   string
	}{
		{"nested comprehension", `${ ctx.list.map(x, ctx.list.map(y, x * y)).size() }`, map[string]any{"list": list}, Limits{}, "expression cost limit exceeded"},
		{"exists over a product", `${ ctx.list.exists(x, ctx.list.exists(y, x + y < 0)) }`, map[string]any{"list": list}, Limits{}, "expression cost limit exceeded"},
		{"lower cost limit", `${ ctx.list.map(x, x + 1) }`, map[string]any{"list": list}, Limits{CostLimit: 100}, "expression cost limit exceeded"},
		{"string growth", `${ ctx.list.map(x, ctx.big + ctx.big).size() }`, map[string]any{"list": list, "big": big}, Limits{}, "expression cost limit exceeded"},
		{"shared structure", `${ ctx.list.map(x, ctx.list) }`, map[string]any{"list": list}, Limits{}, "the result is larger than 8388608 bytes"},
		{"time", `${ ctx.long.exists(x, ctx.long.exists(y, x + y < 0)) }`, map[string]any{"long": long}, Limits{CostLimit: 1 << 62, EvalTimeout: 50 * time.Millisecond}, "evaluation took longer than 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := Parse([]byte(doc(`{"name": "c", "type": "call", "url": "https://h/", "input": {"x": "`+tt.expr+`"}}`)), tt.limits)
			require.NoError(t, err)
			start := time.Now()
			_, err = d.Steps[0].Call.Input.Render(context.Background(), Activation{Ctx: tt.ctx})
			require.ErrorIs(t, err, ErrCostLimitExceeded)
			require.ErrorContains(t, err, tt.want)
			var eerr *EvalError
			require.ErrorAs(t, err, &eerr)
			require.Equal(t, "/steps/0/input/x", eerr.Path)
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

func TestRenderResultBudgetCoversTheWholeTemplate(t *testing.T) {
	t.Parallel()
	// Each expression alone is well within the budget; together they are not.
	items := make([]string, 20)
	for i := range items {
		items[i] = `"${ ctx.big }"`
	}
	tmpl := inputTemplate(t, `[`+strings.Join(items, ",")+`]`, false)
	_, err := tmpl.Render(context.Background(), Activation{Ctx: map[string]any{"big": strings.Repeat("x", 1<<20)}})
	require.ErrorIs(t, err, ErrCostLimitExceeded)
	require.ErrorContains(t, err, "/steps/1/input/7")
}

func TestEvalHonoursContext(t *testing.T) {
	t.Parallel()
	list := make([]any, 100)
	for i := range list {
		list[i] = int64(i)
	}
	tmpl := inputTemplate(t, `"${ ctx.list.map(x, ctx.list.map(y, x * y)).size() }"`, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tmpl.Render(ctx, Activation{Ctx: map[string]any{"list": list}})
	require.ErrorIs(t, err, context.Canceled)
	var eerr *EvalError
	require.ErrorAs(t, err, &eerr)
}

func TestTypedEvaluation(t *testing.T) {
	t.Parallel()
	d := mustParse(t, doc(
		`{"name": "b", "type": "branch", "on": "${ input.tier }", "cases": [
			{"if": "${ ctx.total > 1000 }", "steps": [{"name": "huge", "type": "sleep", "duration": "1s"}]},
			{"value": "gold", "steps": [{"name": "gold", "type": "sleep", "duration": "1s"}]},
			{"value": 42, "steps": [{"name": "answer", "type": "sleep", "duration": "1s"}]},
			{"value": {"a": [1]}, "steps": [{"name": "obj", "type": "sleep", "duration": "1s"}]},
			{"if": "${ ctx.flag }", "steps": [{"name": "flag", "type": "sleep", "duration": "1s"}]}],
		 "default": [{"name": "other", "type": "sleep", "duration": "1s"}]}`,
		`{"name": "f", "type": "foreach", "items": "${ ctx.items }", "steps": [{"name": "x", "type": "sleep", "duration": "1s"}]}`,
		`{"name": "w", "type": "wait_for_event", "event": "e", "key": "${ ctx.key }"}`,
		`{"name": "s1", "type": "sleep", "until": "${ ctx.at }"}`,
		`{"name": "s2", "type": "sleep", "until": "${ timestamp(ctx.at) + duration('1h') }"}`,
		`{"name": "s3", "type": "sleep", "until": "2026-05-01T00:00:00Z"}`,
		`{"name": "s4", "type": "sleep", "duration": "10m"}`,
		`{"name": "c", "type": "call", "url": "https://h/", "headers": {"X-Lit": "v", "X-Expr": "${ ctx.header }"}}`,
	))
	ctx := context.Background()

	t.Run("branch", func(t *testing.T) {
		t.Parallel()
		b := d.Step("b").Branch
		tests := []struct {
			input any
			ctx   map[string]any
			want  string
			index int
		}{
			{map[string]any{"tier": "gold"}, map[string]any{"total": 5}, "gold", 1},
			{map[string]any{"tier": "gold"}, map[string]any{"total": 5000.5}, "huge", 0},
			{map[string]any{"tier": 42.0}, map[string]any{"total": 5}, "answer", 2},
			{map[string]any{"tier": map[string]any{"a": []any{json.Number("1.0")}}}, map[string]any{"total": 5}, "obj", 3},
			{map[string]any{"tier": "silver"}, map[string]any{"total": 5, "flag": true}, "flag", 4},
			{map[string]any{"tier": "silver"}, map[string]any{"total": 5, "flag": false}, "other", -1},
		}
		for _, tt := range tests {
			i, steps, err := b.Select(ctx, Activation{Input: tt.input, Ctx: tt.ctx})
			require.NoError(t, err)
			require.Equal(t, tt.index, i)
			require.Equal(t, tt.want, steps[0].Name)
		}
		_, _, err := b.Select(ctx, Activation{Input: map[string]any{"tier": "silver"}, Ctx: map[string]any{"total": 5, "flag": "yes"}})
		require.ErrorContains(t, err, "must evaluate to a bool, got string")
	})

	t.Run("foreach items", func(t *testing.T) {
		t.Parallel()
		items, err := d.Step("f").Foreach.Items.EvalList(ctx, Activation{Ctx: map[string]any{"items": []any{1.0, "a"}}})
		require.NoError(t, err)
		require.Equal(t, []any{int64(1), "a"}, items)
		_, err = d.Step("f").Foreach.Items.EvalList(ctx, Activation{Ctx: map[string]any{"items": "nope"}})
		require.ErrorContains(t, err, "must evaluate to a list, got a string")
	})

	t.Run("event key", func(t *testing.T) {
		t.Parallel()
		key := d.Step("w").WaitForEvent.Events[0].Key
		for _, tt := range []struct {
			v    any
			want string
		}{{"o-1", "o-1"}, {float64(42), "42"}, {json.Number("7"), "7"}} {
			got, err := key.EvalString(ctx, Activation{Ctx: map[string]any{"key": tt.v}})
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		}
		_, err := key.EvalString(ctx, Activation{Ctx: map[string]any{"key": 1.5}})
		require.ErrorContains(t, err, "must evaluate to a string, got a number")
	})

	t.Run("sleep", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		a := Activation{Ctx: map[string]any{"at": "2026-03-04T05:06:07+01:00"}}
		for _, tt := range []struct {
			step string
			want time.Time
		}{
			{"s1", time.Date(2026, 3, 4, 4, 6, 7, 0, time.UTC)},
			{"s2", time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)},
			{"s3", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
			{"s4", now.Add(10 * time.Minute)},
		} {
			got, err := d.Step(tt.step).Sleep.WakeAt(ctx, now, a)
			require.NoError(t, err)
			require.Equal(t, tt.want, got, tt.step)
		}
		_, err := d.Step("s1").Sleep.WakeAt(ctx, now, Activation{Ctx: map[string]any{"at": "tomorrow"}})
		require.ErrorContains(t, err, `must evaluate to a timestamp or an RFC 3339 string, got "tomorrow"`)
		_, err = d.Step("s1").Sleep.WakeAt(ctx, now, Activation{Ctx: map[string]any{"at": 5}})
		require.ErrorContains(t, err, "got int")
	})

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		c := d.Step("c").Call
		got, err := c.RenderHeaders(ctx, Activation{Ctx: map[string]any{"header": "acme"}})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"X-Lit": "v", "X-Expr": "acme"}, got)

		_, err = c.RenderHeaders(ctx, Activation{Ctx: map[string]any{"header": 5}})
		require.ErrorContains(t, err, "header X-Expr: evaluate ${ ctx.header } at /steps/7/headers/X-Expr: must evaluate to a string, got a number")
		_, err = c.RenderHeaders(ctx, Activation{Ctx: map[string]any{"header": "a\r\nX-Injected: 1"}})
		require.ErrorContains(t, err, "header X-Expr: value contains a control character")

		v, err := c.Headers["X-Expr"].Render(ctx, Activation{Ctx: map[string]any{"header": "x"}})
		require.NoError(t, err)
		require.Equal(t, "x", v)
	})
}

func TestConcurrentRender(t *testing.T) {
	t.Parallel()
	tmpl := inputTemplate(t, `{"sku": "${ item.sku }", "i": "${ index }", "total": "${ ctx.total * 2.0 }"}`, true)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			a := Activation{Item: map[string]any{"sku": "s"}, Index: int64(i), Ctx: map[string]any{"total": 1.5}}
			for range 100 {
				got, err := tmpl.Render(context.Background(), a)
				if err != nil {
					errs <- err
					return
				}
				if got.(map[string]any)["i"] != int64(i) {
					errs <- errors.New("wrong index")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    any
		wantErr string
	}{
		{`{"a": 1, "b": 1.0, "c": 1.5, "d": 1e2, "e": -0, "f": 12345678901234567890}`, map[string]any{
			"a": int64(1), "b": int64(1), "c": 1.5, "d": int64(100), "e": int64(0), "f": 1.2345678901234567e19,
		}, ""},
		{`[9223372036854775807, -9223372036854775808, 9223372036854775808]`, []any{int64(9223372036854775807), int64(-9223372036854775808), 9.223372036854775808e18}, ""},
		{`"s"`, "s", ""},
		{`null`, nil, ""},
		{`1e400`, nil, "out of range"},
		{`{} {}`, nil, "unexpected data after the document"},
		{`{`, nil, "decode json"},
	}
	for _, tt := range tests {
		got, err := DecodeJSON([]byte(tt.in))
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestUnescape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"plain", "plain", true},
		{"$${x}", "${x}", true},
		{"a $${ b } c $${", "a ${ b } c ${", true},
		{"$$${x}", "$${x}", true},
		{"$ {x}", "$ {x}", true},
		{"a ${x}", "", false},
		{"${", "", false},
		{"$${x} ${y}", "", false},
	}
	for _, tt := range tests {
		got, ok := unescape(tt.in)
		require.Equal(t, tt.ok, ok, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestMatchExpr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, code string
		ok       bool
	}{
		{"${ a }", "a", true},
		{"${a}", "a", true},
		{"${\n\ta.b\n}", "a.b", true},
		{"${ {'a': 1} }", "{'a': 1}", true},
		{" ${ a }", "", false},
		{"${ a } ", "", false},
		{"$${ a }", "", false},
		{"${}", "", false},
	}
	for _, tt := range tests {
		code, ok := matchExpr(tt.in)
		require.Equal(t, tt.ok, ok, tt.in)
		require.Equal(t, tt.code, code, tt.in)
	}
}

func TestJSONEqual(t *testing.T) {
	t.Parallel()
	require.True(t, jsonEqual(int64(1), 1.0))
	require.True(t, jsonEqual(map[string]any{"a": []any{int64(1), "x"}}, map[string]any{"a": []any{1.0, "x"}}))
	require.True(t, jsonEqual(nil, nil))
	require.False(t, jsonEqual(int64(1), "1"))
	require.False(t, jsonEqual(int64(9007199254740993), int64(9007199254740992)))
	require.False(t, jsonEqual(map[string]any{"a": 1}, map[string]any{"b": 1}))
	require.False(t, jsonEqual([]any{1}, []any{1, 2}))
	require.False(t, jsonEqual("1", int64(1)))
	require.False(t, jsonEqual(strings.Repeat("a", 2), "a"))
}
