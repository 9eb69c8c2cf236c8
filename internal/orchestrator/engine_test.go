package orchestrator

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/workflow"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	p := workflow.RetryPolicy{MaxAttempts: 10, InitialInterval: workflow.Duration(time.Second), BackoffCoefficient: 2, MaxInterval: workflow.Duration(10 * time.Second)}
	for range 200 {
		for n := 1; n <= 6; n++ {
			d := retryDelay(p, n, 0)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, p.Backoff(n), "full jitter stays within the backoff")
		}
	}
	require.Equal(t, 3*time.Second, retryDelay(p, 1, 3*time.Second), "a longer Retry-After wins")
	require.Equal(t, 10*time.Second, retryDelay(p, 1, time.Hour), "but never beyond the maximum interval")
}

// TestMergeContextKeepsValues checks that merging a context answer keeps
// every value exactly as written, as jsonb's || does, and replaces
// top-level members only.
func TestMergeContextKeepsValues(t *testing.T) {
	t.Parallel()
	st := &runState{}
	require.NoError(t, st.setContext(json.RawMessage(`{"keep": {"deep": 1}, "replace": 1, "big": 12345678901234567890123}`)))
	require.NoError(t, st.mergeContext(json.RawMessage(`{"replace": {"x": 1.50}, "new": 9007199254740993}`)))
	require.JSONEq(t, `{"keep": {"deep": 1}, "replace": {"x": 1.50}, "big": 12345678901234567890123, "new": 9007199254740993}`, string(st.ctxRaw))
	require.Contains(t, string(st.ctxRaw), "12345678901234567890123")
	require.Contains(t, string(st.ctxRaw), "9007199254740993")
	require.Equal(t, int64(9007199254740993), st.ctx["new"])
	require.Error(t, st.mergeContext(json.RawMessage(`[1]`)))
}

func TestStorable(t *testing.T) {
	t.Parallel()
	ok := httpstep.Result{Outcome: httpstep.Succeeded, HTTPStatus: 200, Output: json.RawMessage(`{"a": "\u00e9"}`)}
	require.Equal(t, ok, storable(ok))

	bad := storable(httpstep.Result{Outcome: httpstep.Succeeded, HTTPStatus: 200, Output: json.RawMessage(`{"a": "\u0000"}`)})
	require.Equal(t, httpstep.Permanent, bad.Outcome)
	require.Contains(t, string(bad.Error), "output cannot be stored")

	failed := storable(httpstep.Result{Outcome: httpstep.Retryable, HTTPStatus: 503, Error: json.RawMessage(`{"message": "\ud800"}`)})
	require.Equal(t, httpstep.Retryable, failed.Outcome, "an unstorable error keeps the classification")
	require.Contains(t, string(failed.Error), "error cannot be stored")
}

func TestRetriesLeft(t *testing.T) {
	t.Parallel()
	step := &workflow.Step{Call: &workflow.CallStep{Request: workflow.Request{Retry: workflow.RetryPolicy{MaxAttempts: 2}}}}
	require.True(t, (&attempt{step: step, number: 1}).retriesLeft())
	require.False(t, (&attempt{step: step, number: 2}).retriesLeft())
	require.True(t, (&attempt{step: step, number: 2, abandoned: 1}).retriesLeft(), "abandoned attempts do not count")
}
