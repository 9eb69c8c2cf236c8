package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/internal/signing"
)

// This file tests the step protocol end to end: what a step endpoint
// receives, how its answers are classified, retries, timeouts, redirects,
// cancellation, version pinning and run timeouts. Helpers of this file and
// callbacks_test.go are prefixed "st" to keep clear of other test files of
// the package.

// stDeploy starts an API process and one worker over a fresh database.
func stDeploy(t *testing.T) (*env, *proc) {
	t.Helper()
	e := newEnv(t)
	return e, e.startWorker()
}

// stServer starts a step server on loopback whose every request is recorded
// and then answered by handle. The request's context handed to handle ends
// when the caller hangs up or when the test is over, so that handlers that
// block never hold up the server's Close.
func stServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, c stepCall)) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	over, end := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(over, cancel)()
		handle(w, r.WithContext(ctx), c)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(end) // runs before srv.Close
	return srv, rec
}

// stAnswer is a handler that always answers status with body v.
func stAnswer(status int, v any) func(http.ResponseWriter, *http.Request, stepCall) {
	return func(w http.ResponseWriter, _ *http.Request, _ stepCall) { writeJSON(w, status, v) }
}

// stGate is a step handler that blocks until opened: entered receives
// each call as it arrives.
type stGate struct {
	entered chan stepCall
	release chan struct{}
	once    sync.Once
	answer  any
}

func newStGate(answer any) *stGate {
	return &stGate{entered: make(chan stepCall, 16), release: make(chan struct{}), answer: answer}
}

func (g *stGate) open() { g.once.Do(func() { close(g.release) }) }

func (g *stGate) handle(w http.ResponseWriter, r *http.Request, c stepCall) {
	g.entered <- c
	select {
	case <-g.release:
		writeJSON(w, http.StatusOK, g.answer)
	case <-r.Context().Done():
	}
}

// await returns the next call that entered the gate.
func (g *stGate) await(t *testing.T, timeout time.Duration) stepCall {
	t.Helper()
	select {
	case c := <-g.entered:
		return c
	case <-time.After(timeout):
		t.Fatalf("the step was not called within %s", timeout)
		return stepCall{}
	}
}

// stWaitCalls waits until rec has recorded at least n calls.
func stWaitCalls(t *testing.T, rec *recorder, n int, timeout time.Duration) []stepCall {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		calls := rec.all()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("step server got %d calls within %s; wanted %d", len(calls), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stJSON encodes v, for comparisons with require.JSONEq.
func stJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// stDef builds a workflow definition from a Go value.
func stDef(t *testing.T, v map[string]any) string { return stJSON(t, v) }

// stRunError returns a failed run's error as JSON, and fails the test when
// the run has none.
func stRunError(t *testing.T, r client.Run) string {
	t.Helper()
	require.NotNil(t, r.Error, "run %s has no error", r.Id)
	return stJSON(t, r.Error)
}

// stAttemptError decodes a step attempt's error.
func stAttemptError(t *testing.T, a client.StepAttempt) map[string]any {
	t.Helper()
	require.NotNil(t, a.Error, "attempt %d has no error", a.Attempt)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(stJSON(t, a.Error)), &m))
	return m
}

// stAttemptStatuses lists the statuses of a step execution's attempts.
func stAttemptStatuses(s client.StepExecution) []string {
	var out []string
	for _, a := range s.Attempts {
		out = append(out, string(a.Status))
	}
	return out
}

func stHTTPStatus(a client.StepAttempt) int {
	if a.HttpStatus == nil {
		return 0
	}
	return *a.HttpStatus
}

// stStepNamed finds a step execution (not a lane) by name.
func stStepNamed(t *testing.T, steps []client.StepExecution, name string) client.StepExecution {
	t.Helper()
	for _, s := range steps {
		// A lane bears its block's name, and may be listed before it.
		if s.Name == name && s.Type != "lane" {
			return s
		}
	}
	t.Fatalf("no step execution named %s among %s", name, stJSON(t, steps))
	return client.StepExecution{}
}

// stCheckRequest checks what every step request must carry: the protocol's
// headers, with a valid Standard Webhooks signature, and the body fields
// Durable fills in.
func stCheckRequest(t *testing.T, e *env, c stepCall, run uuid.UUID, wf string, version int, step string, attempt int) {
	t.Helper()
	require.Equal(t, run, c.Body.RunID, "run_id")
	require.JSONEq(t, fmt.Sprintf(`{"name": %q, "version": %d}`, wf, version), stJSON(t, c.Body.Workflow), "workflow")
	require.Equal(t, step, c.Body.Step, "step")
	require.Equal(t, attempt, c.Body.Attempt, "attempt")
	require.True(t, strings.HasPrefix(c.Body.CallbackURL, e.apiURL+"/v1/callbacks/"), "callback_url %q", c.Body.CallbackURL)
	require.Len(t, strings.TrimPrefix(c.Body.CallbackURL, e.apiURL+"/v1/callbacks/"), signing.TokenLength, "callback token")

	require.NotEmpty(t, c.WebhookID, "webhook-id")
	require.Equal(t, c.WebhookID, c.Header.Get("Idempotency-Key"), "Idempotency-Key must carry the webhook-id")
	require.True(t, strings.HasPrefix(c.Header.Get("User-Agent"), "Durable/"), "User-Agent %q", c.Header.Get("User-Agent"))
	require.Equal(t, "application/json", c.Header.Get("Content-Type"))
	secrets, err := signing.ParseSecrets(e.secret)
	require.NoError(t, err)
	require.NoError(t, secrets.Verify(c.WebhookID, c.Header.Get("webhook-timestamp"), c.Raw, c.Header.Get("webhook-signature")),
		"the request's Standard Webhooks signature must verify")
	for _, key := range []string{"run_id", "workflow", "step", "attempt", "input", "context", "callback_url", "deadline", "callback_deadline"} {
		require.Contains(t, string(c.Raw), `"`+key+`"`, "the step request body has no %s", key)
	}
}

