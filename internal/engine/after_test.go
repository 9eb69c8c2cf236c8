package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

// shapes is a definition with every kind of nesting the engine walks.
const shapes = `{"name": "shapes", "steps": [
  {"name": "a", "type": "call", "url": "http://x/a"},
  {"name": "b", "type": "branch", "cases": [{"if": "${ true }", "steps": [
    {"name": "c1", "type": "call", "url": "http://x/c1"},
    {"name": "c2", "type": "call", "url": "http://x/c2"}]}],
   "default": [{"name": "d1", "type": "sleep", "duration": "1s"}]},
  {"name": "p", "type": "parallel", "branches": [
    {"name": "x", "steps": [{"name": "x1", "type": "call", "url": "http://x/x1"}]},
    {"name": "y", "steps": [
      {"name": "y1", "type": "call", "url": "http://x/y1"},
      {"name": "y2", "type": "wait_for_event", "event": "e", "key": "${ input.k }"}]}]},
  {"name": "f", "type": "foreach", "items": "${ [1, 2, 3] }", "steps": [
    {"name": "f1", "type": "call", "url": "http://x/f1"},
    {"name": "m", "type": "loop", "while": "${ true }", "max_iterations": 3, "steps": [
      {"name": "m1", "type": "call", "url": "http://x/m1"}]}]},
  {"name": "l", "type": "loop", "while": "${ iteration < 5 }", "max_iterations": 10, "steps": [
    {"name": "l1", "type": "call", "url": "http://x/l1"},
    {"name": "lb", "type": "branch", "cases": [{"if": "${ iteration == 1 }", "steps": [
      {"name": "lb1", "type": "call", "url": "http://x/lb1"}]}]}]},
  {"name": "z", "type": "call", "url": "http://x/z"}]}`

func parse(t *testing.T, doc string) *workflow.Definition {
	t.Helper()
	def, err := workflow.Parse([]byte(doc), workflow.DefaultLimits())
	require.NoError(t, err)
	return def
}

func keysOf(es []Enclosure) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

func TestAfter(t *testing.T) {
	t.Parallel()
	def := parse(t, shapes)
	for _, tc := range []struct {
		scope, name string
		ended       []string
		step, lane  string
		loop        string // the key of the loop whose iteration ends
	}{
		{"", "a", nil, "b", "", ""},
		{"", "c1", nil, "c2", "", ""},
		{"", "c2", []string{"b"}, "p", "", ""},
		{"", "d1", []string{"b"}, "p", "", ""},
		{"", "b", nil, "p", "", ""},
		{"", "x1", nil, "", "p[x]", ""},
		{"", "y1", nil, "y2", "", ""},
		{"", "y2", nil, "", "p[y]", ""},
		{"", "p", nil, "f", "", ""},
		{"f[2].", "f1", nil, "m", "", ""},
		{"f[2].m[0].", "m1", nil, "", "", "f[2].m"},
		{"f[2].", "m", nil, "", "f[2]", ""},
		{"", "f", nil, "l", "", ""},
		{"l[3].", "l1", nil, "lb", "", ""},
		{"l[3].", "lb1", []string{"l[3].lb"}, "", "", "l"},
		{"l[3].", "lb", nil, "", "", "l"},
		{"", "l", nil, "z", "", ""},
		{"", "z", nil, "", "", ""},
	} {
		next := After(def, tc.scope, tc.name)
		what := tc.scope + tc.name
		want := tc.ended
		if want == nil {
			want = []string{}
		}
		require.Equal(t, want, keysOf(next.Ended), what)
		if tc.step == "" {
			require.Nil(t, next.Step, what)
		} else {
			require.NotNil(t, next.Step, what)
			require.Equal(t, tc.step, next.Step.Name, what)
		}
		require.Equal(t, tc.lane, next.Lane, what)
		if tc.loop == "" {
			require.Nil(t, next.Loop, what)
		} else {
			require.NotNil(t, next.Loop, what)
			require.Equal(t, tc.loop, next.Loop.Key, what)
		}
	}
}

func TestFailureOf(t *testing.T) {
	t.Parallel()
	def := parse(t, shapes)
	for _, tc := range []struct {
		key    string
		failed []string
		lane   string
		block  string
	}{
		{"a", nil, "", ""},
		{"c1", []string{"b"}, "", ""},
		{"d1", []string{"b"}, "", ""},
		{"x1", nil, "p[x]", "p"},
		{"y2", nil, "p[y]", "p"},
		{"p", nil, "", ""},
		{"f[2].f1", nil, "f[2]", "f"},
		{"f[2].m[1].m1", []string{"f[2].m"}, "f[2]", "f"},
		{"l[3].l1", []string{"l"}, "", ""},
		{"l[3].lb1", []string{"l[3].lb", "l"}, "", ""},
		{"l", nil, "", ""},
	} {
		f := FailureOf(def, tc.key)
		want := tc.failed
		if want == nil {
			want = []string{}
		}
		require.Equal(t, want, keysOf(f.Failed), tc.key)
		require.Equal(t, tc.lane, f.Lane, tc.key)
		if tc.block == "" {
			require.Nil(t, f.Block, tc.key)
		} else {
			require.Equal(t, tc.block, f.Block.Key, tc.key)
		}
	}
}

func TestParentsAndLanesInLoops(t *testing.T) {
	t.Parallel()
	def := parse(t, shapes)
	for _, tc := range []struct {
		scope, name, parent, lane string
	}{
		{"", "a", "", ""},
		{"", "c1", "b", ""},
		{"", "y1", "p[y]", "p[y]"},
		{"f[2].", "f1", "f[2]", "f[2]"},
		{"f[2].", "m", "f[2]", "f[2]"},
		{"f[2].m[1].", "m1", "f[2].m", "f[2]"},
		{"l[3].", "l1", "l", ""},
		{"l[3].", "lb1", "l[3].lb", ""},
	} {
		require.Equal(t, tc.parent, ParentKey(def, tc.scope, tc.name), tc.scope+tc.name)
		require.Equal(t, tc.lane, LaneOf(def, tc.scope, tc.name), tc.scope+tc.name)
	}
	require.Equal(t, "f[2].", ScopeOf(def, "f[2]"))
	require.Equal(t, "f[2].m[1].", ScopeOf(def, "f[2].m[1].m1"))
	require.Equal(t, "", ScopeOf(def, "p[y]"))
	require.Equal(t, "y1", FirstOfLane(def, "p[y]").Name)
	require.Equal(t, "f1", FirstOfLane(def, "f[0]").Name)
	require.Nil(t, FirstOfLane(def, "p[nope]"))
	require.Nil(t, FirstOfLane(def, "nope[0]"))
	require.Equal(t, "l[7].", IterationScope("", "l", 7))
}
