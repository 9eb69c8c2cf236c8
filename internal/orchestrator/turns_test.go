package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

type leaderKey struct{}

// TestTurnsRecordTogether sends many transitions of one run while one is in
// flight: they never overlap, those that queued meanwhile are recorded
// together in the next transaction, one that fails is rolled back alone,
// and the others are recorded once each.
func TestTurnsRecordTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newTestService(t)
	_, _, err := svc.CreateWorkflow(ctx, []byte(`{"name": "one", "steps": [{"name": "a", "type": "call", "url": "http://127.0.0.1:1/a"}]}`))
	require.NoError(t, err)
	run, _, err := svc.StartRun(ctx, StartRun{Workflow: "one", Input: json.RawMessage(`{}`)})
	require.NoError(t, err)

	const n = 40
	var inside atomic.Int32
	leaders := make([]any, n)
	release := make(chan struct{})
	transition := func(i int) func(ctx context.Context, tx *postgres.Tx) error {
		return func(ctx context.Context, tx *postgres.Tx) error {
			assert.Equal(t, int32(1), inside.Add(1), "two transitions of one run at once")
			defer inside.Add(-1)
			if i == 0 {
				<-release // the others queue meanwhile
			}
			leaders[i] = ctx.Value(leaderKey{})
			tx.AppendHistory(postgres.NewHistoryEvent{RunID: run.ID, Type: workflow.EventStepStarted, StepKey: fmt.Sprintf("t%d", i)})
			if i%7 == 3 {
				return errors.New("refused")
			}
			return nil
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = svc.inTurn(context.WithValue(ctx, leaderKey{}, 0), run.ID, postgres.WorkItem{ID: 1}, nil, transition(0))
	})
	require.Eventually(t, func() bool {
		svc.turns.mu.Lock()
		defer svc.turns.mu.Unlock()
		_, busy := svc.turns.queues[run.ID]
		return busy
	}, 10*time.Second, time.Millisecond)
	for i := 1; i < n; i++ {
		wg.Go(func() {
			errs[i] = svc.inTurn(context.WithValue(ctx, leaderKey{}, i), run.ID, postgres.WorkItem{ID: int64(i + 1)}, nil, transition(i))
		})
	}
	require.Eventually(t, func() bool {
		svc.turns.mu.Lock()
		defer svc.turns.mu.Unlock()
		return len(svc.turns.queues[run.ID]) == n-1
	}, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()

	require.Equal(t, 0, leaders[0])
	second := leaders[1]
	for i := 1; i < n; i++ {
		require.Equal(t, second, leaders[i], "transition %d was not recorded with the others that queued", i)
	}
	history, err := svc.ListHistory(ctx, run.ID, 0, 1000)
	require.NoError(t, err)
	seen := map[string]int{}
	for _, e := range history {
		if e.Type == workflow.EventStepStarted {
			seen[e.StepKey]++
		}
	}
	for i := range n {
		key := fmt.Sprintf("t%d", i)
		if i%7 == 3 {
			require.EqualError(t, errs[i], "refused")
			require.Zero(t, seen[key], "a refused transition is rolled back")
			continue
		}
		require.NoError(t, errs[i])
		require.Equal(t, 1, seen[key], "transition %d recorded once", i)
	}
	svc.turns.mu.Lock()
	defer svc.turns.mu.Unlock()
	require.Empty(t, svc.turns.queues, "ended turns leave nothing behind")
}
