package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// TestCompensation runs sagas: when a run fails, the compensations of the
// steps that succeeded run in reverse order of completion, each with the
// original step's input and output, retried like steps; the run ends
// compensated, or compensation_failed when one fails for good.
func TestCompensation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	var flaky atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/fail", "/bad-refund":
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"code": "nope"}})
		case "/flaky-refund":
			if flaky.Add(1) == 1 {
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"id": c.Path + "-1"}})
		}
	}))
	t.Cleanup(srv.Close)
	saga := func(name, refund string) {
		e.createWorkflow(fmt.Sprintf(`{"name": %q, "steps": [
		  {"name": "reserve", "type": "call", "url": "%[2]s/reserve", "input": {"sku": "${ input.sku }"},
		   "compensate": {"url": "%[2]s/release"}},
		  {"name": "charge", "type": "call", "url": "%[2]s/charge", "input": {"amount": 5},
		   "compensate": {"url": "%[2]s%[3]s", "input": {"charge": "${ steps.charge.output.id }"},
		                  "retry": {"max_attempts": 3, "initial_interval": "10ms"}}},
		  {"name": "note", "type": "call", "url": "%[2]s/note"},
		  {"name": "ship", "type": "call", "url": "%[2]s/fail", "retry": {"max_attempts": 1}}]}`, name, srv.URL, refund))
	}
	saga("saga", "/refund")
	saga("saga-flaky", "/flaky-refund")
	saga("saga-broken", "/bad-refund")
	calls := func(runID string, paths ...string) []stepCall {
		var out []stepCall
		for _, c := range rec.all() {
			for _, p := range paths {
				if c.Path == p && c.Body.RunID.String() == runID {
					out = append(out, c)
				}
			}
		}
		return out
	}
	statuses := func(id uuid.UUID) map[string]string {
		m := map[string]string{}
		for _, s := range e.steps(id) {
			m[s.Name] = string(s.Status)
		}
		return m
	}

	// Compensations run in reverse order, with the step's input and output.
	id := e.startRun("saga", map[string]any{"sku": "A-1"})
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("compensated"), run.Status)
	require.Contains(t, mustJSON(t, run.Error), "step ship failed", "the run keeps the failure that made it compensate")
	comps := calls(id.String(), "/refund", "/release")
	require.Len(t, comps, 2)
	require.Equal(t, "/refund", comps[0].Path, "the step that finished last is compensated first")
	require.Equal(t, "/release", comps[1].Path)
	var refund, release map[string]any
	require.NoError(t, json.Unmarshal(comps[0].Raw, &refund))
	require.NoError(t, json.Unmarshal(comps[1].Raw, &release))
	require.Equal(t, true, refund["compensation"])
	require.Equal(t, map[string]any{"charge": "/charge-1"}, refund["input"], "the compensation's own input mapping")
	require.Equal(t, map[string]any{"id": "/charge-1"}, refund["output"])
	require.Equal(t, map[string]any{"sku": "A-1"}, release["input"], "without a mapping, the step's own input")
	require.Equal(t, map[string]any{"id": "/reserve-1"}, release["output"])
	require.Regexp(t, `^cmp_[0-9a-f-]{36}$`, comps[0].WebhookID)
	require.NotEqual(t, comps[0].WebhookID, comps[1].WebhookID)
	require.Equal(t, map[string]string{"reserve": "compensated", "charge": "compensated", "note": "succeeded", "ship": "failed"}, statuses(id))
	types := e.historyTypes(id)
	require.Contains(t, types, "run_compensating")
	require.Equal(t, "run_compensated", types[len(types)-1])

	// A compensation that fails is retried like a step.
	id = e.startRun("saga-flaky", map[string]any{"sku": "B-2"})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("compensated"), run.Status)
	flakes := calls(id.String(), "/flaky-refund")
	require.Len(t, flakes, 2)
	require.Equal(t, flakes[0].WebhookID, flakes[1].WebhookID, "one webhook-id across a compensation's attempts")
	require.Equal(t, []int{1, 2}, []int{flakes[0].Body.Attempt, flakes[1].Body.Attempt})
	require.Len(t, calls(id.String(), "/release"), 1)

	// A compensation that fails for good ends the run compensation_failed,
	// and the earlier steps stay as they were.
	id = e.startRun("saga-broken", map[string]any{"sku": "C-3"})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("compensation_failed"), run.Status)
	require.Contains(t, mustJSON(t, run.Error), "the compensation of step charge failed")
	require.Contains(t, mustJSON(t, run.Error), "step ship failed")
	require.Len(t, calls(id.String(), "/bad-refund"), 1, "a 422 is not retried")
	require.Empty(t, calls(id.String(), "/release"))
	require.Equal(t, map[string]string{"reserve": "succeeded", "charge": "compensation_failed", "note": "succeeded", "ship": "failed"}, statuses(id))
}

