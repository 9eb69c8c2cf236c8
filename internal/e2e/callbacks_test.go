package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// This file tests asynchronous steps: an endpoint answers 202 Accepted and
// finishes the step later through its callback URL.

// stToken returns the token of a callback URL, which must point at the
// deployment's API.
func stToken(t *testing.T, e *env, callbackURL string) string {
	t.Helper()
	prefix := e.apiURL + "/v1/callbacks/"
	require.True(t, strings.HasPrefix(callbackURL, prefix), "callback_url %q does not start with %q", callbackURL, prefix)
	return strings.TrimPrefix(callbackURL, prefix)
}

// stCallback posts a callback and returns the response.
func stCallback(t *testing.T, e *env, token string, body client.CallbackRequest) *client.CompleteCallbackResponse {
	t.Helper()
	res, err := e.client.CompleteCallbackWithResponse(context.Background(), token, body)
	require.NoError(t, err)
	return res
}

// stDescribe gets a callback URL's description.
func stDescribe(t *testing.T, e *env, token string) *client.DescribeCallbackResponse {
	t.Helper()
	res, err := e.client.DescribeCallbackWithResponse(context.Background(), token)
	require.NoError(t, err)
	return res
}

// stAlter changes the character at i of a token to another valid one.
func stAlter(token string, i int) string {
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func stPtr[T any](v T) *T { return &v }

// stSnapshot is what must not change when a callback is refused.
type stSnapshot struct {
	Status  client.RunStatus
	Output  any
	Context map[string]any
	History []string
	Steps   string
}

func stSnap(t *testing.T, e *env, id uuid.UUID) stSnapshot {
	t.Helper()
	r := e.run(id)
	return stSnapshot{Status: r.Status, Output: r.Output, Context: r.Context, History: e.historyTypes(id), Steps: stJSON(t, e.steps(id))}
}

// TestCallbackCompletesStep: a 202 parks the step and the run waits; the
// callback URL describes the step, heartbeats extend its deadline, forged
// tokens change nothing, the success callback moves the run on with its
// output and context, and a second completion is a conflict.
func TestCallbackCompletesStep(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, func(w http.ResponseWriter, _ *http.Request, c stepCall) {
		if c.Path == "/approve" {
			writeJSON(w, http.StatusAccepted, map[string]any{"note": "202 bodies mean nothing"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"shipped": true}, "context": map[string]any{"after": 1}})
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "approval", "steps": []any{
		map[string]any{"name": "approve", "type": "call", "url": srv.URL + "/approve", "callback_timeout": "1h",
			"retry": map[string]any{"max_attempts": 1}, "input": map[string]any{"order": "${ input.order }"}},
		map[string]any{"name": "after", "type": "call", "url": srv.URL + "/after",
			"input": map[string]any{"approved": "${ steps.approve.output.approved }", "who": "${ ctx.approver }"}},
	}}))
	id := e.startRun("approval", map[string]any{"order": "o-1"})
	calls := stWaitCalls(t, rec, 1, 15*time.Second)
	stCheckRequest(t, e, calls[0], id, "approval", 1, "approve", 1)
	require.JSONEq(t, `{"order": "o-1"}`, string(calls[0].Body.Input))
	token := stToken(t, e, calls[0].Body.CallbackURL)

	run := e.waitRun(id, 10*time.Second, "waiting")
	require.Equal(t, client.RunStatus("waiting"), run.Status)
	parked := time.Now()

	desc := stDescribe(t, e, token)
	require.Equal(t, http.StatusOK, desc.StatusCode(), string(desc.Body))
	d := desc.JSON200
	require.Equal(t, id, d.RunId)
	require.Equal(t, client.WorkflowRef{Name: "approval", Version: 1}, d.Workflow)
	require.Equal(t, "approve", d.Step)
	require.Equal(t, "call", d.Type)
	require.Equal(t, 1, d.Attempt)
	require.Equal(t, "waiting", d.Status)
	require.NotNil(t, d.Deadline)
	require.WithinDuration(t, parked.Add(time.Hour), *d.Deadline, 10*time.Second, "a parked step's deadline is its callback timeout away")
	// The request promised the callback at least until its
	// callback_deadline: the callback timeout from the request.
	require.WithinDuration(t, calls[0].At.Add(time.Hour), calls[0].Body.CallbackDeadline, 2*time.Second)
	require.False(t, d.Deadline.Before(calls[0].Body.CallbackDeadline), "deadline %s is before the promised %s", d.Deadline, calls[0].Body.CallbackDeadline)

	steps := e.steps(id)
	require.Len(t, steps, 1)
	require.Equal(t, client.StepExecutionStatus("waiting"), steps[0].Status)
	require.Equal(t, []string{"accepted"}, stAttemptStatuses(steps[0]))
	require.Equal(t, http.StatusAccepted, stHTTPStatus(steps[0].Attempts[0]))

	// A heartbeat extends the deadline.
	time.Sleep(50 * time.Millisecond)
	hb := stCallback(t, e, token, client.CallbackRequest{Status: status("heartbeat")})
	require.Equal(t, http.StatusOK, hb.StatusCode(), string(hb.Body))
	require.NotNil(t, hb.JSON200.Deadline)
	require.True(t, hb.JSON200.Deadline.After(*d.Deadline), "heartbeat deadline %s is not after %s", hb.JSON200.Deadline, d.Deadline)
	again := stDescribe(t, e, token)
	require.Equal(t, http.StatusOK, again.StatusCode())
	require.True(t, again.JSON200.Deadline.Equal(*hb.JSON200.Deadline), "the described deadline is the heartbeat's")
	require.Equal(t, client.RunStatus("waiting"), e.run(id).Status, "a heartbeat does not finish the step")

	// Forged or altered tokens are refused and change nothing.
	before := stSnap(t, e, id)
	for _, forged := range []string{stAlter(token, 10), stAlter(token, 30), stAlter(token, len(token)-1), "not-a-token"} {
		res := stCallback(t, e, forged, client.CallbackRequest{Status: status("succeeded"), Output: "forged"})
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusNotFound}, res.StatusCode(), "forged %s: %s", forged, res.Body)
		dres := stDescribe(t, e, forged)
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusNotFound}, dres.StatusCode(), "describe forged %s: %s", forged, dres.Body)
	}
	require.Equal(t, before, stSnap(t, e, id), "forged callbacks must change nothing")
	require.Len(t, rec.all(), 1)

	// The success callback completes the step and the run goes on.
	done := stCallback(t, e, token, client.CallbackRequest{
		Status:  status("succeeded"),
		Output:  map[string]any{"approved": true, "level": 3},
		Context: &map[string]any{"approver": "ann"},
		Logs:    &[]client.StepLog{{Level: "info", Message: "approved by ann"}},
	})
	require.Equal(t, http.StatusOK, done.StatusCode(), string(done.Body))
	require.Equal(t, "succeeded", done.JSON200.Status)

	run = e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	require.JSONEq(t, `{"shipped": true}`, stJSON(t, run.Output))
	require.JSONEq(t, `{"approver": "ann", "after": 1}`, stJSON(t, run.Context))
	calls = rec.all()
	require.Len(t, calls, 2)
	stCheckRequest(t, e, calls[1], id, "approval", 1, "after", 1)
	require.JSONEq(t, `{"approved": true, "who": "ann"}`, string(calls[1].Body.Input), "the callback's output and context flow on")
	require.JSONEq(t, `{"approver": "ann"}`, string(calls[1].Body.Context))

	steps = e.steps(id)
	require.Len(t, steps, 2)
	require.Equal(t, client.StepExecutionStatus("succeeded"), steps[0].Status)
	require.JSONEq(t, `{"approved": true, "level": 3}`, stJSON(t, steps[0].Output))
	require.Equal(t, []string{"succeeded"}, stAttemptStatuses(steps[0]))
	require.NotNil(t, steps[0].Attempts[0].Logs, "a callback's logs are stored with the attempt")
	require.JSONEq(t, `[{"level": "info", "message": "approved by ann"}]`, stJSON(t, *steps[0].Attempts[0].Logs))
	require.Equal(t, []string{
		"run_created", "run_started",
		"step_started", "step_accepted", "step_heartbeat", "step_succeeded",
		"step_started", "step_succeeded",
		"run_succeeded",
	}, e.historyTypes(id))

	// A second completion is a conflict and changes nothing.
	before = stSnap(t, e, id)
	dup := stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "again", Context: &map[string]any{"approver": "bob"}})
	require.Equal(t, http.StatusConflict, dup.StatusCode(), string(dup.Body))
	fail := stCallback(t, e, token, client.CallbackRequest{Status: status("failed"), Error: map[string]any{"code": "late"}})
	require.Equal(t, http.StatusConflict, fail.StatusCode(), string(fail.Body))
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, before, stSnap(t, e, id), "a duplicate callback must change nothing")
	require.Len(t, rec.all(), 2, "the next step is not called again")
}