// TestStepSequenceDataFlow runs three steps where the second's input
// mapping uses the first's output, the run's input and a context key the
// first merged in; it checks every request body, the run, its steps and its
// history.
func TestStepSequenceDataFlow(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, func(w http.ResponseWriter, _ *http.Request, c stepCall) {
		switch c.Path {
		case "/one":
			writeJSON(w, http.StatusOK, map[string]any{
				"output":  map[string]any{"x": 42, "nested": map[string]any{"s": "hello"}},
				"context": map[string]any{"k": "from-one"},
				"logs": []any{
					map[string]any{"level": "info", "message": "one did its work", "fields": map[string]any{"n": 1}},
					map[string]any{"level": "warn", "message": "careful", "time": "2026-01-02T03:04:05Z"},
				},
			})
		case "/two":
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"two": "ok"}, "context": map[string]any{"k2": true}})
		case "/three":
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"final": []any{1, "two", nil}}, "context": map[string]any{"k": "from-three"}})
		default:
			http.NotFound(w, nil)
		}
	})
	wf := e.createWorkflow(stDef(t, map[string]any{
		"name": "sequence",
		"steps": []any{
			map[string]any{"name": "one", "type": "call", "url": srv.URL + "/one", "input": map[string]any{"a": 1, "lit": "plain"},
				"headers": map[string]any{"X-Tenant": "acme", "X-Y": "${ input.y }"}},
			map[string]any{"name": "two", "type": "call", "url": srv.URL + "/two", "timeout": "20s",
				"input": map[string]any{
					"x":      "${ steps.one.output.x }",
					"s":      "${ steps.one.output.nested.s }",
					"y":      "${ input.y }",
					"k":      "${ ctx.k }",
					"static": []any{"${ input.y }", 7},
					"big":    "${ input.big }",
				}},
			map[string]any{"name": "three", "type": "call", "url": srv.URL + "/three"},
		},
	}))
	require.Equal(t, 1, wf.Version)

	input := map[string]any{"y": "why", "z": []any{1, 2}, "big": json.Number("9007199254740993")}
	id := e.startRun("sequence", input)
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)

	calls := rec.all()
	require.Len(t, calls, 3, "each step is called exactly once")
	for i, want := range []struct {
		path, step, input, ctx string
		timeout                time.Duration
	}{
		{"/one", "one", `{"a": 1, "lit": "plain"}`, `{}`, 30 * time.Second},
		{"/two", "two", `{"x": 42, "s": "hello", "y": "why", "k": "from-one", "static": ["why", 7], "big": 9007199254740993}`, `{"k": "from-one"}`, 20 * time.Second},
		{"/three", "three", `{}`, `{"k": "from-one", "k2": true}`, 30 * time.Second},
	} {
		c := calls[i]
		require.Equal(t, want.path, c.Path, "call %d", i)
		stCheckRequest(t, e, c, id, "sequence", 1, want.step, 1)
		require.JSONEq(t, want.input, string(c.Body.Input), "input of step %s", want.step)
		require.JSONEq(t, want.ctx, string(c.Body.Context), "context sent to step %s", want.step)
		// The deadline is the attempt's timeout from when it started, in
		// whole seconds.
		require.WithinDuration(t, c.At.Add(want.timeout), c.Body.Deadline, 2*time.Second, "deadline of step %s", want.step)
	}
	require.Equal(t, "acme", calls[0].Header.Get("X-Tenant"), "a definition's literal header is sent")
	require.Equal(t, "why", calls[0].Header.Get("X-Y"), "a definition's header expression is evaluated")
	// Numbers flow exactly: JSONEq compares float64s, so look at the bytes.
	require.Contains(t, string(calls[1].Body.Input), "9007199254740993", "an integer beyond 2^53 must reach the step unchanged")
	require.Contains(t, strings.ReplaceAll(string(calls[1].Body.Input), " ", ""), `"x":42`, "an integer stays an integer")
	require.NotEqual(t, calls[0].WebhookID, calls[1].WebhookID, "each step execution has its own webhook-id")
	require.NotEqual(t, calls[1].WebhookID, calls[2].WebhookID, "each step execution has its own webhook-id")

	require.JSONEq(t, `{"final": [1, "two", null]}`, stJSON(t, run.Output), "the run's output is its last step's output")
	require.JSONEq(t, `{"k": "from-three", "k2": true}`, stJSON(t, run.Context), "context answers merge key by key, later steps overwriting")
	require.JSONEq(t, stJSON(t, input), stJSON(t, run.Input))
	require.Equal(t, client.WorkflowRef{Name: "sequence", Version: 1}, run.Workflow)
	require.Nil(t, run.Error)
	require.NotNil(t, run.StartedAt)
	require.NotNil(t, run.FinishedAt)

	steps := e.steps(id)
	require.Len(t, steps, 3)
	for i, want := range []struct{ name, output string }{
		{"one", `{"x": 42, "nested": {"s": "hello"}}`},
		{"two", `{"two": "ok"}`},
		{"three", `{"final": [1, "two", null]}`},
	} {
		s := steps[i]
		require.Equal(t, want.name, s.Name)
		require.Equal(t, want.name, s.Key)
		require.Equal(t, "call", s.Type)
		require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status, "step %s", s.Name)
		require.Equal(t, 1, s.Attempt)
		require.JSONEq(t, want.output, stJSON(t, s.Output), "output of step %s", s.Name)
		require.JSONEq(t, string(calls[i].Body.Input), stJSON(t, s.Input), "stored input of step %s", s.Name)
		require.Len(t, s.Attempts, 1, "attempts of step %s", s.Name)
		a := s.Attempts[0]
		require.Equal(t, 1, a.Attempt)
		require.Equal(t, client.StepAttemptStatus("succeeded"), a.Status)
		require.Equal(t, http.StatusOK, stHTTPStatus(a))
		require.Nil(t, a.Error)
		require.NotNil(t, a.FinishedAt)
	}
	require.NotNil(t, steps[0].Attempts[0].Logs, "the logs of step one are stored")
	require.JSONEq(t, `[
		{"level": "info", "message": "one did its work", "fields": {"n": 1}},
		{"level": "warn", "message": "careful", "time": "2026-01-02T03:04:05Z"}
	]`, stJSON(t, *steps[0].Attempts[0].Logs))

	hist := e.history(id)
	var got []string
	for _, h := range hist {
		entry := h.Type
		if h.Step != nil {
			entry += ":" + *h.Step
		}
		if h.Attempt != nil {
			entry += fmt.Sprintf("#%d", *h.Attempt)
		}
		got = append(got, entry)
	}
	require.Equal(t, []string{
		"run_created", "run_started",
		"step_started:one#1", "step_succeeded:one#1",
		"step_started:two#1", "step_succeeded:two#1",
		"step_started:three#1", "step_succeeded:three#1",
		"run_succeeded",
	}, got)
	for i := 1; i < len(hist); i++ {
		require.Greater(t, hist[i].Id, hist[i-1].Id, "history ids increase")
	}
}

