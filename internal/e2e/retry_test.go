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
)

// Tests in this file drive retries, reruns and bulk operations end to end.
// Helpers are prefixed "rt".

// rtSteps is a step server whose steps fail (400, not retried) while they
// are broken, and that counts the calls of each step (by the step's key)
// and keeps their webhook-ids.
type rtSteps struct {
	url    string
	mu     sync.Mutex
	broken map[string]bool
	calls  map[string][]stepCall
	// fail decides, when set, whether a call fails, beside broken.
	fail func(c stepCall) bool
}

func rtServer(t *testing.T) *rtSteps {
	s := &rtSteps{broken: map[string]bool{}, calls: map[string][]stepCall{}}
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		s.mu.Lock()
		s.calls[c.Body.Step] = append(s.calls[c.Body.Step], c)
		broken := s.broken[strings.TrimPrefix(c.Path, "/")] || (s.fail != nil && s.fail(c))
		s.mu.Unlock()
		if broken {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the endpoint is broken"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step}})
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *rtSteps) setBroken(path string, broken bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken[path] = broken
}

func (s *rtSteps) count(step string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls[step])
}

func (s *rtSteps) webhookIDs(step string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls[step] {
		out = append(out, c.WebhookID)
	}
	return out
}

// rtRetry posts a retry and returns its status and body.
func rtRetry(t *testing.T, e *env, id uuid.UUID, body string) (int, string) {
	t.Helper()
	res, err := e.client.RetryRunWithBodyWithResponse(context.Background(), id, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	return res.StatusCode(), string(res.Body)
}

// rtRetried returns the data of a run's run_retried events.
func rtRetried(t *testing.T, e *env, id uuid.UUID) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, h := range e.history(id) {
		if h.Type == "run_retried" {
			m, ok := h.Data.(map[string]any)
			require.True(t, ok, "run_retried data: %v", h.Data)
			out = append(out, m)
		}
	}
	return out
}

func rtThreeSteps(name, url string) string {
	return fmt.Sprintf(`{"name": %q, "steps": [
	  {"name": "a", "type": "call", "url": "%[2]s/a"},
	  {"name": "b", "type": "call", "url": "%[2]s/b", "input": {"fixed": "${ has(input.fixed) ? input.fixed : false }"}},
	  {"name": "c", "type": "call", "url": "%[2]s/c"}]}`, name, url)
}