// TestCallbackExpired: with no callback within the step's callback
// timeout, the step times out; a callback whose deadline has passed is
// answered 410 Gone and changes nothing, whether the run failed for it or a
// retry followed it.
func TestCallbackExpired(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, stAnswer(http.StatusAccepted, map[string]any{}))
	retried, retriedRec := stServer(t, stAnswer(http.StatusAccepted, map[string]any{}))
	e.createWorkflow(stDef(t, map[string]any{"name": "expiring", "steps": []any{
		map[string]any{"name": "wait", "type": "call", "url": srv.URL, "callback_timeout": "500ms",
			"retry": map[string]any{"max_attempts": 1}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "expiring2", "steps": []any{
		map[string]any{"name": "wait", "type": "call", "url": retried.URL, "callback_timeout": "1s",
			"retry": map[string]any{"max_attempts": 2, "initial_interval": "10ms"}},
	}}))
	start := time.Now()
	id := e.startRun("expiring", nil)
	retriedID := e.startRun("expiring2", nil)
	calls := stWaitCalls(t, rec, 1, 15*time.Second)
	token := stToken(t, e, calls[0].Body.CallbackURL)

	run := e.waitRun(id, 10*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
	require.Contains(t, stRunError(t, run), "callback timeout")
	steps := e.steps(id)
	require.Len(t, steps, 1)
	require.Equal(t, client.StepExecutionStatus("failed"), steps[0].Status)
	require.Equal(t, []string{"timed_out"}, stAttemptStatuses(steps[0]))
	types := e.historyTypes(id)
	require.Contains(t, types, "step_timed_out")
	require.Equal(t, "run_failed", types[len(types)-1])

	before := stSnap(t, e, id)
	res := stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "too late"})
	assert.Equal(t, http.StatusGone, res.StatusCode(), "a callback after the step's deadline has expired: %s", res.Body)
	require.Equal(t, before, stSnap(t, e, id), "an expired callback must change nothing")
	require.Len(t, rec.all(), 1)

	// With attempts left, the timed-out attempt is retried; its token has
	// expired all the same, while the retry waits and after the run failed.
	retriedCalls := stWaitCalls(t, retriedRec, 2, 10*time.Second)
	require.Equal(t, 2, retriedCalls[1].Body.Attempt)
	require.Equal(t, retriedCalls[0].WebhookID, retriedCalls[1].WebhookID)
	e.waitRun(retriedID, 10*time.Second, "waiting")
	before = stSnap(t, e, retriedID)
	first := stToken(t, e, retriedCalls[0].Body.CallbackURL)
	res = stCallback(t, e, first, client.CallbackRequest{Status: status("succeeded"), Output: "too late"})
	assert.Equal(t, http.StatusGone, res.StatusCode(), "attempt 1's callback after its deadline, attempt 2 waiting: %s", res.Body)
	require.Equal(t, before, stSnap(t, e, retriedID), "an expired callback must change nothing")

	run = e.waitRun(retriedID, 10*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Equal(t, []string{"timed_out", "timed_out"}, stAttemptStatuses(e.steps(retriedID)[0]))
	before = stSnap(t, e, retriedID)
	for i, c := range retriedCalls {
		res := stCallback(t, e, stToken(t, e, c.Body.CallbackURL), client.CallbackRequest{Status: status("succeeded"), Output: "too late"})
		assert.Equal(t, http.StatusGone, res.StatusCode(), "attempt %d's callback after its deadline, run failed: %s", i+1, res.Body)
	}
	require.Equal(t, before, stSnap(t, e, retriedID), "expired callbacks must change nothing")
}

// TestCallbackExpiredBeforeTimer: a callback after the step's deadline but
// before any worker has fired the timeout (here: no worker runs) is 410
// Gone and changes nothing; the timeout still fires once a worker runs.
func TestCallbackExpiredBeforeTimer(t *testing.T) {
	t.Parallel()
	e, worker := stDeploy(t)
	srv, rec := stServer(t, stAnswer(http.StatusAccepted, nil))
	e.createWorkflow(stDef(t, map[string]any{"name": "expiring", "steps": []any{
		map[string]any{"name": "wait", "type": "call", "url": srv.URL, "callback_timeout": "300ms",
			"retry": map[string]any{"max_attempts": 1}},
	}}))
	id := e.startRun("expiring", nil)
	calls := stWaitCalls(t, rec, 1, 15*time.Second)
	token := stToken(t, e, calls[0].Body.CallbackURL)
	e.waitRun(id, 10*time.Second, "waiting")
	worker.kill()
	time.Sleep(600 * time.Millisecond)

	before := stSnap(t, e, id)
	require.Equal(t, client.RunStatus("waiting"), before.Status)
	res := stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "too late"})
	require.Equal(t, http.StatusGone, res.StatusCode(), string(res.Body))
	hb := stCallback(t, e, token, client.CallbackRequest{Status: status("heartbeat")})
	require.Equal(t, http.StatusGone, hb.StatusCode(), "an expired step cannot be revived by a heartbeat: %s", hb.Body)
	require.Equal(t, before, stSnap(t, e, id), "an expired callback must change nothing")

	e.startWorker()
	run := e.waitRun(id, 10*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Contains(t, stRunError(t, run), "callback timeout")
}

