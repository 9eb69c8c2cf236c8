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

// most is a jitter that always picks the longest delay: decisions become
// exact.
func most(n int64) int64 { return n - 1 }

func TestJudge(t *testing.T) {
	t.Parallel()
	step := &workflow.Step{Name: "s", Call: &workflow.CallStep{Request: workflow.Request{Retry: workflow.RetryPolicy{
		MaxAttempts: 3, InitialInterval: workflow.Duration(time.Second), BackoffCoefficient: 2,
		MaxInterval: workflow.Duration(time.Minute), NonRetryableStatuses: []int{503},
	}}}}
	lim := Limits{MaxOutputBytes: 64, MaxContextBytes: 64}
	st := &State{}
	require.NoError(t, st.SetContext(json.RawMessage(`{"have": "0123456789"}`)))
	big := json.RawMessage(`"0123456789012345678901234567890123456789012345678901234567890123456789"`)
	for _, tc := range []struct {
		name    string
		at      Attempt
		ans     Answer
		verdict Verdict
		output  string
		patch   string
		err     string // a part of the error
		delay   time.Duration
	}{
		{"output", Attempt{Number: 1}, Answer{Outcome: Succeeded, HTTPStatus: 200, Output: json.RawMessage(`{"a": 1}`)}, Succeed, `{"a": 1}`, "", "", 0},
		{"no output", Attempt{Number: 1}, Answer{Outcome: Succeeded, HTTPStatus: 204}, Succeed, `null`, "", "", 0},
		{"empty context answer", Attempt{Number: 1}, Answer{Outcome: Succeeded, Context: json.RawMessage(`{}`)}, Succeed, `null`, "", "", 0},
		{"context answer", Attempt{Number: 1}, Answer{Outcome: Succeeded, Context: json.RawMessage(`{"b": 2}`)}, Succeed, `null`, `{"b": 2}`, "", 0},
		{"output too large", Attempt{Number: 1}, Answer{Outcome: Succeeded, HTTPStatus: 200, Output: big}, Fail, "", "", "the step's output is 72 bytes; the limit is 64", 0},
		{"context too large", Attempt{Number: 1}, Answer{Outcome: Succeeded, Context: json.RawMessage(`{"c": "0123456789012345678901234567890123456789"}`)}, Fail, "", "", "larger than 64 bytes", 0},
		{"context replaced within the limit", Attempt{Number: 1}, Answer{Outcome: Succeeded, Context: json.RawMessage(`{"have": "012345678901234567890123456789012345"}`)}, Succeed, `null`, `{"have": "012345678901234567890123456789012345"}`, "", 0},
		{"unstorable output", Attempt{Number: 1}, Answer{Outcome: Succeeded, HTTPStatus: 200, Output: json.RawMessage(`"\u0000"`)}, Fail, "", "", "the step's output cannot be stored", 0},
		{"unstorable logs", Attempt{Number: 1}, Answer{Outcome: Succeeded, HTTPStatus: 200, Logs: json.RawMessage(`["\u0000"]`)}, Fail, "", "", "the step's logs cannot be stored", 0},
		{"accepted", Attempt{Number: 1}, Answer{Outcome: Accepted, HTTPStatus: 202}, Park, "", "", "", 0},
		{"retried", Attempt{Number: 1}, Answer{Outcome: Retryable, HTTPStatus: 500, Error: json.RawMessage(`{"message": "down"}`)}, Retry, "", "", "down", time.Second},
		{"retried later", Attempt{Number: 2}, Answer{Outcome: Retryable, HTTPStatus: 500}, Retry, "", "", "", 2 * time.Second},
		{"retry-after honoured", Attempt{Number: 1}, Answer{Outcome: Retryable, HTTPStatus: 429, RetryAfter: 30 * time.Second}, Retry, "", "", "", 30 * time.Second},
		{"retry-after capped", Attempt{Number: 1}, Answer{Outcome: Retryable, HTTPStatus: 429, RetryAfter: time.Hour}, Retry, "", "", "", time.Minute},
		{"attempts used up", Attempt{Number: 3}, Answer{Outcome: Retryable, HTTPStatus: 500, Error: json.RawMessage(`{"message": "down"}`)}, Fail, "", "", "down", 0},
		{"abandoned attempts not counted", Attempt{Number: 3, Abandoned: 1}, Answer{Outcome: Retryable, HTTPStatus: 500}, Retry, "", "", "", 4 * time.Second},
		{"non-retryable status", Attempt{Number: 1}, Answer{Outcome: Retryable, HTTPStatus: 503, Error: json.RawMessage(`{"message": "no"}`)}, Fail, "", "", "no", 0},
		{"permanent", Attempt{Number: 1}, Answer{Outcome: Permanent, HTTPStatus: 400, Error: json.RawMessage(`{"message": "bad"}`)}, Fail, "", "", "bad", 0},
		{"unstorable error", Attempt{Number: 1}, Answer{Outcome: Permanent, HTTPStatus: 400, Error: json.RawMessage(`{"message": "\ud800"}`)}, Fail, "", "", "the step's error cannot be stored", 0},
	} {
		d := Judge(st, step, tc.at, tc.ans, lim, most)
		require.Equal(t, tc.verdict, d.Verdict, tc.name)
		if tc.output != "" {
			require.JSONEq(t, tc.output, string(d.Output), tc.name)
		}
		if tc.patch == "" {
			require.Nil(t, d.Patch, tc.name)
		} else {
			require.JSONEq(t, tc.patch, string(d.Patch), tc.name)
		}
		require.Contains(t, string(d.Error), tc.err, tc.name)
		require.Equal(t, tc.delay, d.Delay, tc.name)
	}
}