// TestStepRetriesWithBackoff fails a step twice with 503 before it
// succeeds: every attempt carries the same webhook-id, the attempts are
// recorded with their errors, and the backoff keeps the gaps plausible.
func TestStepRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	var n atomic.Int32
	srv, rec := stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("busy, plain text"))
		case 2:
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"code": "busy", "n": 2}})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": "third time lucky"})
		}
	})
	// Exhausted retries: always 500.
	always, alwaysRec := stServer(t, stAnswer(http.StatusInternalServerError, map[string]any{"error": map[string]any{"code": "boom"}}))

	e.createWorkflow(stDef(t, map[string]any{"name": "flaky", "steps": []any{
		map[string]any{"name": "flaky", "type": "call", "url": srv.URL + "/flaky",
			"retry": map[string]any{"max_attempts": 5, "initial_interval": "200ms", "backoff_coefficient": 2}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "broken", "steps": []any{
		map[string]any{"name": "broken", "type": "call", "url": always.URL + "/broken",
			"retry": map[string]any{"max_attempts": 3, "initial_interval": "10ms"}},
		map[string]any{"name": "never", "type": "call", "url": always.URL + "/never"},
	}}))

	start := time.Now()
	id := e.startRun("flaky", map[string]any{})
	brokenID := e.startRun("broken", map[string]any{})
	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	require.Less(t, time.Since(start), 15*time.Second)
	require.JSONEq(t, `"third time lucky"`, stJSON(t, run.Output))

	calls := rec.all()
	require.Len(t, calls, 3)
	for i, c := range calls {
		stCheckRequest(t, e, c, id, "flaky", 1, "flaky", i+1)
		require.Equal(t, calls[0].WebhookID, c.WebhookID, "attempt %d must reuse the webhook-id", i+1)
		require.Equal(t, calls[0].WebhookID, c.Header.Get("Idempotency-Key"), "attempt %d", i+1)
		require.JSONEq(t, string(calls[0].Body.Input), string(c.Body.Input))
		if i > 0 {
			gap := c.At.Sub(calls[i-1].At)
			require.Greater(t, gap, time.Duration(0), "attempt %d came before attempt %d", i+1, i)
			// Backoff with full jitter: at most 200ms then 400ms, plus
			// the worker's polling; far less than this.
			require.Less(t, gap, 5*time.Second, "gap before attempt %d", i+1)
			require.NotEqual(t, calls[i-1].Body.CallbackURL, c.Body.CallbackURL, "each attempt has its own callback token")
		}
	}

	steps := e.steps(id)
	require.Len(t, steps, 1, "one step execution with three attempts")
	s := steps[0]
	require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status)
	require.Equal(t, 3, s.Attempt)
	require.Equal(t, []string{"failed", "failed", "succeeded"}, stAttemptStatuses(s))
	for i, a := range s.Attempts {
		require.Equal(t, i+1, a.Attempt)
	}
	require.Equal(t, 503, stHTTPStatus(s.Attempts[0]))
	require.Equal(t, 503, stHTTPStatus(s.Attempts[1]))
	require.Equal(t, 200, stHTTPStatus(s.Attempts[2]))
	err1 := stAttemptError(t, s.Attempts[0])
	require.EqualValues(t, 503, err1["status"])
	require.Contains(t, err1["message"], "503")
	require.Equal(t, "busy, plain text", err1["body"], "a failure's body is kept")
	err2 := stAttemptError(t, s.Attempts[1])
	require.EqualValues(t, 503, err2["status"])
	require.JSONEq(t, `{"code": "busy", "n": 2}`, stJSON(t, err2["error"]), "a failure body's error member is kept")
	require.Nil(t, s.Attempts[2].Error)
	require.Equal(t, []string{
		"run_created", "run_started",
		"step_started", "step_retry_scheduled",
		"step_started", "step_retry_scheduled",
		"step_started", "step_succeeded",
		"run_succeeded",
	}, e.historyTypes(id))

	// Exhausted retries fail the step and the run with the step's error.
	brokenRun := e.waitRun(brokenID, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), brokenRun.Status)
	require.NotNil(t, brokenRun.Error)
	require.NotNil(t, brokenRun.Error.Step)
	require.Equal(t, "broken", *brokenRun.Error.Step)
	require.Contains(t, stRunError(t, brokenRun), "boom", "the run's error carries the step's error")
	time.Sleep(300 * time.Millisecond) // a fourth attempt would come by now
	brokenCalls := alwaysRec.all()
	require.Len(t, brokenCalls, 3, "max_attempts 3 means three calls")
	for i, c := range brokenCalls {
		require.Equal(t, "/broken", c.Path, "the next step must never be called")
		require.Equal(t, i+1, c.Body.Attempt)
		require.Equal(t, brokenCalls[0].WebhookID, c.WebhookID)
	}
	brokenSteps := e.steps(brokenID)
	require.Len(t, brokenSteps, 1)
	require.Equal(t, client.StepExecutionStatus("failed"), brokenSteps[0].Status)
	require.Equal(t, 3, brokenSteps[0].Attempt)
	require.Equal(t, []string{"failed", "failed", "failed"}, stAttemptStatuses(brokenSteps[0]))
	for _, a := range brokenSteps[0].Attempts {
		require.Equal(t, 500, stHTTPStatus(a))
		require.JSONEq(t, `{"code": "boom"}`, stJSON(t, stAttemptError(t, a)["error"]))
	}
	require.JSONEq(t, stJSON(t, brokenSteps[0].Attempts[2].Error), stJSON(t, brokenSteps[0].Error), "the step's error is its last attempt's")
	types := e.historyTypes(brokenID)
	require.Equal(t, "step_failed", types[len(types)-2])
	require.Equal(t, "run_failed", types[len(types)-1])
}