// TestRetryAfterFixedEndpoint: a run whose second step's endpoint was
// broken is retried once it is fixed; its first step is not called again,
// its second step's new attempt has a new webhook-id, the run succeeds and
// its history says who retried and why. Retrying it again is refused, and
// changes nothing.
func TestRetryAfterFixedEndpoint(t *testing.T) {
	t.Parallel()
	steps := rtServer(t)
	e := newEnv(t, leanPool)
	e.startWorker()
	e.createWorkflow(rtThreeSteps("fixed", steps.url))
	steps.setBroken("b", true)
	id := e.startRun("fixed", map[string]any{"n": 1})
	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Equal(t, 1, steps.count("a"))
	require.Equal(t, 1, steps.count("b"))

	steps.setBroken("b", false)
	code, body := rtRetry(t, e, id, `{"reason": "the endpoint of b was fixed"}`)
	require.Equal(t, http.StatusOK, code, body)
	run = e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	require.Equal(t, 2, run.Attempt)
	require.Equal(t, 1, steps.count("a"), "a succeeded: it is not called again")
	require.Equal(t, 2, steps.count("b"))
	require.Equal(t, 1, steps.count("c"))
	ids := steps.webhookIDs("b")
	require.NotEqual(t, ids[0], ids[1], "the retried step's attempt is a new execution")
	retried := rtRetried(t, e, id)
	require.Len(t, retried, 1)
	require.Equal(t, "anonymous", retried[0]["by"])
	require.Equal(t, "the endpoint of b was fixed", retried[0]["reason"])
	require.Equal(t, "failed", retried[0]["previous_status"])

	// A succeeded run is not retryable: 409, nothing changes.
	before, events := e.run(id), len(e.history(id))
	code, body = rtRetry(t, e, id, `{}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "succeeded and cannot be retried")
	after := e.run(id)
	require.Equal(t, before.UpdatedAt, after.UpdatedAt)
	require.Equal(t, before.Attempt, after.Attempt)
	require.Len(t, e.history(id), events)

	code, body = rtRetry(t, e, uuid.New(), `{}`)
	require.Equal(t, http.StatusNotFound, code, body)
}

// TestRetryWithEdits: a run that failed for its input and context is
// retried with both edited (merge patches); the failed step sees the
// edits. A from_step that does not exist and a context patch that leaves
// no object are refused, and change nothing.
func TestRetryWithEdits(t *testing.T) {
	t.Parallel()
	steps := rtServer(t)
	steps.fail = func(c stepCall) bool {
		if c.Body.Step != "b" {
			return false
		}
		var in struct {
			Fixed bool `json:"fixed"`
		}
		_ = json.Unmarshal(c.Body.Input, &in)
		var ctx map[string]any
		_ = json.Unmarshal(c.Body.Context, &ctx)
		return !in.Fixed || ctx["token"] != "t0k3n"
	}
	e := newEnv(t, leanPool)
	e.startWorker()
	e.createWorkflow(rtThreeSteps("edits", steps.url))
	id := e.startRun("edits", map[string]any{"fixed": false, "keep": "me", "drop": 1})
	require.Equal(t, client.RunStatus("failed"), e.waitRun(id, 15*time.Second).Status)

	events := len(e.history(id))
	code, body := rtRetry(t, e, id, `{"from_step": "nope"}`)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "/from_step")
	code, body = rtRetry(t, e, id, `{"context": [1, 2]}`)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "/context")
	require.Equal(t, client.RunStatus("failed"), e.run(id).Status)
	require.Len(t, e.history(id), events, "a refused retry writes nothing")

	code, body = rtRetry(t, e, id, `{"input": {"fixed": true, "drop": null}, "context": {"token": "t0k3n"}, "reason": "edited"}`)
	require.Equal(t, http.StatusOK, code, body)
	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	require.Equal(t, map[string]any{"fixed": true, "keep": "me"}, run.Input)
	require.Equal(t, "t0k3n", run.Context["token"])
	require.Equal(t, 1, steps.count("a"))
	require.Equal(t, 2, steps.count("b"))
	retried := rtRetried(t, e, id)
	require.Len(t, retried, 1)
	require.Equal(t, map[string]any{"fixed": true, "drop": nil}, retried[0]["input"])
	require.Equal(t, map[string]any{"token": "t0k3n"}, retried[0]["context"])
}

// TestRetryInsideForeach: a concurrent foreach whose third item failed
// fails its run; the retry calls only that item again.
func TestRetryInsideForeach(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	calls := map[string]int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := (&recorder{}).readStep(t, r)
		var in struct {
			Item int `json:"item"`
		}
		_ = json.Unmarshal(c.Body.Input, &in)
		key := c.Path
		if c.Path == "/label" {
			key = fmt.Sprintf("label %d", in.Item)
		}
		mu.Lock()
		calls[key]++
		mu.Unlock()
		if in.Item == 2 {
			// The others are done before the item fails the block.
			time.Sleep(300 * time.Millisecond)
			if broken.Load() {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "item 2 is broken"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": in.Item * 10})
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, leanPool)
	e.startWorker()
	e.createWorkflow(fmt.Sprintf(`{"name": "items", "steps": [
	  {"name": "ship", "type": "foreach", "items": "${ [0, 1, 2, 3] }", "mode": "concurrent", "concurrency": 4,
	   "steps": [{"name": "label", "type": "call", "url": "%s/label", "input": {"item": "${ item }"}}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after"}]}`, srv.URL))
	id := e.startRun("items", nil)
	require.Equal(t, client.RunStatus("failed"), e.waitRun(id, 15*time.Second).Status)
	count := func(step string) int { mu.Lock(); defer mu.Unlock(); return calls[step] }
	require.Equal(t, 1, count("label 0"))
	require.Equal(t, 1, count("label 2"))

	broken.Store(false)
	code, body := rtRetry(t, e, id, `{}`)
	require.Equal(t, http.StatusOK, code, body)
	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	for _, i := range []int{0, 1, 3} {
		require.Equal(t, 1, count(fmt.Sprintf("label %d", i)), "item %d succeeded: it is not called again", i)
	}
	require.Equal(t, 2, count("label 2"))
	require.Equal(t, 1, count("/after"))
	ship := stStepNamed(t, e.steps(id), "ship")
	require.Equal(t, map[string]any{"results": []any{0.0, 10.0, 20.0, 30.0}, "errors": []any{}}, ship.Output)
}

// TestRerunFromStep: a run whose last step failed is rerun from its first
// step: every step is called again, each with a new webhook-id.
func TestRerunFromStep(t *testing.T) {
	t.Parallel()
	steps := rtServer(t)
	e := newEnv(t, leanPool)
	e.startWorker()
	e.createWorkflow(rtThreeSteps("rerun", steps.url))
	steps.setBroken("c", true)
	id := e.startRun("rerun", nil)
	require.Equal(t, client.RunStatus("failed"), e.waitRun(id, 15*time.Second).Status)
	code, body := rtRetry(t, e, id, `{"from_step": "c"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, client.RunStatus("failed"), e.waitRun(id, 15*time.Second, "failed").Status)
	require.Equal(t, 1, steps.count("a"))
	require.Equal(t, 2, steps.count("c"))

	steps.setBroken("c", false)
	code, body = rtRetry(t, e, id, `{"from_step": "a", "reason": "rerun everything"}`)
	require.Equal(t, http.StatusOK, code, body)
	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	require.Equal(t, 3, run.Attempt)
	for step, n := range map[string]int{"a": 2, "b": 2, "c": 3} {
		require.Equal(t, n, steps.count(step), step)
		ids := steps.webhookIDs(step)
		seen := map[string]bool{}
		for _, id := range ids {
			require.False(t, seen[id], "webhook-id %s of %s sent twice", id, step)
			seen[id] = true
		}
	}
	retried := rtRetried(t, e, id)
	require.Len(t, retried, 2)
	require.Equal(t, "a", retried[1]["from_step"])
}

// rtBulk posts a bulk request and returns its status and body.
func rtBulk(t *testing.T, e *env, kind, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.apiURL+"/v1/runs/bulk/"+kind, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b), res.Header
}

// rtOperation creates a bulk operation and returns its id.
func rtOperation(t *testing.T, e *env, kind, body string) uuid.UUID {
	t.Helper()
	code, resp, header := rtBulk(t, e, kind, body)
	require.Equal(t, http.StatusAccepted, code, resp)
	var op client.Operation
	require.NoError(t, json.Unmarshal([]byte(resp), &op))
	require.Equal(t, "/v1/operations/"+op.Id.String(), header.Get("Location"))
	return op.Id
}

func rtGetOperation(t *testing.T, e *env, id uuid.UUID) client.Operation {
	t.Helper()
	res, err := e.client.GetOperationWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

func rtWaitOperation(t *testing.T, e *env, id uuid.UUID, timeout time.Duration, done func(client.Operation) bool) client.Operation {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		op := rtGetOperation(t, e, id)
		if done(op) {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s: %+v after %s", id, op, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rtStartMany starts n runs of a workflow, a few at a time.
func rtStartMany(t *testing.T, e *env, workflow string, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := e.client.StartRunWithResponse(context.Background(), nil, client.StartRunRequest{Workflow: workflow})
			if err != nil || res.StatusCode() != http.StatusCreated {
				t.Errorf("start run %d: %v %s", i, err, res.Body)
				return
			}
			ids[i] = res.JSON201.Id
		}()
	}
	wg.Wait()
	require.False(t, t.Failed())
	return ids
}

// TestBulkCancelSurvivesWorkerKill: a bulk cancel of 2,000 waiting runs,
// whose worker is SIGKILLed in the middle, is finished by another worker:
// every matched run is cancelled exactly once (one run_cancelled event
// each), and the runs of another workflow, and those started after the
// operation, are not touched.
func TestBulkCancelSurvivesWorkerKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, leanPool, "DURABLE_BULK_RATE=150")
	db := assertDB(t, e)
	e.createWorkflow(`{"name": "sleepy", "steps": [{"name": "nap", "type": "sleep", "duration": "1h"}]}`)
	e.createWorkflow(`{"name": "other", "steps": [{"name": "nap", "type": "sleep", "duration": "1h"}]}`)
	matched := rtStartMany(t, e, "sleepy", 2000)
	others := rtStartMany(t, e, "other", 100)

	code, body, _ := rtBulk(t, e, "cancel", `{"filter": {"workflow": "sleepy"}, "dry_run": true}`)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"dry_run": true, "matched": 2000}`, body)

	first := e.startWorker()
	opID := rtOperation(t, e, "cancel", `{"filter": {"workflow": "sleepy"}, "reason": "bad deploy"}`)
	late := rtStartMany(t, e, "sleepy", 20)
	rtWaitOperation(t, e, opID, 60*time.Second, func(op client.Operation) bool { return op.Done >= 300 })
	first.kill()
	op := rtGetOperation(t, e, opID)
	require.Equal(t, client.OperationState("running"), op.State)
	require.Less(t, op.Done, int64(2000), "the operation was stopped in the middle")
	e.startWorker()
	op = rtWaitOperation(t, e, opID, 120*time.Second, func(op client.Operation) bool { return op.State == "succeeded" })
	require.Equal(t, int64(2000), op.Matched)
	require.Equal(t, int64(2000), op.Done+op.Skipped)
	require.Zero(t, op.Failed, "%+v", op.Failures)
	require.NotNil(t, op.FinishedAt)

	require.Equal(t, 2000, dbCount(t, db, `SELECT count(*) FROM runs WHERE id = ANY($1) AND status = 'cancelled'`, matched))
	require.Zero(t, dbCount(t, db, `SELECT count(*) FROM (
	    SELECT run_id FROM history_events WHERE run_id = ANY($1) AND type = 'run_cancelled'
	    GROUP BY run_id HAVING count(*) <> 1) x`, matched), "a run cancelled twice, or not at all")
	require.Equal(t, 2000, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'run_cancelled'`))
	require.Zero(t, dbCount(t, db, `SELECT count(*) FROM runs WHERE id = ANY($1) AND status = 'cancelled'`, others))
	require.Zero(t, dbCount(t, db, `SELECT count(*) FROM runs WHERE id = ANY($1) AND status = 'cancelled'`, late),
		"runs created after the operation are not its")
	var runErr client.RunError
	require.NotNil(t, e.run(matched[0]).Error)
	runErr = *e.run(matched[0]).Error
	require.Contains(t, runErr.Message, "bad deploy")
}

// TestBulkRetry: twenty failed runs are retried in bulk once their
// endpoint is fixed; a dry run counts them, an empty filter is refused,
// and runs that are not retryable are skipped.
func TestBulkRetry(t *testing.T) {
	t.Parallel()
	steps := rtServer(t)
	e := newEnv(t, leanPool)
	e.startWorker()
	e.createWorkflow(rtThreeSteps("many", steps.url))
	steps.setBroken("b", true)
	failed := rtStartMany(t, e, "many", 20)
	for _, id := range failed {
		require.Equal(t, client.RunStatus("failed"), e.waitRun(id, 30*time.Second).Status)
	}
	steps.setBroken("b", false)
	ok := e.startRun("many", nil)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(ok, 15*time.Second).Status)

	for _, body := range []string{`{"filter": {}}`, `{"filter": {}, "dry_run": true}`} {
		code, resp, _ := rtBulk(t, e, "retry", body)
		require.Equal(t, http.StatusUnprocessableEntity, code, resp)
		require.Contains(t, resp, "/filter")
	}
	code, resp, _ := rtBulk(t, e, "retry", `{"filter": {"workflow": "many", "status": ["failed"]}, "dry_run": true}`)
	require.Equal(t, http.StatusOK, code, resp)
	require.JSONEq(t, `{"dry_run": true, "matched": 20}`, resp)

	opID := rtOperation(t, e, "retry", `{"filter": {"workflow": "many"}, "reason": "b fixed"}`)
	op := rtWaitOperation(t, e, opID, 60*time.Second, func(op client.Operation) bool { return op.State == "succeeded" })
	require.Equal(t, int64(21), op.Matched)
	require.Equal(t, int64(20), op.Done)
	require.Equal(t, int64(1), op.Skipped, "the run that succeeded is not retryable")
	for _, id := range failed {
		run := e.waitRun(id, 30*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), run.Status)
		retried := rtRetried(t, e, id)
		require.Len(t, retried, 1)
		require.Equal(t, "b fixed", retried[0]["reason"])
	}
	require.Equal(t, 21, steps.count("a"), "no first step called again")
	require.Equal(t, 1, e.run(ok).Attempt)

	res, err := e.client.ListOperationsWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Len(t, res.JSON200.Items, 1)
	require.Equal(t, opID, res.JSON200.Items[0].Id)
}

// TestOperationCancel: an operation cancelled before a worker took it
// processes no run; cancelling it again is a conflict.
func TestOperationCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, leanPool)
	e.createWorkflow(`{"name": "sleepy", "steps": [{"name": "nap", "type": "sleep", "duration": "1h"}]}`)
	ids := rtStartMany(t, e, "sleepy", 5)
	opID := rtOperation(t, e, "cancel", `{"filter": {"workflow": "sleepy"}}`)
	res, err := e.client.CancelOperationWithResponse(context.Background(), opID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, client.OperationState("cancelled"), res.JSON200.State)
	res, err = e.client.CancelOperationWithResponse(context.Background(), opID)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, res.StatusCode(), string(res.Body))
	res, err = e.client.CancelOperationWithResponse(context.Background(), uuid.New())
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, res.StatusCode(), string(res.Body))

	e.startWorker()
	for _, id := range ids {
		e.waitRun(id, 15*time.Second, "waiting")
	}
	time.Sleep(1500 * time.Millisecond) // the worker looks for operations every second
	op := rtGetOperation(t, e, opID)
	require.Equal(t, client.OperationState("cancelled"), op.State)
	require.Zero(t, op.Done)
	for _, id := range ids {
		require.Equal(t, client.RunStatus("waiting"), e.run(id).Status)
	}
}