// TestCallbackBeforeAccepted: an endpoint that completes its step through
// the callback before its 202 reaches Durable (a fast asynchronous job) must
// not leave the run waiting; the step completes once.
func TestCallbackBeforeAccepted(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	early := make(chan int, 4)
	srv, rec := stServer(t, func(w http.ResponseWriter, r *http.Request, c stepCall) {
		if c.Path == "/next" {
			writeJSON(w, http.StatusOK, map[string]any{"output": "next done"})
			return
		}
		token := strings.TrimPrefix(c.Body.CallbackURL, e.apiURL+"/v1/callbacks/")
		res, err := e.client.CompleteCallbackWithResponse(r.Context(), token, client.CallbackRequest{
			Status: status("succeeded"), Output: map[string]any{"early": true}, Context: &map[string]any{"fast": "yes"},
		})
		if err != nil {
			early <- -1
		} else {
			early <- res.StatusCode()
		}
		w.WriteHeader(http.StatusAccepted)
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "fast", "steps": []any{
		map[string]any{"name": "job", "type": "call", "url": srv.URL + "/job", "retry": map[string]any{"max_attempts": 1}},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"early": "${ steps.job.output.early }"}},
	}}))
	id := e.startRun("fast", nil)
	select {
	case code := <-early:
		require.Equal(t, http.StatusOK, code, "a callback may come before the 202 is recorded")
	case <-time.After(15 * time.Second):
		t.Fatal("the step was not called")
	}
	run := e.waitRun(id, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	require.JSONEq(t, `"next done"`, stJSON(t, run.Output))
	require.JSONEq(t, `{"fast": "yes"}`, stJSON(t, run.Context))
	time.Sleep(300 * time.Millisecond)
	calls := rec.all()
	require.Len(t, calls, 2)
	require.Equal(t, "/next", calls[1].Path)
	require.JSONEq(t, `{"early": true}`, string(calls[1].Body.Input))
	require.Equal(t, client.RunStatus("succeeded"), e.run(id).Status, "the late 202 must not park the finished step")
	steps := e.steps(id)
	require.Len(t, steps, 2)
	require.Equal(t, client.StepExecutionStatus("succeeded"), steps[0].Status)
	require.JSONEq(t, `{"early": true}`, stJSON(t, steps[0].Output))
	require.Equal(t, []string{"succeeded"}, stAttemptStatuses(steps[0]))
	types := e.historyTypes(id)
	require.NotContains(t, types, "step_accepted")
	require.Equal(t, "run_succeeded", types[len(types)-1])
}

