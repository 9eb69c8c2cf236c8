package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, scope, name string }{
		{"charge", "", "charge"},
		{"ship[3].label", "ship[3].", "label"},
		{"ship[3].box[0].seal", "ship[3].box[0].", "seal"},
		{"ship[3].notify[email]", "ship[3].", "notify[email]"},
		{"", "", ""},
	} {
		scope, name := SplitKey(tc.key)
		require.Equal(t, tc.scope, scope, tc.key)
		require.Equal(t, tc.name, name, tc.key)
	}
	require.Equal(t, []string{""}, ScopeChain(""))
	require.Equal(t, []string{"", "ship[3].", "ship[3].box[0]."}, ScopeChain("ship[3].box[0]."))
	block, lane := LaneBlock("ship[3].notify[email]")
	require.Equal(t, "ship[3].notify", block)
	require.Equal(t, "email", lane)
	require.True(t, IsLaneKey("ship[3]"))
	require.False(t, IsLaneKey("ship[3].label"))
}

func TestLaneOfAndParents(t *testing.T) {
	t.Parallel()
	def, err := workflow.Parse([]byte(`{"name": "w", "steps": [
	  {"name": "ship", "type": "foreach", "items": "${ input.xs }", "steps": [
	    {"name": "notify", "type": "parallel", "branches": [
	      {"name": "email", "steps": [
	        {"name": "route", "type": "branch", "on": "${ item }", "cases": [{"value": 1, "steps": [
	          {"name": "deep", "type": "sleep", "duration": "1s"}]}]}]},
	      {"name": "sms", "steps": [{"name": "text", "type": "sleep", "duration": "1s"}]}]}]},
	  {"name": "after", "type": "sleep", "duration": "1s"}]}`), workflow.DefaultLimits())
	require.NoError(t, err)
	require.True(t, def.HasLanes())
	scope := "ship[3]."
	require.Equal(t, "ship[3].notify[email]", LaneOf(def, scope, "deep"))
	require.Equal(t, "ship[3].route", ParentKey(def, scope, "deep"))
	require.Equal(t, "ship[3].notify[sms]", LaneOf(def, scope, "text"))
	require.Equal(t, "ship[3].notify[sms]", ParentKey(def, scope, "text"))
	require.Equal(t, "ship[3]", LaneOf(def, scope, "notify"))
	require.Equal(t, "", LaneOf(def, "", "after"))
	require.Equal(t, "", ParentKey(def, "", "ship"))
	require.Equal(t, "ship[3].", ScopeOf(def, "ship[3]"))
	require.Equal(t, "ship[3].", ScopeOf(def, "ship[3].notify[sms]"))
	next := After(def, scope, "deep")
	require.Nil(t, next.Step)
	require.Equal(t, "ship[3].notify[email]", next.Lane)
	require.Len(t, next.Ended, 1) // the branch ends with it, then the lane
	require.Equal(t, "ship[3].route", next.Ended[0].Key)
}
