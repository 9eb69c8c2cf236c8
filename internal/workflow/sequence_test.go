package workflow

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSuccessor(t *testing.T) {
	t.Parallel()
	def, err := Parse([]byte(`{"name": "w", "steps": [
		{"name": "a", "type": "call", "url": "http://127.0.0.1/a"},
		{"name": "route", "type": "branch", "on": "${ input.tier }", "cases": [
			{"value": "gold", "steps": [
				{"name": "g1", "type": "call", "url": "http://127.0.0.1/g1"},
				{"name": "inner", "type": "branch", "cases": [{"if": "${ true }", "steps": [
					{"name": "i1", "type": "sleep", "duration": "1s"}]}]}]}],
			"default": [{"name": "d1", "type": "call", "url": "http://127.0.0.1/d1"}]},
		{"name": "z", "type": "call", "url": "http://127.0.0.1/z"}]}`), DefaultLimits())
	require.NoError(t, err)
	names := func(steps []*Step) []string {
		var out []string
		for _, s := range steps {
			out = append(out, s.Name)
		}
		return out
	}
	for _, tc := range []struct {
		after, next string
		ended       []string
	}{
		{"", "a", nil},
		{"a", "route", nil},
		{"g1", "inner", nil},
		{"i1", "z", []string{"inner", "route"}},
		{"d1", "z", []string{"route"}},
		{"route", "z", nil},
		{"z", "", nil},
	} {
		next, ended := def.Successor(tc.after)
		got := ""
		if next != nil {
			got = next.Name
		}
		require.Equal(t, tc.next, got, "after %q", tc.after)
		require.Equal(t, tc.ended, names(ended), "after %q", tc.after)
	}
}
