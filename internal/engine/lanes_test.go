package engine

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

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

func TestBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b           Block
		opens, done bool
	}{
		{Block{Status: "running", Total: 5, Started: 2, Ended: 1}, true, false},
		{Block{Status: "running", Total: 5, Started: 5, Ended: 4}, false, false},
		{Block{Status: "running", Total: 5, Started: 5, Ended: 5}, false, true},
		{Block{Status: "running", Total: 0}, false, true},
		{Block{Status: "failed", Total: 5, Started: 2, Ended: 2}, false, false},
	} {
		require.Equal(t, tc.opens, tc.b.Opens(), "%+v", tc.b)
		require.Equal(t, tc.done, tc.b.Done(), "%+v", tc.b)
	}

	def := parse(t, `{"name": "w", "steps": [
	  {"name": "fast", "type": "parallel", "branches": [{"name": "a", "steps": [{"name": "a1", "type": "call", "url": "http://x/a"}]}]},
	  {"name": "all", "type": "parallel", "on_error": "complete_all", "branches": [{"name": "b", "steps": [{"name": "b1", "type": "call", "url": "http://x/b"}]}]},
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "on_error": "collect", "collect_as": "got", "steps": [{"name": "e1", "type": "call", "url": "http://x/e"}]},
	  {"name": "first", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": 3, "steps": [{"name": "f1", "type": "call", "url": "http://x/f"}]}]}`)
	laneErr := LaneError("fast[a]", json.RawMessage(`{"message": "boom"}`))
	require.Contains(t, string(laneErr), `"message":"step fast[a] failed: boom"`)
	blockErr := LaneFailed(def.Step("fast"), "fast[a]", laneErr)
	require.Contains(t, string(blockErr), "branch a failed: step fast[a] failed: boom")
	require.Nil(t, LaneFailed(def.Step("all"), "all[b]", laneErr), "complete_all lets the other lanes go on")
	require.Nil(t, LaneFailed(def.Step("each"), "each[0]", laneErr))
	require.Contains(t, string(LaneFailed(def.Step("first"), "first[4]", laneErr)), "item 4 failed")

	output, patch := CollectItems(def.Step("each"), json.RawMessage(`[1, null]`), json.RawMessage(`[null, {"message": "x"}]`))
	require.JSONEq(t, `{"results": [1, null], "errors": [null, {"message": "x"}]}`, string(output))
	require.JSONEq(t, `{"got": [1, null]}`, string(patch))
	output, patch = CollectItems(def.Step("first"), json.RawMessage(`[1]`), json.RawMessage(`[null]`))
	require.JSONEq(t, `{"results": [1], "errors": []}`, string(output), "errors are collected only under collect")
	require.Nil(t, patch)
	require.True(t, MergesContext(def.Step("each")))
	require.False(t, MergesContext(def.Step("first")))
	require.False(t, MergesContext(def.Step("fast")))

	ctx := context.Background()
	st, err := NewState(workflow.Run{Input: json.RawMessage(`{"xs": [1, 2, 3, 4]}`), Context: json.RawMessage(`{}`)}, def)
	require.NoError(t, err)
	lim := Limits{MaxOutputBytes: 1000, MaxContextBytes: 1000}
	input, names, total, open, problem := Lanes(ctx, st, def.Step("fast"), lim)
	require.NoError(t, problem)
	require.JSONEq(t, `{"branches": ["a"]}`, string(input))
	require.Equal(t, []string{"a"}, names)
	require.Equal(t, 1, total)
	require.Equal(t, 1, open)
	input, names, total, open, problem = Lanes(ctx, st, def.Step("first"), lim)
	require.NoError(t, problem)
	require.JSONEq(t, `{"items": [1, 2, 3, 4], "count": 4}`, string(input))
	require.Nil(t, names)
	require.Equal(t, 4, total)
	require.Equal(t, 3, open, "a foreach opens as many items as its concurrency")
	_, _, total, open, _ = Lanes(ctx, st, def.Step("each"), lim)
	require.Equal(t, 4, total)
	require.Equal(t, 1, open, "a sequential foreach opens one item at a time")
	_, _, _, _, problem = Lanes(ctx, st, def.Step("each"), Limits{MaxOutputBytes: 10})
	require.ErrorContains(t, problem, "the list of items is 29 bytes as JSON; the limit is 10")
	bad, err := NewState(workflow.Run{Input: json.RawMessage(`{"xs": 1}`), Context: json.RawMessage(`{}`)}, def)
	require.NoError(t, err)
	_, _, _, _, problem = Lanes(ctx, bad, def.Step("each"), lim)
	require.ErrorContains(t, problem, "the items could not be evaluated")
}

func TestJoinBranches(t *testing.T) {
	t.Parallel()
	def := parse(t, `{"name": "w", "steps": [
	  {"name": "obj", "type": "parallel", "branches": [
	    {"name": "a", "steps": [{"name": "a1", "type": "call", "url": "http://x/a"}]},
	    {"name": "b", "steps": [{"name": "b1", "type": "call", "url": "http://x/b"}]}]},
	  {"name": "deep", "type": "parallel", "merge": "deep_merge", "branches": [
	    {"name": "c", "steps": [{"name": "c1", "type": "call", "url": "http://x/c"}]},
	    {"name": "d", "steps": [{"name": "d1", "type": "call", "url": "http://x/d"}]}]}]}`)
	output, patch, problem, err := JoinBranches(def.Step("obj"), []Lane{
		{Index: 0, Status: "succeeded", Output: json.RawMessage(`{"x": 1}`)}, {Index: 1, Status: "succeeded"}}, nil)
	require.NoError(t, err)
	require.Nil(t, problem)
	require.Nil(t, patch)
	require.JSONEq(t, `{"a": {"x": 1}, "b": null}`, string(output))

	_, _, problem, err = JoinBranches(def.Step("obj"), []Lane{
		{Index: 0, Status: "failed", Error: json.RawMessage(`{"message": "no"}`)}, {Index: 1, Status: "succeeded"}}, nil)
	require.NoError(t, err)
	require.Contains(t, string(problem), "1 of 2 branches failed")

	output, patch, problem, err = JoinBranches(def.Step("deep"), []Lane{
		{Index: 0, Status: "succeeded", Output: json.RawMessage(`{"user": {"name": "ada"}}`)},
		{Index: 1, Status: "succeeded", Output: json.RawMessage(`{"user": {"plan": "pro"}}`)}}, json.RawMessage(`{"user": {"name": "old", "id": 7}, "keep": 1}`))
	require.NoError(t, err)
	require.Nil(t, problem)
	require.JSONEq(t, `{"user": {"name": "ada", "plan": "pro"}}`, string(output))
	require.JSONEq(t, `{"user": {"name": "ada", "plan": "pro", "id": 7}, "keep": 1}`, string(patch), "the merge goes deep into the context")

	_, _, problem, err = JoinBranches(def.Step("deep"), []Lane{
		{Index: 0, Status: "succeeded", Output: json.RawMessage(`{"user": {"name": "ada"}}`)},
		{Index: 1, Status: "succeeded", Output: json.RawMessage(`{"user": {"name": "bob"}}`)}}, json.RawMessage(`{}`))
	require.NoError(t, err)
	require.Contains(t, string(problem), "deep_merge found conflicting values among the branches' outputs at /user/name")
}