// TestStepRetryAfter honours a 429's Retry-After over a much shorter
// backoff, and caps it at the policy's maximum interval.
func TestStepRetryAfter(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	// limitedBy answers 429 with Retry-After: after to the first call, then 200.
	limitedBy := func(after string) (*httptest.Server, *recorder) {
		var n atomic.Int32
		return stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", after)
				writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{"code": "slow_down"}})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"output": 1})
		})
	}
	srv, rec := limitedBy("1")
	capped, cappedRec := limitedBy("30")
	e.createWorkflow(stDef(t, map[string]any{"name": "limited", "steps": []any{
		map[string]any{"name": "limited", "type": "call", "url": srv.URL,
			"retry": map[string]any{"max_attempts": 3, "initial_interval": "10ms", "max_interval": "5s"}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "capped", "steps": []any{
		map[string]any{"name": "capped", "type": "call", "url": capped.URL,
			"retry": map[string]any{"max_attempts": 3, "initial_interval": "10ms", "max_interval": "1s"}},
	}}))
	id := e.startRun("limited", nil)
	cappedID := e.startRun("capped", nil)

	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	calls := rec.all()
	require.Len(t, calls, 2)
	gap := calls[1].At.Sub(calls[0].At)
	require.GreaterOrEqual(t, gap, 900*time.Millisecond, "Retry-After: 1 must hold the retry back about a second")
	require.Less(t, gap, 5*time.Second)
	s := e.steps(id)[0]
	require.Equal(t, []string{"failed", "succeeded"}, stAttemptStatuses(s))
	require.Equal(t, 429, stHTTPStatus(s.Attempts[0]))

	// Retry-After: 30 is honoured only up to max_interval (1s).
	run = e.waitRun(cappedID, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	calls = cappedRec.all()
	require.Len(t, calls, 2)
	gap = calls[1].At.Sub(calls[0].At)
	require.GreaterOrEqual(t, gap, 900*time.Millisecond, "Retry-After is honoured up to max_interval")
	require.Less(t, gap, 5*time.Second, "Retry-After must be capped by max_interval")
}

// TestStepFailureClassification checks permanent 4xx failures and the
// failure body's "retry" override in both directions.
func TestStepFailureClassification(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	// A 422 is permanent: one attempt, though the policy allows five.
	unproc, unprocRec := stServer(t, stAnswer(http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"code": "bad", "field": "amount"}}))
	// A 400 that asks to be retried is retried.
	var n atomic.Int32
	retry400, retry400Rec := stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
		if n.Add(1) == 1 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": "not_yet"}, "retry": true})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": "second"})
	})
	// A 503 that asks not to be retried is not.
	noRetry, noRetryRec := stServer(t, stAnswer(http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"code": "gone_for_good"}, "retry": false}))

	policy := map[string]any{"max_attempts": 5, "initial_interval": "10ms"}
	for name, url := range map[string]string{"unprocessable": unproc.URL, "retry400": retry400.URL, "noretry503": noRetry.URL} {
		e.createWorkflow(stDef(t, map[string]any{"name": name, "steps": []any{
			map[string]any{"name": "s", "type": "call", "url": url, "retry": policy},
		}}))
	}
	unprocID := e.startRun("unprocessable", nil)
	retryID := e.startRun("retry400", nil)
	noRetryID := e.startRun("noretry503", nil)

	r := e.waitRun(unprocID, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.NotNil(t, r.Error)
	require.Contains(t, r.Error.Message, "422")
	require.JSONEq(t, `{"code": "bad", "field": "amount"}`, stJSON(t, r.Error.Details.(map[string]any)["error"]), "the run's error keeps the step's error")
	s := e.steps(unprocID)[0]
	require.Equal(t, client.StepExecutionStatus("failed"), s.Status)
	require.Equal(t, []string{"failed"}, stAttemptStatuses(s))
	require.Equal(t, 422, stHTTPStatus(s.Attempts[0]))
	require.JSONEq(t, `{"code": "bad", "field": "amount"}`, stJSON(t, stAttemptError(t, s.Attempts[0])["error"]))

	r = e.waitRun(retryID, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %v", r.Error)
	s = e.steps(retryID)[0]
	require.Equal(t, []string{"failed", "succeeded"}, stAttemptStatuses(s))
	require.Equal(t, 400, stHTTPStatus(s.Attempts[0]))
	require.JSONEq(t, `{"code": "not_yet"}`, stJSON(t, stAttemptError(t, s.Attempts[0])["error"]))

	r = e.waitRun(noRetryID, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.Contains(t, stRunError(t, r), "gone_for_good")
	s = e.steps(noRetryID)[0]
	require.Equal(t, []string{"failed"}, stAttemptStatuses(s))
	require.Equal(t, 503, stHTTPStatus(s.Attempts[0]))

	time.Sleep(300 * time.Millisecond) // a wrongful retry would come by now
	require.Len(t, unprocRec.all(), 1, "a 422 is not retried")
	require.Len(t, retry400Rec.all(), 2, "a 400 with retry: true is retried once, then succeeds")
	require.Len(t, noRetryRec.all(), 1, "a 503 with retry: false is not retried")
}

// TestStepMalformedAnswers: answers Durable cannot accept fail the step
// clearly: a status the policy lists as non-retryable, a response body over
// the cap, an output over the limit, a "context" that is not an object.
func TestStepMalformedAnswers(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	unavailable, unavailableRec := stServer(t, stAnswer(http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"code": "down"}}))
	huge, _ := stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
		writeJSON(w, http.StatusOK, map[string]any{"output": strings.Repeat("x", 1<<20+10)})
	})
	big, _ := stServer(t, stAnswer(http.StatusOK, map[string]any{"output": strings.Repeat("y", 300<<10)}))
	badCtx, _ := stServer(t, stAnswer(http.StatusOK, map[string]any{"output": 1, "context": []any{1, 2}}))

	policy := map[string]any{"max_attempts": 3, "initial_interval": "10ms"}
	e.createWorkflow(stDef(t, map[string]any{"name": "nonretryable", "steps": []any{
		map[string]any{"name": "s", "type": "call", "url": unavailable.URL,
			"retry": map[string]any{"max_attempts": 5, "initial_interval": "10ms", "non_retryable_statuses": []any{503}}},
	}}))
	for name, url := range map[string]string{"huge": huge.URL, "big": big.URL, "badctx": badCtx.URL} {
		e.createWorkflow(stDef(t, map[string]any{"name": name, "steps": []any{
			map[string]any{"name": "s", "type": "call", "url": url, "retry": policy},
			map[string]any{"name": "never", "type": "call", "url": url + "/never"},
		}}))
	}
	ids := map[string]uuid.UUID{}
	for _, name := range []string{"nonretryable", "huge", "big", "badctx"} {
		ids[name] = e.startRun(name, nil)
	}
	for name, want := range map[string]string{
		"nonretryable": "503",
		"huge":         "exceeds",
		"big":          "limit",
		"badctx":       "context",
	} {
		r := e.waitRun(ids[name], 15*time.Second)
		require.Equal(t, client.RunStatus("failed"), r.Status, "run of %s", name)
		require.NotNil(t, r.Error, name)
		require.Contains(t, r.Error.Message, want, "the error of %s says what went wrong", name)
		steps := e.steps(ids[name])
		require.Len(t, steps, 1, "%s: the next step never starts", name)
		require.Equal(t, client.StepExecutionStatus("failed"), steps[0].Status, name)
		require.Nil(t, steps[0].Output, "%s: a refused answer's output is not stored", name)
		require.JSONEq(t, `{}`, stJSON(t, r.Context), "%s: a refused answer's context is not merged", name)
	}
	time.Sleep(200 * time.Millisecond)
	require.Len(t, unavailableRec.all(), 1, "a status in non_retryable_statuses is not retried")
}