// TestCallbackHeartbeatKeepsStepAlive: heartbeats keep a step with a short
// callback timeout waiting well past that timeout.
func TestCallbackHeartbeatKeepsStepAlive(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, stAnswer(http.StatusAccepted, nil))
	e.createWorkflow(stDef(t, map[string]any{"name": "alive", "steps": []any{
		map[string]any{"name": "long", "type": "call", "url": srv.URL, "callback_timeout": "800ms",
			"retry": map[string]any{"max_attempts": 1}},
	}}))
	id := e.startRun("alive", nil)
	calls := stWaitCalls(t, rec, 1, 15*time.Second)
	token := stToken(t, e, calls[0].Body.CallbackURL)
	e.waitRun(id, 10*time.Second, "waiting")
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		time.Sleep(250 * time.Millisecond)
		sent := time.Now()
		hb := stCallback(t, e, token, client.CallbackRequest{Status: status("heartbeat")})
		require.Equal(t, http.StatusOK, hb.StatusCode(), "heartbeat after %s: %s", time.Since(start), hb.Body)
		require.NotNil(t, hb.JSON200.Deadline)
		require.WithinDuration(t, sent.Add(800*time.Millisecond), *hb.JSON200.Deadline, 500*time.Millisecond, "a heartbeat moves the deadline to the callback timeout from now")
		require.Equal(t, client.RunStatus("waiting"), e.run(id).Status)
	}
	res := stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "finally"})
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	run := e.waitRun(id, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	require.JSONEq(t, `"finally"`, stJSON(t, run.Output))
	require.NotContains(t, e.historyTypes(id), "step_timed_out")
}

