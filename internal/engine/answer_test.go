package engine

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	p := workflow.RetryPolicy{MaxAttempts: 10, InitialInterval: workflow.Duration(time.Second), BackoffCoefficient: 2, MaxInterval: workflow.Duration(10 * time.Second)}
	for range 200 {
		for n := 1; n <= 6; n++ {
			d := RetryDelay(p, n, 0, rand.Int64N)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, p.Backoff(n), "full jitter stays within the backoff")
		}
	}
	require.Equal(t, 3*time.Second, RetryDelay(p, 1, 3*time.Second, rand.Int64N), "a longer Retry-After wins")
	require.Equal(t, 10*time.Second, RetryDelay(p, 1, time.Hour, rand.Int64N), "but never beyond the maximum interval")
}

// TestMergeContextKeepsValues checks that merging a context answer keeps
// every value exactly as written, as jsonb's || does, and replaces
// top-level members only.
func TestMergeContextKeepsValues(t *testing.T) {
	t.Parallel()
	st := &State{}
	require.NoError(t, st.SetContext(json.RawMessage(`{"keep": {"deep": 1}, "replace": 1, "big": 12345678901234567890123}`)))
	require.NoError(t, st.MergeContext(json.RawMessage(`{"replace": {"x": 1.50}, "new": 9007199254740993}`)))
	require.JSONEq(t, `{"keep": {"deep": 1}, "replace": {"x": 1.50}, "big": 12345678901234567890123, "new": 9007199254740993}`, string(st.CtxRaw))
	require.Contains(t, string(st.CtxRaw), "12345678901234567890123")
	require.Contains(t, string(st.CtxRaw), "9007199254740993")
	require.Equal(t, int64(9007199254740993), st.Ctx["new"])
	require.Error(t, st.MergeContext(json.RawMessage(`[1]`)))
}

func TestStorable(t *testing.T) {
	t.Parallel()
	ok := Answer{Outcome: Succeeded, HTTPStatus: 200, Output: json.RawMessage(`{"a": "\u00e9"}`)}
	require.Equal(t, ok, Storable(ok))

	bad := Storable(Answer{Outcome: Succeeded, HTTPStatus: 200, Output: json.RawMessage(`{"a": "\u0000"}`)})
	require.Equal(t, Permanent, bad.Outcome)
	require.Contains(t, string(bad.Error), "output cannot be stored")

	failed := Storable(Answer{Outcome: Retryable, HTTPStatus: 503, Error: json.RawMessage(`{"message": "\ud800"}`)})
	require.Equal(t, Retryable, failed.Outcome, "an unstorable error keeps the classification")
	require.Contains(t, string(failed.Error), "error cannot be stored")
}

func TestRetriesLeft(t *testing.T) {
	t.Parallel()
	p := workflow.RetryPolicy{MaxAttempts: 2}
	require.True(t, Attempt{Number: 1}.RetriesLeft(p))
	require.False(t, Attempt{Number: 2}.RetriesLeft(p))
	require.True(t, Attempt{Number: 2, Abandoned: 1}.RetriesLeft(p), "abandoned attempts do not count")
}