// TestStepRedirectRefused: a 3xx answer fails the step; the redirect is
// never followed.
func TestStepRedirectRefused(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	target, targetRec := stServer(t, stAnswer(http.StatusOK, map[string]any{"output": "should not be reached"}))
	redirector, redirRec := stServer(t, func(w http.ResponseWriter, r *http.Request, _ stepCall) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "redirect", "steps": []any{
		map[string]any{"name": "hop", "type": "call", "url": redirector.URL + "/hop", "retry": map[string]any{"max_attempts": 1}},
	}}))
	id := e.startRun("redirect", nil)
	r := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.Contains(t, stRunError(t, r), "redirect")
	require.Len(t, redirRec.all(), 1)
	s := e.steps(id)[0]
	require.Equal(t, client.StepExecutionStatus("failed"), s.Status)
	require.Equal(t, 302, stHTTPStatus(s.Attempts[0]))
	require.Contains(t, stAttemptError(t, s.Attempts[0])["message"], "redirect")
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, targetRec.all(), "the redirect target must see no request")
}

// TestStepTimeout: an endpoint slower than the step's timeout fails each
// attempt with a timeout, and the run fails when attempts run out.
func TestStepTimeout(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, func(w http.ResponseWriter, r *http.Request, _ stepCall) {
		select {
		case <-time.After(5 * time.Second):
			writeJSON(w, http.StatusOK, map[string]any{"output": "too late"})
		case <-r.Context().Done():
		}
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "slow", "steps": []any{
		map[string]any{"name": "slow", "type": "call", "url": srv.URL, "timeout": "300ms",
			"retry": map[string]any{"max_attempts": 2, "initial_interval": "10ms"}},
	}}))
	start := time.Now()
	id := e.startRun("slow", nil)
	r := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.Less(t, time.Since(start), 4*time.Second, "two 300ms attempts must not wait for the endpoint's answer")
	require.Contains(t, stRunError(t, r), "300ms")
	calls := rec.all()
	require.Len(t, calls, 2)
	require.Equal(t, calls[0].WebhookID, calls[1].WebhookID)
	// The deadline a step sees is its attempt's timeout, in whole seconds.
	require.WithinDuration(t, calls[0].At, calls[0].Body.Deadline, 1500*time.Millisecond)
	s := e.steps(id)[0]
	require.Equal(t, client.StepExecutionStatus("failed"), s.Status)
	require.Equal(t, []string{"failed", "failed"}, stAttemptStatuses(s))
	for _, a := range s.Attempts {
		msg, _ := stAttemptError(t, a)["message"].(string)
		require.Contains(t, msg, "did not answer within 300ms", "attempt %d", a.Attempt)
		require.Equal(t, 0, stHTTPStatus(a), "no answer, no HTTP status")
	}
}

