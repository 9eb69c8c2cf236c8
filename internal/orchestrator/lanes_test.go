package orchestrator

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
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
		scope, name := splitKey(tc.key)
		require.Equal(t, tc.scope, scope, tc.key)
		require.Equal(t, tc.name, name, tc.key)
	}
	require.Equal(t, []string{""}, scopeChain(""))
	require.Equal(t, []string{"", "ship[3].", "ship[3].box[0]."}, scopeChain("ship[3].box[0]."))
	block, lane := laneBlock("ship[3].notify[email]")
	require.Equal(t, "ship[3].notify", block)
	require.Equal(t, "email", lane)
	require.True(t, isLaneKey("ship[3]"))
	require.False(t, isLaneKey("ship[3].label"))
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
	require.Equal(t, "ship[3].notify[email]", laneOf(def, scope, "deep"))
	require.Equal(t, "ship[3].route", parentKeyOf(def, scope, "deep"))
	require.Equal(t, "ship[3].notify[sms]", laneOf(def, scope, "text"))
	require.Equal(t, "ship[3].notify[sms]", parentKeyOf(def, scope, "text"))
	require.Equal(t, "ship[3]", laneOf(def, scope, "notify"))
	require.Equal(t, "", laneOf(def, "", "after"))
	require.Equal(t, "", parentKeyOf(def, "", "ship"))
	require.Equal(t, "ship[3].", scopeOf(def, "ship[3]"))
	require.Equal(t, "ship[3].", scopeOf(def, "ship[3].notify[sms]"))
	next, ended, laneEnds := after(def, "deep")
	require.Nil(t, next)
	require.True(t, laneEnds)
	require.Len(t, ended, 1) // the branch ends with it, then the lane
	require.Equal(t, "route", ended[0].Name)
}

func TestDeepMerge(t *testing.T) {
	t.Parallel()
	merged := map[string]any{}
	owners := map[string]string{}
	var conflicts []mergeConflict
	deepMerge(merged, map[string]any{"user": map[string]any{"name": "ada", "id": int64(1)}, "a/b": true}, "", "a", owners, &conflicts)
	deepMerge(merged, map[string]any{"user": map[string]any{"name": "bob", "id": int64(1), "tags": []any{"x"}}}, "", "b", owners, &conflicts)
	deepMerge(merged, map[string]any{"user": "flat", "a/b": true}, "", "c", owners, &conflicts)
	require.Equal(t, []mergeConflict{
		{Path: "/user/name", Branches: []string{"a", "b"}},
		{Path: "/user", Branches: []string{"a", "c"}},
	}, conflicts)
	require.Equal(t, map[string]any{"user": map[string]any{"name": "ada", "id": int64(1), "tags": []any{"x"}}, "a/b": true}, merged)
	require.Equal(t, "a", owners["/a~1b"])
	require.Equal(t, "/user/name, /user", conflictPaths(conflicts))

	ctx := map[string]any{"user": map[string]any{"plan": "pro", "name": "old"}, "keep": 1}
	overwrite(ctx, map[string]any{"user": map[string]any{"name": "ada"}})
	require.Equal(t, map[string]any{"user": map[string]any{"plan": "pro", "name": "ada"}, "keep": 1}, ctx)
}

func TestRunTurns(t *testing.T) {
	t.Parallel()
	var turns runTurns
	a, b := uuid.New(), uuid.New()
	var inA atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			done := turns.take(a)
			defer done()
			assert.Equal(t, int32(1), inA.Add(1), "two turns of one run at once")
			time.Sleep(100 * time.Microsecond)
			inA.Add(-1)
		}()
		go func() {
			defer wg.Done()
			turns.take(b)() // another run never waits for a's turns
		}()
	}
	wg.Wait()
	require.Empty(t, turns.turns, "ended turns leave nothing behind")
}