// TestCompensationWorkerKilled SIGKILLs the worker while a compensation's
// request is in flight: another worker makes the same attempt again, with
// the same webhook-id, once the lease ends, and the saga completes.
func TestCompensationWorkerKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.startWorker("DURABLE_LEASE_MARGIN=1s")
	rec := &recorder{}
	arrived := make(chan struct{}, 1)
	var refunds atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/fail":
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{})
		case "/refund":
			if refunds.Add(1) == 1 {
				arrived <- struct{}{}
				<-r.Context().Done() // the first worker dies holding this request
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{}})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "saga", "steps": [
	  {"name": "charge", "type": "call", "url": "%[1]s/charge", "compensate": {"url": "%[1]s/refund", "timeout": "1s"}},
	  {"name": "ship", "type": "call", "url": "%[1]s/fail", "retry": {"max_attempts": 1}}]}`, srv.URL))
	id := e.startRun("saga", nil)
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the compensation was never requested")
	}
	first.kill()
	require.Equal(t, client.RunStatus("compensating"), e.run(id).Status)
	e.startWorker("DURABLE_LEASE_MARGIN=1s")
	run := e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("compensated"), run.Status)
	var refundCalls []stepCall
	for _, c := range rec.all() {
		if c.Path == "/refund" {
			refundCalls = append(refundCalls, c)
		}
	}
	require.Len(t, refundCalls, 2)
	require.Equal(t, refundCalls[0].WebhookID, refundCalls[1].WebhookID)
	require.Equal(t, refundCalls[0].Body.Attempt, refundCalls[1].Body.Attempt, "the lost attempt is made again, not counted as a failure")
	// The lost attempt is counted: more than 10 such losses fail the
	// compensation rather than loop for ever.
	require.Equal(t, 1, dbCount(t, assertDB(t, e), `SELECT compensation_lost FROM step_executions WHERE run_id = $1 AND step_key = 'charge'`, id))
}

// TestCancelWhileCompensating cancels a run whose compensation is in
// flight: the run ends cancelled, and its error keeps the failure it was
// compensating for.
func TestCancelWhileCompensating(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	refunding, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/boom":
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "declined"}})
		case "/refund":
			once.Do(func() { close(refunding) })
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": 1})
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before the server closes
	e.createWorkflow(fmt.Sprintf(`{"name": "cancel-saga", "steps": [
	  {"name": "charge", "type": "call", "url": "%[1]s/charge", "compensate": {"url": "%[1]s/refund", "timeout": "30s"}},
	  {"name": "ship", "type": "call", "url": "%[1]s/boom"}]}`, srv.URL))
	id := e.startRun("cancel-saga", map[string]any{})
	select {
	case <-refunding:
	case <-time.After(20 * time.Second):
		t.Fatal("the compensation never started")
	}
	require.Equal(t, client.RunStatus("compensating"), e.run(id).Status)
	res, err := e.client.CancelRunWithResponse(context.Background(), id, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	run := e.run(id)
	require.Equal(t, client.RunStatus("cancelled"), run.Status)
	require.Equal(t, "cancelled", *run.Error.Code)
	require.Contains(t, run.Error.Message, "while it compensated for a failure")
	require.Contains(t, mustJSON(t, run.Error.Details), `"step_failed"`)
	require.Contains(t, mustJSON(t, run.Error.Details), "declined")
}