// TestStepBadInputMapping: an input mapping that cannot be evaluated fails
// the step with a clear error, and the endpoint is never called.
func TestStepBadInputMapping(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, stAnswer(http.StatusOK, map[string]any{"output": 1}))
	e.createWorkflow(stDef(t, map[string]any{"name": "badmap", "steps": []any{
		map[string]any{"name": "first", "type": "call", "url": srv.URL + "/first"},
		map[string]any{"name": "mapped", "type": "call", "url": srv.URL + "/mapped",
			"input": map[string]any{"v": "${ input.missing.field }"}},
	}}))
	id := e.startRun("badmap", map[string]any{"present": 1})
	r := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.NotNil(t, r.Error)
	require.NotNil(t, r.Error.Step)
	require.Equal(t, "mapped", *r.Error.Step)
	require.Contains(t, r.Error.Message, "input")
	require.Contains(t, r.Error.Message, "missing", "the error names what is missing")
	calls := rec.all()
	require.Len(t, calls, 1)
	require.Equal(t, "/first", calls[0].Path, "the step whose input fails is never called")
	steps := e.steps(id)
	require.Len(t, steps, 2)
	m := stStepNamed(t, steps, "mapped")
	require.Equal(t, client.StepExecutionStatus("failed"), m.Status)
	require.Contains(t, stJSON(t, m.Error), "missing")
	require.Equal(t, "run_failed", e.historyTypes(id)[len(e.historyTypes(id))-1])
}