// TestCallbackAfterCancel: a callback for a step of a cancelled run is a
// conflict and changes nothing.
func TestCallbackAfterCancel(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := stServer(t, stAnswer(http.StatusAccepted, nil))
	e.createWorkflow(stDef(t, map[string]any{"name": "parked", "steps": []any{
		map[string]any{"name": "park", "type": "call", "url": srv.URL + "/park", "retry": map[string]any{"max_attempts": 1}},
		map[string]any{"name": "never", "type": "call", "url": srv.URL + "/never"},
	}}))
	id := e.startRun("parked", nil)
	calls := stWaitCalls(t, rec, 1, 15*time.Second)
	token := stToken(t, e, calls[0].Body.CallbackURL)
	e.waitRun(id, 10*time.Second, "waiting")
	res, err := e.client.CancelRunWithResponse(context.Background(), id, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, client.RunStatus("cancelled"), res.JSON200.Status)

	before := stSnap(t, e, id)
	cb := stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "after cancel"})
	require.Equal(t, http.StatusConflict, cb.StatusCode(), string(cb.Body))
	hb := stCallback(t, e, token, client.CallbackRequest{Status: status("heartbeat")})
	require.Equal(t, http.StatusConflict, hb.StatusCode(), string(hb.Body))
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, before, stSnap(t, e, id), "a callback for a cancelled run must change nothing")
	require.Equal(t, client.RunStatus("cancelled"), before.Status)
	steps := e.steps(id)
	require.Equal(t, client.StepExecutionStatus("cancelled"), steps[0].Status)
	require.Len(t, rec.all(), 1, "the next step is never called")
	desc := stDescribe(t, e, token)
	require.Equal(t, http.StatusOK, desc.StatusCode(), string(desc.Body))
	require.Equal(t, "cancelled", desc.JSON200.Status)
}

