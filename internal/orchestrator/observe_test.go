package orchestrator

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres"
)

// The queue's depth counts due work up to the cap it is given, and its lag
// is the age of the oldest due item; work a worker has claimed is not due.
func TestWorkDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newTestService(t)
	due, lag, err := svc.db.WorkDue(ctx, 100)
	require.NoError(t, err)
	require.Zero(t, due)
	require.Zero(t, lag)

	_, _, err = svc.CreateWorkflow(ctx, []byte(`{"name": "q", "steps": [{"name": "c", "type": "call", "url": "http://127.0.0.1:1/c"}]}`))
	require.NoError(t, err)
	for range 5 {
		_, _, err := svc.StartRun(ctx, StartRun{Workflow: "q", Input: json.RawMessage(`{}`)})
		require.NoError(t, err)
	}
	time.Sleep(20 * time.Millisecond)
	due, lag, err = svc.db.WorkDue(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, int64(5), due)
	require.GreaterOrEqual(t, lag, 20*time.Millisecond)
	require.Less(t, lag, time.Minute)

	due, _, err = svc.db.WorkDue(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, int64(3), due, "counted no further than the cap")

	require.NoError(t, svc.db.InTx(ctx, func(tx *postgres.Tx) error {
		items, err := tx.ClaimWork(ctx, "w", 2, time.Minute)
		require.Len(t, items, 2)
		return err
	}))
	due, _, err = svc.db.WorkDue(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, int64(3), due, "claimed work is not due")
}