// TestStepCancelMidRun cancels a run while its step's request is in
// flight: the late answer is ignored and the next step never runs.
func TestStepCancelMidRun(t *testing.T) {
	t.Parallel()
	e, worker := stDeploy(t)
	gate := newStGate(map[string]any{"output": "late", "context": map[string]any{"late": true}})
	srv, rec := stServer(t, func(w http.ResponseWriter, r *http.Request, c stepCall) {
		if c.Path == "/block" {
			gate.handle(w, r, c)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": "next"})
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "cancellable", "steps": []any{
		map[string]any{"name": "block", "type": "call", "url": srv.URL + "/block", "timeout": "20s"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next"},
	}}))
	id := e.startRun("cancellable", nil)
	gate.await(t, 15*time.Second)

	reason := "changed my mind"
	res, err := e.client.CancelRunWithResponse(context.Background(), id, client.CancelRunRequest{Reason: &reason})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, client.RunStatus("cancelled"), res.JSON200.Status)

	gate.open()
	// The worker gets the late answer and must drop it, saying why.
	require.Equal(t, "the run is cancelled; the result is ignored", worker.waitLog(t, "step result ignored", "reason"))
	time.Sleep(300 * time.Millisecond)

	r := e.run(id)
	require.Equal(t, client.RunStatus("cancelled"), r.Status)
	require.Nil(t, r.Output)
	require.JSONEq(t, `{}`, stJSON(t, r.Context), "the late answer's context is not merged")
	require.NotNil(t, r.Error)
	require.Contains(t, r.Error.Message, reason)
	calls := rec.all()
	require.Len(t, calls, 1)
	require.Equal(t, "/block", calls[0].Path, "the next step must never be called")
	steps := e.steps(id)
	require.Len(t, steps, 1)
	require.Equal(t, client.StepExecutionStatus("cancelled"), steps[0].Status)
	require.Nil(t, steps[0].Output, "the late result is not recorded")
	require.Equal(t, []string{"cancelled"}, stAttemptStatuses(steps[0]))
	types := e.historyTypes(id)
	require.Equal(t, "run_cancelled", types[len(types)-1])
	require.NotContains(t, types, "step_succeeded")

	// Cancelling again is a conflict.
	res, err = e.client.CancelRunWithResponse(context.Background(), id, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, res.StatusCode(), string(res.Body))
}

// TestStepVersionPinning: a run keeps the version it started on while a
// new version is posted; new runs take the new version.
func TestStepVersionPinning(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	gate := newStGate(map[string]any{"output": map[string]any{"from": "v1a"}})
	srv, rec := stServer(t, func(w http.ResponseWriter, r *http.Request, c stepCall) {
		if c.Path == "/v1a" {
			gate.handle(w, r, c)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"from": strings.TrimPrefix(c.Path, "/")}})
	})
	def := func(a, b string) string {
		return stDef(t, map[string]any{"name": "pinned", "steps": []any{
			map[string]any{"name": "a", "type": "call", "url": srv.URL + a, "timeout": "20s"},
			map[string]any{"name": "b", "type": "call", "url": srv.URL + b},
		}})
	}
	require.Equal(t, 1, e.createWorkflow(def("/v1a", "/v1b")).Version)
	first := e.startRun("pinned", nil)
	gate.await(t, 15*time.Second)
	require.Equal(t, 2, e.createWorkflow(def("/v2a", "/v2b")).Version)
	gate.open()

	r := e.waitRun(first, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %v", r.Error)
	require.Equal(t, 1, r.Workflow.Version)
	require.JSONEq(t, `{"from": "v1b"}`, stJSON(t, r.Output))

	second := e.startRun("pinned", nil)
	r2 := e.waitRun(second, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r2.Status, "run error: %v", r2.Error)
	require.Equal(t, 2, r2.Workflow.Version)
	require.JSONEq(t, `{"from": "v2b"}`, stJSON(t, r2.Output))

	var paths []string
	for _, c := range rec.all() {
		paths = append(paths, c.Path)
		switch c.Body.RunID {
		case first:
			require.Equal(t, float64(1), c.Body.Workflow["version"], c.Path)
		case second:
			require.Equal(t, float64(2), c.Body.Workflow["version"], c.Path)
		default:
			t.Fatalf("a call of an unknown run: %s", c.Raw)
		}
	}
	require.Equal(t, []string{"/v1a", "/v1b", "/v2a", "/v2b"}, paths)
}