// TestCallbackFailure: a "failed" callback fails the step and the run with
// its error; with "retry": true and attempts left, the step is invoked
// again, and the first attempt's token is then spent.
func TestCallbackFailure(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	failSrv, failRec := stServer(t, stAnswer(http.StatusAccepted, nil))
	var n atomic.Int32
	retrySrv, retryRec := stServer(t, func(w http.ResponseWriter, _ *http.Request, _ stepCall) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": "second attempt"})
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "declined", "steps": []any{
		map[string]any{"name": "pay", "type": "call", "url": failSrv.URL, "retry": map[string]any{"max_attempts": 3, "initial_interval": "10ms"}},
		map[string]any{"name": "never", "type": "call", "url": failSrv.URL + "/never"},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "again", "steps": []any{
		map[string]any{"name": "pay", "type": "call", "url": retrySrv.URL, "retry": map[string]any{"max_attempts": 2, "initial_interval": "10ms"}},
	}}))
	failID := e.startRun("declined", nil)
	retryID := e.startRun("again", nil)

	// A failed callback without retry fails the step and the run.
	calls := stWaitCalls(t, failRec, 1, 15*time.Second)
	e.waitRun(failID, 10*time.Second, "waiting")
	token := stToken(t, e, calls[0].Body.CallbackURL)
	res := stCallback(t, e, token, client.CallbackRequest{Status: status("failed"), Error: map[string]any{"code": "declined", "reason": "no funds"}})
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, "failed", res.JSON200.Status)
	run := e.waitRun(failID, 10*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.NotNil(t, run.Error)
	require.NotNil(t, run.Error.Step)
	require.Equal(t, "pay", *run.Error.Step)
	require.JSONEq(t, `{"code": "declined", "reason": "no funds"}`, stJSON(t, run.Error.Details), "the run's error keeps the callback's error")
	steps := e.steps(failID)
	require.Len(t, steps, 1)
	require.Equal(t, client.StepExecutionStatus("failed"), steps[0].Status)
	require.Equal(t, []string{"failed"}, stAttemptStatuses(steps[0]), "without retry: true a failed callback is final")
	require.JSONEq(t, `{"code": "declined", "reason": "no funds"}`, stJSON(t, steps[0].Error))

	// A failed callback with retry: true invokes the step again.
	calls = stWaitCalls(t, retryRec, 1, 15*time.Second)
	e.waitRun(retryID, 10*time.Second, "waiting")
	first := stToken(t, e, calls[0].Body.CallbackURL)
	res = stCallback(t, e, first, client.CallbackRequest{Status: status("failed"), Error: map[string]any{"code": "try_again"}, Retry: stPtr(true)})
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	run = e.waitRun(retryID, 15*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "run error: %v", run.Error)
	require.JSONEq(t, `"second attempt"`, stJSON(t, run.Output))
	calls = retryRec.all()
	require.Len(t, calls, 2)
	stCheckRequest(t, e, calls[1], retryID, "again", 1, "pay", 2)
	require.Equal(t, calls[0].WebhookID, calls[1].WebhookID, "a retry keeps the webhook-id")
	require.NotEqual(t, calls[0].Body.CallbackURL, calls[1].Body.CallbackURL, "a retry has its own callback token")
	steps = e.steps(retryID)
	require.Len(t, steps, 1)
	require.Equal(t, []string{"failed", "succeeded"}, stAttemptStatuses(steps[0]))
	require.JSONEq(t, `{"code": "try_again"}`, stJSON(t, steps[0].Attempts[0].Error))

	// The first attempt's token is spent.
	before := stSnap(t, e, retryID)
	res = stCallback(t, e, first, client.CallbackRequest{Status: status("succeeded"), Output: "stale"})
	require.Equal(t, http.StatusConflict, res.StatusCode(), string(res.Body))
	require.Equal(t, before, stSnap(t, e, retryID))
	require.Len(t, failRec.all(), 1, "the step after a failed one is never called")
}

// status is a callback status, as the generated client takes it.
func status(s string) *client.CallbackRequestStatus {
	v := client.CallbackRequestStatus(s)
	return &v
}
