package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// newTestService returns the API's use cases over a fresh database, with
// what a worker needs: the tests drive both.
func newTestService(t *testing.T) *API {
	t.Helper()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	secrets, err := signing.ParseSecrets(secret)
	require.NoError(t, err)
	return NewAPI(pgtest.New(t), DefaultLimits(), slog.New(slog.NewTextHandler(io.Discard, nil)),
		WithSigning(secrets, "http://127.0.0.1:1"), WithWorkerID("test"))
}

// TestClaimDoesNotWaitForCostlyInputs is the probe's blocked worker: a run
// whose first step's input takes the whole evaluation time limit to fail
// was rendered inside the claim's transaction, one item after another, so
// every run claimed with it waited — and rendered again when it failed. The
// claim now returns while the costly input is still rendering, with the
// cheap runs' first steps started, and the costly one fails with the
// failure of its one rendering.
func TestClaimDoesNotWaitForCostlyInputs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newTestService(t)
	for _, def := range []string{
		// Comparing lists of long lists costs CEL one unit each, but visits
		// every element: 10,000 times 40,000 comparisons take longer than
		// the evaluation's time limit of 1 s.
		`{"name": "costly", "steps": [{"name": "c", "type": "call", "url": "http://127.0.0.1:1/c", "input": {"x": "${ input.l.map(x, input.a == input.b) }"}}]}`,
		`{"name": "cheap", "steps": [{"name": "c", "type": "call", "url": "http://127.0.0.1:1/c", "input": {"n": "${ input.n }"}}]}`,
	} {
		_, _, err := svc.CreateWorkflow(ctx, []byte(def))
		require.NoError(t, err)
	}
	zeros := func(n int) string { return "[" + strings.Repeat("0,", n-1) + "0]" }
	long := "[" + zeros(20_000) + "," + zeros(20_000) + "]"
	costly, _, err := svc.StartRun(ctx, StartRun{Workflow: "costly", Input: json.RawMessage(`{"l": ` + zeros(10_000) + `, "a": ` + long + `, "b": ` + long + `}`)})
	require.NoError(t, err)
	cheap := map[uuid.UUID]bool{}
	for i := range 5 {
		r, _, err := svc.StartRun(ctx, StartRun{Workflow: "cheap", Input: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))})
		require.NoError(t, err)
		cheap[r.ID] = true
	}

	c, err := svc.claim(ctx, 32)
	require.NoError(t, err)
	var slow *firstStep
	for _, f := range c.prepared {
		if f.item.RunID == costly.ID {
			slow = f
			continue
		}
		<-f.done // a cheap input that missed the batch on a busy machine
		a, err := svc.beginPrepared(ctx, f)
		require.NoError(t, err)
		c.attempts = append(c.attempts, a)
	}
	require.NotNil(t, slow, "the costly run's first step was not left to begin on its own")
	select {
	case <-slow.done:
		t.Fatal("the claim waited for the costly input")
	default:
	}
	started := map[uuid.UUID]bool{}
	for _, a := range c.attempts {
		require.True(t, cheap[a.state.Run.ID], "run %s started", a.state.Run.ID)
		require.JSONEq(t, string(a.state.Run.Input), string(a.input), "the input is rendered from the run's")
		started[a.state.Run.ID] = true
	}
	require.Equal(t, cheap, started, "every cheap run's first step started")

	<-slow.done
	require.ErrorIs(t, slow.renderErr, workflow.ErrCostLimitExceeded)
	require.ErrorContains(t, slow.renderErr, "evaluation took longer than 1s")
	a, err := svc.beginPrepared(ctx, slow)
	require.NoError(t, err)
	require.Nil(t, a)
	detail, err := svc.GetRun(ctx, costly.ID)
	require.NoError(t, err)
	require.Equal(t, workflow.RunFailed, detail.Status)
	require.Contains(t, string(detail.Error), "the step's input could not be built")
	require.Contains(t, string(detail.Error), "evaluation took longer than 1s")
}
