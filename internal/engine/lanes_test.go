package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
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
