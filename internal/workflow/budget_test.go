package workflow

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// allocated returns how many bytes fn allocated. The tests that use it are
// not parallel, so that nothing else allocates meanwhile.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestExpressionsCannotBuildHugeValues is the probe's memory exhaustion: a
// short expression that doubles a string read from the input (its type
// known only at run time, so CEL's own cost model charged it nothing) built
// 51 MB from a 200 KB input, and a chain of 200 concatenations 3.8 GB.
func TestExpressionsCannotBuildHugeValues(t *testing.T) {
	tree := "input.s"
	for range 8 {
		tree = "(" + tree + " + " + tree + ")"
	}
	chain := "input.s"
	for range 200 {
		chain = "(" + chain + " + input.s)"
	}
	s := strings.Repeat("a", 200_000)
	list := make([]any, 10_000)
	for i := range list {
		list[i] = int64(i)
	}
	tests := []struct {
		name string
		expr string
	}{
		{"a tree of 256 concatenations", tree},
		{"a chain of 200 concatenations", chain},
		{"a concatenation per element of a list", "input.l.map(x, input.s + input.s).size()"},
		{"bytes", "size(bytes(input.s) + bytes(input.s) + bytes(input.s) + bytes(input.s) + bytes(input.s) + bytes(input.s))"},
		{"base64 of base64", "base64.encode(bytes(base64.encode(bytes(base64.encode(bytes(input.s + input.s + input.s + input.s + input.s))))))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := inputTemplate(t, `{"x": "${ `+tt.expr+` }"}`, false)
			var err error
			n := allocated(func() {
				_, err = tmpl.Render(context.Background(), Activation{Input: map[string]any{"s": s, "l": list}})
			})
			require.ErrorIs(t, err, ErrCostLimitExceeded)
			require.ErrorContains(t, err, "or a string or bytes value larger than 1048576 bytes")
			require.Less(t, n, uint64(64<<20), "allocated %d MB", n>>20)
		})
	}
}

func TestDynamicCallsCostWhatTypedCallsCost(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("a", 100_000)
	list := make([]any, 2000)
	for i := range list {
		list[i] = int64(i)
	}
	// Each call scans or builds 100 KB: 10,000 cost units, 2,000 times.
	for _, expr := range []string{
		"input.l.map(x, input.s + 'b').size()",
		"input.l.filter(x, input.s.contains('b')).size()",
		"input.l.filter(x, input.s.startsWith(input.s)).size()",
		"input.l.filter(x, input.s < input.s).size()",
		"input.l.filter(x, input.s.matches('b')).size()",
		"input.l.filter(x, size(bytes(input.s)) == 0).size()",
	} {
		tmpl := inputTemplate(t, `{"x": "${ `+expr+` }"}`, false)
		_, err := tmpl.Render(context.Background(), Activation{Input: map[string]any{"s": s, "l": list}})
		require.ErrorIs(t, err, ErrCostLimitExceeded, expr)
	}
	// Light uses of the same functions pass.
	tmpl := inputTemplate(t, `{"x": "${ input.s + 'b' }", "y": "${ input.s.contains('b') }"}`, false)
	v, err := tmpl.Render(context.Background(), Activation{Input: map[string]any{"s": "a"}})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"x": "ab", "y": false}, v)
}

func TestHeavyEvaluationsWaitForMemory(t *testing.T) {
	defer SetEvalMemory(DefaultEvalMemory)
	SetEvalMemory(heavyReserve(DefaultCostLimit))
	list := make([]any, 5000)
	for i := range list {
		list[i] = int64(i)
	}
	a := Activation{Input: map[string]any{"l": list}}
	d, err := Parse([]byte(doc(`{"name": "c", "type": "call", "url": "https://h/", "input": {
		"heavy": "${ input.l.map(x, x * 2).size() }", "light": "${ size(input.l) }"}}`)), Limits{EvalTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	tmpl := d.Steps[0].Call.Input

	v, err := tmpl.Render(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"heavy": int64(5000), "light": int64(5000)}, v)

	// Another heavy evaluation holds the whole budget: this one waits for
	// it, past its time limit, which bounds work, not waiting.
	release, err := evalMemory.Load().reserve(context.Background(), heavyReserve(DefaultCostLimit))
	require.NoError(t, err)
	done := make(chan error)
	go func() {
		_, err := tmpl.Render(context.Background(), a)
		done <- err
	}()
	// Light evaluations do not wait.
	light := inputTemplate(t, `{"light": "${ size(input.l) }"}`, false)
	v, err = light.Render(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"light": int64(5000)}, v)
	// The caller's context bounds the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = tmpl.Render(ctx, a)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "waiting for expression memory")
	select {
	case err := <-done:
		t.Fatalf("a heavy evaluation ran while another held the memory budget: %v", err)
	default:
	}
	release()
	require.NoError(t, <-done)
}

// TestRegexRepetitions: cel-go v0.31 panicked compiling any regular
// expression with a repetition count, which answered a definition with 500.
func TestRegexRepetitions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		re, s string
		want  bool
	}{
		{"a{2}", "aaaa", true},
		{"a{2,}", "a", false},
		{"(ab){3}", "ababab", true},
		{"x{0}", "", true},
		{"^a{2,3}$", "aaaa", false},
	} {
		d := mustParse(t, doc(`{"name": "c", "type": "call", "url": "https://h/", "input": {
			"literal": "${ input.s.matches('`+tt.re+`') }", "data": "${ input.s.matches(input.re) }"}}`))
		v, err := d.Steps[0].Call.Input.Render(context.Background(), Activation{Input: map[string]any{"s": tt.s, "re": tt.re}})
		require.NoError(t, err, tt.re)
		require.Equal(t, map[string]any{"literal": tt.want, "data": tt.want}, v, tt.re)
	}
	requireProblems(t, problemsOf(t, doc(`{"name": "c", "type": "call", "url": "https://h/", "input": {"x": "${ 'a'.matches('a{1000}') }"}}`), DefaultLimits()),
		want{"/steps/0/input/x", "regex program size 1002 exceeds limit of 500"})
	d := mustParse(t, doc(`{"name": "c", "type": "call", "url": "https://h/", "input": {"x": "${ input.s.matches(input.re) }"}}`))
	_, err := d.Steps[0].Call.Input.Render(context.Background(), Activation{Input: map[string]any{"s": "a", "re": "a{1000}"}})
	require.ErrorContains(t, err, "regex program size 1002 exceeds limit of 500")
}

func TestEncodersAreBase64Only(t *testing.T) {
	t.Parallel()
	// json.encode of a list holding one list many times builds a string as
	// large as the shared structure unrolled, in one call.
	requireProblems(t, problemsOf(t, doc(`{"name": "c", "type": "call", "url": "https://h/", "input": {"x": "${ json.encode(input.l.map(x, input.l)) }"}}`), DefaultLimits()),
		want{"/steps/0/input/x", "undeclared reference to 'json'"}, want{"/steps/0/input/x", "undeclared reference to 'encode'"})
}
