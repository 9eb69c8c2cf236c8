package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/workflow"
)

// TestStartsShareCommits starts many runs at once, so that they share
// transactions: starts with the same idempotency key make one run, a start
// that fails — an unknown workflow, or input the database refuses inside
// the shared transaction — fails alone, and the others start.
func TestStartsShareCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newTestService(t)
	_, _, err := svc.CreateWorkflow(ctx, []byte(`{"name": "one", "steps": [{"name": "a", "type": "call", "url": "http://127.0.0.1:1/a"}]}`))
	require.NoError(t, err)
	type result struct {
		id  uuid.UUID
		err error
	}
	const n = 200
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		req := StartRun{Workflow: "one", Input: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i/2)), IdempotencyKey: fmt.Sprintf("key-%d", i/2)}
		switch i % 10 {
		case 3:
			req.Workflow, req.IdempotencyKey = "ghost", ""
		case 7:
			req.Input, req.IdempotencyKey = json.RawMessage(`{"nul": "a\u0000b"}`), ""
		}
		wg.Go(func() {
			r, _, err := svc.StartRun(ctx, req)
			results[i] = result{r.ID, err}
		})
	}
	wg.Wait()
	byKey := map[int]uuid.UUID{}
	for i, r := range results {
		switch i % 10 {
		case 3:
			require.True(t, fault.Is(r.err, fault.Invalid), "start %d: %v", i, r.err)
			continue
		case 7:
			require.True(t, fault.Is(r.err, fault.Invalid), "start %d: %v", i, r.err)
			continue
		}
		require.NoError(t, r.err, "start %d", i)
		if id, ok := byKey[i/2]; ok {
			require.Equal(t, id, r.id, "two runs for key-%d", i/2)
		}
		byKey[i/2] = r.id
	}
	runs, err := svc.ListRuns(ctx, workflow.RunFilter{}, nil, 1000)
	require.NoError(t, err)
	require.Len(t, runs, len(byKey))
	for _, r := range runs {
		history, err := svc.ListHistory(ctx, r.ID, 0, 10)
		require.NoError(t, err)
		require.Len(t, history, 1, "run %s", r.ID)
		require.Equal(t, "run_created", history[0].Type)
	}
}