func TestJudgeCompensation(t *testing.T) {
	t.Parallel()
	p := workflow.RetryPolicy{MaxAttempts: 2, InitialInterval: workflow.Duration(time.Second), BackoffCoefficient: 2, MaxInterval: workflow.Duration(time.Minute), NonRetryableStatuses: []int{501}}
	for _, tc := range []struct {
		name    string
		n       int
		ans     Answer
		verdict Verdict
	}{
		{"done", 1, Answer{Outcome: Succeeded, HTTPStatus: 200}, Succeed},
		{"accepted counts as done", 1, Answer{Outcome: Accepted, HTTPStatus: 202}, Succeed},
		{"unstorable output is ignored", 1, Answer{Outcome: Succeeded, Output: json.RawMessage(`"\u0000"`)}, Succeed},
		{"retried", 1, Answer{Outcome: Retryable, HTTPStatus: 500}, Retry},
		{"attempts used up", 2, Answer{Outcome: Retryable, HTTPStatus: 500}, Fail},
		{"non-retryable", 1, Answer{Outcome: Retryable, HTTPStatus: 501}, Fail},
		{"permanent", 1, Answer{Outcome: Permanent, HTTPStatus: 400}, Fail},
	} {
		require.Equal(t, tc.verdict, JudgeCompensation(p, tc.n, tc.ans, most).Verdict, tc.name)
	}
	d := JudgeCompensation(p, 1, Answer{Outcome: Permanent, Error: json.RawMessage(`{"m": "\ud800"}`)}, most)
	require.Contains(t, string(d.Error), "the compensation's error cannot be stored")
}

func TestResume(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status         string
		execAt, itemAt int
		want           Resumption
	}{
		{"succeeded", 1, 1, GoOn},
		{"failed", 1, 1, Drop},
		{"cancelled", 2, 2, Drop},
		{"timed_out", 1, 2, Drop},
		{"running", 1, 1, AbandonAndInvoke},
		{"running", 1, 2, Invoke},
		{"pending", 1, 2, Invoke},
		{"waiting", 1, 1, Invoke},
	} {
		require.Equal(t, tc.want, Resume(tc.status, tc.execAt, tc.itemAt), "%+v", tc)
	}
	p := workflow.RetryPolicy{MaxAttempts: 3}
	require.Empty(t, Exhausted(p, Attempt{Number: 3}))
	require.Equal(t, "all 3 attempts were made", Exhausted(p, Attempt{Number: 4}))
	require.Empty(t, Exhausted(p, Attempt{Number: 4, Abandoned: 1}), "abandoned attempts do not count")
	require.Equal(t, "the step's workers were lost or stopped during 11 of its attempts", Exhausted(p, Attempt{Number: 12, Abandoned: 11}))
}