// TestStepRunTimeout: a run whose workflow timeout passes while a step
// blocks ends timed_out, and the step's late answer changes nothing.
func TestStepRunTimeout(t *testing.T) {
	t.Parallel()
	e, worker := stDeploy(t)
	gate := newStGate(map[string]any{"output": "late"})
	srv, rec := stServer(t, func(w http.ResponseWriter, r *http.Request, c stepCall) {
		if c.Path == "/block" {
			gate.handle(w, r, c)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": "next"})
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "bounded", "timeout": "1s", "steps": []any{
		map[string]any{"name": "block", "type": "call", "url": srv.URL + "/block", "timeout": "20s"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next"},
	}}))
	start := time.Now()
	id := e.startRun("bounded", nil)
	gate.await(t, 15*time.Second)
	r := e.waitRun(id, 10*time.Second)
	elapsed := time.Since(start)
	require.Equal(t, client.RunStatus("timed_out"), r.Status)
	require.GreaterOrEqual(t, elapsed, 900*time.Millisecond)
	require.Less(t, elapsed, 8*time.Second)
	require.NotNil(t, r.Deadline)
	require.NotNil(t, r.Error)
	require.NotNil(t, r.Error.Code)
	require.Equal(t, "run_timed_out", *r.Error.Code)

	gate.open()
	worker.waitLog(t, "step result ignored", "")
	time.Sleep(200 * time.Millisecond)
	r = e.run(id)
	require.Equal(t, client.RunStatus("timed_out"), r.Status)
	require.Nil(t, r.Output)
	require.Len(t, rec.all(), 1, "the next step must never be called")
	steps := e.steps(id)
	require.Len(t, steps, 1)
	require.Equal(t, client.StepExecutionStatus("timed_out"), steps[0].Status)
	require.Nil(t, steps[0].Output)
	types := e.historyTypes(id)
	require.Equal(t, "run_timed_out", types[len(types)-1])
	require.NotContains(t, types, "step_succeeded")
}

// TestStepFailureMessage checks that a failed run's error says what the
// endpoint said — its "error" member, or its text — in GET /v1/runs/{id}
// and in the run list, and still keeps the endpoint's answer in details.
func TestStepFailureMessage(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	jsonErr, _ := stServer(t, stAnswer(http.StatusInternalServerError, map[string]any{"error": "upstream down"}))
	text, _ := stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "maintenance window:\n  back at 10:00\n")
	})
	once := map[string]any{"max_attempts": 1}
	for name, url := range map[string]string{"fails-json": jsonErr.URL, "fails-text": text.URL} {
		e.createWorkflow(stDef(t, map[string]any{"name": name, "steps": []any{
			map[string]any{"name": "charge", "type": "call", "url": url, "retry": once},
		}}))
	}
	want := map[uuid.UUID]string{
		e.startRun("fails-json", nil): "step charge failed: the step answered 500 Internal Server Error: upstream down",
		e.startRun("fails-text", nil): "step charge failed: the step answered 503 Service Unavailable: maintenance window: back at 10:00",
	}
	for id, message := range want {
		r := e.waitRun(id, 15*time.Second)
		require.Equal(t, client.RunStatus("failed"), r.Status)
		require.NotNil(t, r.Error)
		require.Equal(t, message, r.Error.Message)
		require.Equal(t, "charge", *r.Error.Step)
		details := r.Error.Details.(map[string]any)
		require.Equal(t, strings.TrimPrefix(message, "step charge failed: "), details["message"], "the step's error says it too")
		if _, ok := details["error"]; ok {
			require.Equal(t, "upstream down", details["error"], "details keep the endpoint's error")
		} else {
			require.Equal(t, "maintenance window:\n  back at 10:00\n", details["body"], "details keep the endpoint's body")
		}
	}

	failed := []client.RunStatus{"failed"}
	res, err := e.client.ListRunsWithResponse(context.Background(), &client.ListRunsParams{Status: &failed})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Len(t, res.JSON200.Items, 2)
	for _, item := range res.JSON200.Items {
		require.NotNil(t, item.Error, "a failed run's list item carries its error")
		require.Equal(t, want[item.Id], item.Error.Message)
		require.Equal(t, "charge", *item.Error.Step)
		require.Equal(t, "step_failed", *item.Error.Code)
	}
}

// TestStepDurations checks the two durations of a step attempt that
// docs/api.md tells apart: the history's duration_ms, the HTTP exchange
// alone, and the attempt's, from its start to its end as recorded, which
// holds the exchange.
func TestStepDurations(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	const work = 150 * time.Millisecond
	srv, _ := stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
		time.Sleep(work)
		writeJSON(w, http.StatusOK, map[string]any{"output": "done"})
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "slow", "steps": []any{
		map[string]any{"name": "a", "type": "call", "url": srv.URL},
		map[string]any{"name": "b", "type": "call", "url": srv.URL},
	}}))
	id := e.startRun("slow", nil)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(id, 15*time.Second).Status)

	exchange := map[string]int{}
	for _, h := range e.history(id) {
		if h.Type == "step_succeeded" {
			ms, ok := h.Data.(map[string]any)["duration_ms"].(float64)
			require.True(t, ok, "step_succeeded of %v has a duration_ms: %v", h.Step, h.Data)
			exchange[*h.Step] = int(ms)
		}
	}
	for _, s := range e.steps(id) {
		require.Len(t, s.Attempts, 1)
		a := s.Attempts[0]
		require.NotNil(t, a.DurationMs)
		require.NotNil(t, a.FinishedAt)
		require.Equal(t, a.FinishedAt.Sub(a.StartedAt).Milliseconds(), int64(*a.DurationMs), "from started_at to finished_at")
		require.GreaterOrEqual(t, exchange[s.Key], int(work.Milliseconds()), "the exchange holds the endpoint's work")
		require.GreaterOrEqual(t, *a.DurationMs, exchange[s.Key], "the attempt holds the exchange")
	}
}
