package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/internal/signing"
)

// This file tests the wait step types end to end: sleep, wait_for_event
// (one, any, all, look-back, de-duplication), wait_for_input (every kind,
// validation, on_reject), wait timeouts and what a waiting run shows. The
// helpers of this file are prefixed "wt" to keep clear of the other test
// files of the package.

// wtEcho starts a step server that answers every call with its input as
// the step's output, and records the calls.
func wtEcho(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	return stServer(t, func(w http.ResponseWriter, _ *http.Request, c stepCall) {
		writeJSON(w, http.StatusOK, map[string]any{"output": c.Body.Input})
	})
}

// wtCallsOf returns the calls a step server received for one run.
func wtCallsOf(rec *recorder, run uuid.UUID) []stepCall {
	var out []stepCall
	for _, c := range rec.all() {
		if c.Body.RunID == run {
			out = append(out, c)
		}
	}
	return out
}

// wtPublishErr publishes an event without failing the test, for
// goroutines: it returns the answer's status and body.
func wtPublishErr(ctx context.Context, c *client.ClientWithResponses, req client.PublishEventRequest) (int, client.PublishedEvent, error) {
	res, err := c.PublishEventWithResponse(ctx, req)
	if err != nil {
		return 0, client.PublishedEvent{}, err
	}
	switch {
	case res.JSON201 != nil:
		return res.StatusCode(), *res.JSON201, nil
	case res.JSON200 != nil:
		return res.StatusCode(), *res.JSON200, nil
	}
	return res.StatusCode(), client.PublishedEvent{}, fmt.Errorf("publish %s/%s: %d %s", req.Name, req.Key, res.StatusCode(), res.Body)
}

// wtPublish publishes an event (with a de-duplication id unless id is
// empty) and returns the answer's status and body.
func wtPublish(t *testing.T, e *env, name, key string, payload any, id string) (int, client.PublishedEvent) {
	t.Helper()
	req := client.PublishEventRequest{Name: name, Key: key, Payload: payload}
	if id != "" {
		req.Id = &id
	}
	status, pub, err := wtPublishErr(context.Background(), e.client, req)
	require.NoError(t, err)
	return status, pub
}

// wtInput gives a run's input step its input.
func wtInput(t *testing.T, e *env, run uuid.UUID, step string, value any, by, comment string) *client.GiveInputResponse {
	t.Helper()
	req := client.InputRequest{Value: value}
	if by != "" {
		req.By = &by
	}
	if comment != "" {
		req.Comment = &comment
	}
	res, err := e.client.GiveInputWithResponse(context.Background(), run, step, req)
	require.NoError(t, err)
	return res
}

// wtProblemPaths decodes a problem answer and returns the paths of its
// errors.
func wtProblemPaths(t *testing.T, body []byte) []string {
	t.Helper()
	var p client.Problem
	require.NoError(t, json.Unmarshal(body, &p), "problem %s", body)
	require.NotNil(t, p.Errors, "the problem lists no errors: %s", body)
	var paths []string
	for _, e := range *p.Errors {
		paths = append(paths, e.Path)
	}
	return paths
}

// wtWaitingFor returns what a run's step waits for, and false when the run
// does not wait on it.
func wtWaitingFor(r client.Run, step string) (client.WaitingFor, bool) {
	if r.WaitingFor == nil {
		return client.WaitingFor{}, false
	}
	for _, w := range *r.WaitingFor {
		if w.Step == step {
			return w, true
		}
	}
	return client.WaitingFor{}, false
}

// wtAwaitWaiting polls a run until it is waiting on step, and returns it.
func wtAwaitWaiting(t *testing.T, e *env, id uuid.UUID, step string) client.Run {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.run(id)
		if _, ok := wtWaitingFor(r, step); ok && r.Status == "waiting" {
			return r
		}
		if terminalRun(r) || time.Now().After(deadline) {
			t.Fatalf("run %s is %s, not waiting on %s (history %v)", id, r.Status, step, historyKeys(e.history(id)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wtStepDeadline polls a run's steps until step waits, and returns its
// deadline: goroutine-safe.
func wtStepDeadline(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID, step string) (time.Time, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		steps, err := fetchSteps(ctx, c, id)
		if err != nil {
			return time.Time{}, err
		}
		// A step seen only after its wait ended (a busy machine polls
		// slowly) still tells its deadline.
		if s, ok := findStep(steps, step); ok && s.Deadline != nil && s.Status != "running" && s.Status != "pending" {
			return *s.Deadline, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("step %s of run %s did not wait within 15s", step, id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wtHistoryData returns the data of a run's only history event of a type
// for a step, decoded.
func wtHistoryData(t *testing.T, events []client.HistoryEvent, typ, step string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, h := range events {
		if h.Type == typ && h.Step != nil && *h.Step == step {
			var m map[string]any
			if h.Data != nil {
				require.NoError(t, json.Unmarshal([]byte(stJSON(t, h.Data)), &m))
			}
			found = append(found, m)
		}
	}
	require.Len(t, found, 1, "%s events of step %s in %v", typ, step, historyKeys(events))
	return found[0]
}

// wtAssertStillWaiting checks, after a pause, that a run still waits on
// step and that the step has not finished.
func wtAssertStillWaiting(t *testing.T, e *env, id uuid.UUID, step string, pause time.Duration) {
	t.Helper()
	time.Sleep(pause)
	r := e.run(id)
	require.Equal(t, client.RunStatus("waiting"), r.Status, "run %s", id)
	_, ok := wtWaitingFor(r, step)
	require.True(t, ok, "run %s no longer shows it waits on %s: %s", id, step, stJSON(t, r.WaitingFor))
	s := stStepNamed(t, e.steps(id), step)
	require.Equal(t, client.StepExecutionStatus("waiting"), s.Status)
	h := e.history(id)
	require.Zero(t, countHistory(h, "step_succeeded", step), "%v", historyKeys(h))
	require.Zero(t, countHistory(h, "step_failed", step), "%v", historyKeys(h))
}

// TestWaitKindsResumeWithData runs each wait kind followed by a call step
// whose input maps the wait's output: a sleep for a duration, a sleep until
// an expression and until an RFC 3339 literal, a wait for an event (its
// payload is the output) and a wait for an approval (value, by, comment,
// approved). Each resumes once, on time, and its data reaches the next step.
func TestWaitKindsResumeWithData(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	next := func(name string, input map[string]any) map[string]any {
		return map[string]any{"name": name, "type": "call", "url": srv.URL + "/" + name, "input": input}
	}
	const napFor = 400 * time.Millisecond
	literal := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
	e.createWorkflow(stDef(t, map[string]any{"name": "nap", "steps": []any{
		map[string]any{"name": "nap", "type": "sleep", "duration": napFor.String()},
		next("after_nap", map[string]any{"woke_at": "${ steps.nap.output.woke_at }", "late_ms": "${ steps.nap.output.late_ms }"}),
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "alarm", "steps": []any{
		map[string]any{"name": "alarm", "type": "sleep", "until": "${ timestamp(input.at) }"},
		next("after_alarm", map[string]any{"woke_at": "${ steps.alarm.output.woke_at }"}),
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "alarm-literal", "steps": []any{
		map[string]any{"name": "alarm", "type": "sleep", "until": literal.Format(time.RFC3339)},
		next("after_literal", map[string]any{"woke_at": "${ steps.alarm.output.woke_at }"}),
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "paid", "steps": []any{
		map[string]any{"name": "paid", "type": "wait_for_event", "event": "order.paid", "key": "${ input.order }"},
		next("after_paid", map[string]any{"payment": "${ steps.paid.output }", "amount": "${ steps.paid.output.amount }", "order": "${ input.order }"}),
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "approve", "steps": []any{
		map[string]any{"name": "ok", "type": "wait_for_input", "kind": "approval", "prompt": "Ship it?"},
		next("after_ok", map[string]any{"decision": "${ steps.ok.output }", "approved": "${ steps.ok.output.approved }"}),
	}}))

	begin := time.Now()
	nap := e.startRun("nap", nil)
	at := time.Now().Add(800 * time.Millisecond).UTC()
	alarm := e.startRun("alarm", map[string]any{"at": at.Format(time.RFC3339Nano)})
	lit := e.startRun("alarm-literal", nil)
	paid := e.startRun("paid", map[string]any{"order": "o-17"})
	approve := e.startRun("approve", nil)

	// The event and the approval, once their runs wait.
	wtAwaitWaiting(t, e, paid, "paid")
	payload := map[string]any{"amount": 42.5, "currency": "EUR", "lines": []any{"a", "b"}}
	status, pub := wtPublish(t, e, "order.paid", "o-17", payload, "")
	require.Equal(t, http.StatusCreated, status)
	require.Equal(t, 1, pub.Resumed, "the event must resume the waiting run")
	require.False(t, pub.Duplicate)
	require.Equal(t, "order.paid", pub.Name)
	require.Equal(t, "o-17", pub.Key)

	wtAwaitWaiting(t, e, approve, "ok")
	res := wtInput(t, e, approve, "ok", true, "alice", "lgtm")
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, "succeeded", res.JSON200.Status)
	require.Equal(t, "ok", res.JSON200.Step)
	require.Equal(t, approve, res.JSON200.RunId)

	for _, id := range []uuid.UUID{nap, alarm, lit, paid, approve} {
		r := e.waitRun(id, 15*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, "run %s: %s %v", id, runErrorText(r), historyKeys(e.history(id)))
		require.Len(t, wtCallsOf(rec, id), 1, "run %s: the step after the wait must be called once", id)
	}
	t.Logf("all kinds resumed in %s", time.Since(begin).Round(time.Millisecond))

	// A sleep for a duration: woke no sooner than its duration, its output
	// (woke_at, late_ms) reached the next step, its history says how late.
	napStep := stStepNamed(t, e.steps(nap), "nap")
	require.Equal(t, "sleep", napStep.Type)
	require.Equal(t, client.StepExecutionStatus("succeeded"), napStep.Status)
	require.NotNil(t, napStep.StartedAt)
	require.NotNil(t, napStep.Deadline)
	require.InDelta(t, napFor.Milliseconds(), napStep.Deadline.Sub(*napStep.StartedAt).Milliseconds(), 50, "the sleep's deadline is its duration after it began")
	napOut := napStep.Output.(map[string]any)
	require.Contains(t, napOut, "woke_at")
	require.Contains(t, napOut, "late_ms")
	call := wtCallsOf(rec, nap)[0]
	require.JSONEq(t, stJSON(t, map[string]any{"woke_at": napOut["woke_at"], "late_ms": napOut["late_ms"]}), string(call.Body.Input))
	require.False(t, call.At.Before(napStep.Deadline.Add(-5*time.Millisecond)), "the step after the sleep was called at %s, before the sleep's end %s", call.At, napStep.Deadline)
	wokeAt, err := time.Parse(time.RFC3339Nano, napOut["woke_at"].(string))
	require.NoError(t, err)
	require.False(t, wokeAt.Before(napStep.Deadline.Add(-5*time.Millisecond)), "woke at %s, before %s", wokeAt, napStep.Deadline)
	h := e.history(nap)
	require.Equal(t, []string{
		"run_created", "run_started", "step_started nap#1", "step_waiting nap#1", "step_succeeded nap#1",
		"step_started after_nap#1", "step_succeeded after_nap#1", "run_succeeded",
	}, historyKeys(h))
	require.Contains(t, wtHistoryData(t, h, "step_succeeded", "nap"), "late_ms")
	require.Contains(t, wtHistoryData(t, h, "step_waiting", "nap"), "deadline")

	// A sleep until an expression and until a literal: the deadline is that
	// time, and the next step ran after it.
	for _, c := range []struct {
		id   uuid.UUID
		wake time.Time
	}{{alarm, at}, {lit, literal}} {
		s := stStepNamed(t, e.steps(c.id), "alarm")
		require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status)
		require.NotNil(t, s.Deadline)
		require.WithinDuration(t, c.wake, *s.Deadline, 250*time.Millisecond, "the sleep must last until %s", c.wake)
		call := wtCallsOf(rec, c.id)[0]
		require.False(t, call.At.Before(c.wake.Add(-5*time.Millisecond)), "the step after a sleep until %s was called at %s", c.wake, call.At)
		require.JSONEq(t, stJSON(t, map[string]any{"woke_at": s.Output.(map[string]any)["woke_at"]}), string(call.Body.Input))
	}

	// The event: its payload is the wait's output and reached the next step.
	paidStep := stStepNamed(t, e.steps(paid), "paid")
	require.Equal(t, "wait_for_event", paidStep.Type)
	require.JSONEq(t, stJSON(t, payload), stJSON(t, paidStep.Output))
	require.JSONEq(t, stJSON(t, map[string]any{"payment": payload, "amount": 42.5, "order": "o-17"}), string(wtCallsOf(rec, paid)[0].Body.Input))
	require.JSONEq(t, stJSON(t, map[string]any{"payment": payload, "amount": 42.5, "order": "o-17"}), stJSON(t, e.run(paid).Output))
	ph := e.history(paid)
	require.Equal(t, 1, countHistory(ph, "step_succeeded", "paid"), "%v", historyKeys(ph))
	require.Equal(t, "order.paid", wtHistoryData(t, ph, "step_succeeded", "paid")["event"])
	require.Equal(t, pub.Id.String(), wtHistoryData(t, ph, "step_succeeded", "paid")["event_id"])

	// The approval: value, by, comment and approved reached the next step.
	decision := map[string]any{"value": true, "approved": true, "by": "alice", "comment": "lgtm"}
	okStep := stStepNamed(t, e.steps(approve), "ok")
	require.Equal(t, "wait_for_input", okStep.Type)
	require.JSONEq(t, stJSON(t, decision), stJSON(t, okStep.Output))
	require.JSONEq(t, stJSON(t, map[string]any{"decision": decision, "approved": true}), string(wtCallsOf(rec, approve)[0].Body.Input))
}

// TestEventMatchingAndDuplicates checks that an event resumes only the
// waits of its name and key, that `resumed` counts the waits it matched,
// and that an event id published again answers 200 duplicate and resumes
// nothing. A key that cannot be evaluated fails the run.
func TestEventMatchingAndDuplicates(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	// No look-back, so that a run started after an event never sees it.
	e.createWorkflow(stDef(t, map[string]any{"name": "ship", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "shipment", "key": "${ input.key }", "lookback": "0s"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"got": "${ steps.w.output }"}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "badkey", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "shipment", "key": "${ input.nested.key }"},
	}}))

	a := e.startRun("ship", map[string]any{"key": "k1"})
	b := e.startRun("ship", map[string]any{"key": "k1"})
	c := e.startRun("ship", map[string]any{"key": "k2"})
	for _, id := range []uuid.UUID{a, b, c} {
		wtAwaitWaiting(t, e, id, "w")
	}

	// Another key, another name, a name that only starts the same: nothing.
	for _, ev := range [][2]string{{"shipment", "k3"}, {"shipment", "K1"}, {"shipment.other", "k1"}, {"shipmen", "tk1"}, {"Shipment", "k1"}} {
		status, pub := wtPublish(t, e, ev[0], ev[1], map[string]any{"wrong": true}, "")
		require.Equal(t, http.StatusCreated, status)
		require.Zero(t, pub.Resumed, "event %s/%s must resume nothing", ev[0], ev[1])
	}
	for _, id := range []uuid.UUID{a, b, c} {
		wtAssertStillWaiting(t, e, id, "w", 0)
	}

	// The matching event resumes both runs waiting on k1, once each.
	status, first := wtPublish(t, e, "shipment", "k1", map[string]any{"n": 1}, "evt-1")
	require.Equal(t, http.StatusCreated, status)
	require.False(t, first.Duplicate)
	require.Equal(t, 2, first.Resumed, "two runs wait on k1")
	for _, id := range []uuid.UUID{a, b} {
		r := e.waitRun(id, 10*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
		require.JSONEq(t, `{"got": {"n": 1}}`, stJSON(t, r.Output))
	}
	wtAssertStillWaiting(t, e, c, "w", 0)

	// The same id again: 200, duplicate, the first event's id, nothing
	// resumed — not even a run that waits on its name and key now.
	d := e.startRun("ship", map[string]any{"key": "k1"})
	wtAwaitWaiting(t, e, d, "w")
	status, dup := wtPublish(t, e, "shipment", "k1", map[string]any{"n": 2}, "evt-1")
	require.Equal(t, http.StatusOK, status)
	require.True(t, dup.Duplicate)
	require.Zero(t, dup.Resumed)
	require.Equal(t, first.Id, dup.Id, "a duplicate answers the event published first")
	// An id is unique whatever the name and key.
	status, dup = wtPublish(t, e, "other", "k9", nil, "evt-1")
	require.Equal(t, http.StatusOK, status)
	require.True(t, dup.Duplicate)
	require.Zero(t, dup.Resumed)
	wtAssertStillWaiting(t, e, d, "w", 300*time.Millisecond)

	// Fresh events resume the remaining runs, one each.
	status, pub := wtPublish(t, e, "shipment", "k2", map[string]any{"n": 3}, "evt-3")
	require.Equal(t, http.StatusCreated, status)
	require.Equal(t, 1, pub.Resumed)
	status, pub = wtPublish(t, e, "shipment", "k1", map[string]any{"n": 4}, "")
	require.Equal(t, http.StatusCreated, status)
	require.Equal(t, 1, pub.Resumed, "only d still waits on k1")
	for id, want := range map[uuid.UUID]string{c: `{"got": {"n": 3}}`, d: `{"got": {"n": 4}}`} {
		r := e.waitRun(id, 10*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
		require.JSONEq(t, want, stJSON(t, r.Output))
	}
	for _, id := range []uuid.UUID{a, b, c, d} {
		keys := countKeys(historyKeys(e.history(id)))
		require.Equal(t, 1, keys["step_succeeded w#1"], "run %s: %v", id, keys)
		require.Equal(t, 1, keys["step_succeeded next#1"], "run %s: %v", id, keys)
		require.Len(t, wtCallsOf(rec, id), 1)
	}

	// A key expression that fails: the wait cannot begin, the run fails.
	bad := e.startRun("badkey", map[string]any{"other": 1})
	r := e.waitRun(bad, 10*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.Contains(t, runErrorText(r), "could not begin")
	require.Equal(t, client.StepExecutionStatus("failed"), stStepNamed(t, e.steps(bad), "w").Status)
}

// TestEventLookback publishes events before the runs that wait for them
// reach their wait (after a short sleep): within the look-back window the
// wait resumes at once; outside it, or with a look-back of 0s, it waits
// for a new event.
func TestEventLookback(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	def := func(name, lookback string) string {
		w := map[string]any{"name": "w", "type": "wait_for_event", "event": "lb.ready", "key": "${ input.key }"}
		if lookback != "" {
			w["lookback"] = lookback
		}
		return stDef(t, map[string]any{"name": name, "steps": []any{
			map[string]any{"name": "nap", "type": "sleep", "duration": "500ms"},
			w,
			map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"got": "${ steps.w.output }"}},
		}})
	}
	e.createWorkflow(def("lb", ""))     // the default look-back (minutes)
	e.createWorkflow(def("lb0", "0s"))  // none
	e.createWorkflow(def("lb1", "1ms")) // shorter than the sleep

	for _, key := range []string{"k-default", "k-zero", "k-short"} {
		status, pub := wtPublish(t, e, "lb.ready", key, map[string]any{"v": "early"}, "")
		require.Equal(t, http.StatusCreated, status)
		require.Zero(t, pub.Resumed, "no run waits yet")
	}
	withDefault := e.startRun("lb", map[string]any{"key": "k-default"})
	zero := e.startRun("lb0", map[string]any{"key": "k-zero"})
	short := e.startRun("lb1", map[string]any{"key": "k-short"})
	// The events were published before the runs reached their waits.
	for _, id := range []uuid.UUID{withDefault, zero, short} {
		wtAwaitWaiting(t, e, id, "nap")
	}

	r := e.waitRun(withDefault, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
	require.JSONEq(t, `{"got": {"v": "early"}}`, stJSON(t, r.Output))
	h := e.history(withDefault)
	require.Equal(t, 1, countHistory(h, "step_succeeded", "w"), "%v", historyKeys(h))
	require.Equal(t, "lookback", wtHistoryData(t, h, "step_succeeded", "w")["by"])
	require.Len(t, wtCallsOf(rec, withDefault), 1)

	// Without look-back (or with one too short) the early event is not seen.
	for _, id := range []uuid.UUID{zero, short} {
		wtAwaitWaiting(t, e, id, "w")
		wtAssertStillWaiting(t, e, id, "w", 300*time.Millisecond)
	}
	for key, id := range map[string]uuid.UUID{"k-zero": zero, "k-short": short} {
		status, pub := wtPublish(t, e, "lb.ready", key, map[string]any{"v": "late"}, "")
		require.Equal(t, http.StatusCreated, status)
		require.Equal(t, 1, pub.Resumed)
		r := e.waitRun(id, 10*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
		require.JSONEq(t, `{"got": {"v": "late"}}`, stJSON(t, r.Output))
	}
}

// TestEventAnyAll: `any` resumes on the first matching event with its
// payload, and later ones change nothing; `all` waits for every event,
// keeps the first payload of each name, and its output maps payloads by
// event name.
func TestEventAnyAll(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	events := []any{
		map[string]any{"event": "a.done", "key": "${ input.id }"},
		map[string]any{"event": "b.done", "key": "${ 'b-' + input.id }"},
	}
	for _, mode := range []string{"any", "all"} {
		e.createWorkflow(stDef(t, map[string]any{"name": "of-" + mode, "steps": []any{
			map[string]any{"name": "w", "type": "wait_for_event", mode: events, "lookback": "0s"},
			map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"got": "${ steps.w.output }"}},
		}}))
	}

	anyRun := e.startRun("of-any", map[string]any{"id": "1"})
	allRun := e.startRun("of-all", map[string]any{"id": "2"})
	ra := wtAwaitWaiting(t, e, anyRun, "w")
	w, _ := wtWaitingFor(ra, "w")
	require.NotNil(t, w.Events)
	require.JSONEq(t, `[{"event": "a.done", "key": "1"}, {"event": "b.done", "key": "b-1"}]`, stJSON(t, *w.Events))
	wtAwaitWaiting(t, e, allRun, "w")

	// any: the second event (by definition order) arrives first and wins.
	status, pub := wtPublish(t, e, "b.done", "b-1", map[string]any{"from": "b"}, "")
	require.Equal(t, http.StatusCreated, status)
	require.Equal(t, 1, pub.Resumed)
	r := e.waitRun(anyRun, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
	require.JSONEq(t, `{"got": {"from": "b"}}`, stJSON(t, r.Output))
	_, pub = wtPublish(t, e, "a.done", "1", map[string]any{"from": "a"}, "")
	require.Zero(t, pub.Resumed, "a wait that any resumed takes no more events")
	require.JSONEq(t, `{"from": "b"}`, stJSON(t, stStepNamed(t, e.steps(anyRun), "w").Output))

	// all: one event is not enough; the run waits for the other only.
	_, pub = wtPublish(t, e, "a.done", "2", map[string]any{"from": "a", "n": 1}, "")
	require.Equal(t, 1, pub.Resumed, "the event matched a wait of all")
	wtAssertStillWaiting(t, e, allRun, "w", 200*time.Millisecond)
	rw, _ := wtWaitingFor(e.run(allRun), "w")
	require.NotNil(t, rw.Events)
	require.JSONEq(t, `[{"event": "b.done", "key": "b-2"}]`, stJSON(t, *rw.Events), "the run waits for the events still missing")
	_, pub = wtPublish(t, e, "a.done", "2", map[string]any{"from": "a", "n": 2}, "")
	require.Zero(t, pub.Resumed, "a.done arrived already")
	wtAssertStillWaiting(t, e, allRun, "w", 0)
	_, pub = wtPublish(t, e, "b.done", "b-2", map[string]any{"from": "b"}, "")
	require.Equal(t, 1, pub.Resumed)
	r = e.waitRun(allRun, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
	require.JSONEq(t, `{"got": {"a.done": {"from": "a", "n": 1}, "b.done": {"from": "b"}}}`, stJSON(t, r.Output))

	for _, id := range []uuid.UUID{anyRun, allRun} {
		keys := countKeys(historyKeys(e.history(id)))
		require.Equal(t, 1, keys["step_succeeded w#1"], "%v", keys)
		require.Len(t, wtCallsOf(rec, id), 1)
	}
}

// TestWaitTimeouts runs every timeout policy of both waits that have one:
// on_timeout fail ends the run timed_out with the step timed out; continue
// runs the next step with the wait's output {"timed_out": true}. An event
// or an input after the timeout changes nothing.
func TestWaitTimeouts(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	waits := map[string]map[string]any{
		"event": {"type": "wait_for_event", "event": "never", "key": "${ input.k }"},
		"input": {"type": "wait_for_input", "kind": "text", "prompt": "Say something"},
	}
	runs := map[string]uuid.UUID{}
	for kind, w := range waits {
		for _, policy := range []string{"fail", "continue"} {
			step := map[string]any{"name": "w", "timeout": "1s", "on_timeout": policy}
			for k, v := range w {
				step[k] = v
			}
			name := kind + "-" + policy
			e.createWorkflow(stDef(t, map[string]any{"name": name, "steps": []any{
				step,
				map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"w": "${ steps.w.output }"}},
			}}))
			runs[name] = e.startRun(name, map[string]any{"k": name})
		}
	}

	for name, id := range runs {
		r := e.waitRun(id, 15*time.Second)
		h := e.history(id)
		s := stStepNamed(t, e.steps(id), "w")
		require.NotNil(t, s.StartedAt)
		require.NotNil(t, s.Deadline)
		require.InDelta(t, 1000, s.Deadline.Sub(*s.StartedAt).Milliseconds(), 50, "%s: the deadline is the timeout after the wait began", name)
		require.NotNil(t, s.FinishedAt, name)
		require.False(t, s.FinishedAt.Before(*s.Deadline), "%s: the wait ended at %s, before its deadline %s", name, s.FinishedAt, s.Deadline)
		require.Equal(t, 1, countHistory(h, "step_timed_out", "w"), "%s: %v", name, historyKeys(h))
		if strings.HasSuffix(name, "-fail") {
			require.Equal(t, client.RunStatus("timed_out"), r.Status, "%s: %s", name, runErrorText(r))
			require.NotNil(t, r.Error)
			require.Equal(t, "w", *r.Error.Step)
			require.Equal(t, "wait_timed_out", *r.Error.Code)
			require.Equal(t, client.StepExecutionStatus("timed_out"), s.Status, name)
			require.Equal(t, []string{"timed_out"}, attemptStatuses(s), name)
			require.Zero(t, countHistory(h, "step_succeeded", "w"), "%s: %v", name, historyKeys(h))
			require.Equal(t, 1, countHistory(h, "run_timed_out", ""), "%s: %v", name, historyKeys(h))
			require.Empty(t, wtCallsOf(rec, id), "%s: the step after a failed wait must not run", name)
		} else {
			require.Equal(t, client.RunStatus("succeeded"), r.Status, "%s: %s", name, runErrorText(r))
			require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status, name)
			require.JSONEq(t, `{"timed_out": true}`, stJSON(t, s.Output), name)
			require.Equal(t, 1, countHistory(h, "step_succeeded", "w"), "%s: %v", name, historyKeys(h))
			require.Equal(t, true, wtHistoryData(t, h, "step_succeeded", "w")["timed_out"], name)
			calls := wtCallsOf(rec, id)
			require.Len(t, calls, 1, name)
			require.JSONEq(t, `{"w": {"timed_out": true}}`, string(calls[0].Body.Input), name)
		}
	}

	// Too late: the event resumes nothing, the input is gone.
	for _, name := range []string{"event-fail", "event-continue"} {
		status, pub := wtPublish(t, e, "never", name, nil, "")
		require.Equal(t, http.StatusCreated, status)
		require.Zero(t, pub.Resumed, name)
	}
	res := wtInput(t, e, runs["input-fail"], "w", "too late", "", "")
	require.Equal(t, http.StatusGone, res.StatusCode(), string(res.Body))
	require.Equal(t, client.RunStatus("timed_out"), e.run(runs["input-fail"]).Status)
}

// TestInputAfterContinuedTimeoutIsGone gives input to a wait_for_input step
// whose timeout passed with on_timeout continue: the inputs endpoint
// promises 410 for "one whose timeout passed", and the step's output must
// keep saying it timed out.
func TestInputAfterContinuedTimeoutIsGone(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	gate := newStGate(map[string]any{"output": "done"})
	srv, _ := stServer(t, gate.handle)
	t.Cleanup(gate.open)
	e.createWorkflow(stDef(t, map[string]any{"name": "late-input", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_input", "kind": "text", "timeout": "300ms", "on_timeout": "continue"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next"},
	}}))
	id := e.startRun("late-input", nil)
	gate.await(t, 10*time.Second) // the wait timed out and the next step runs

	res := wtInput(t, e, id, "w", "too late", "", "")
	require.Equal(t, http.StatusGone, res.StatusCode(), "input to a step whose timeout passed (on_timeout continue): %s", res.Body)
	require.JSONEq(t, `{"timed_out": true}`, stJSON(t, stStepNamed(t, e.steps(id), "w").Output))

	gate.open()
	r := e.waitRun(id, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status)
	res = wtInput(t, e, id, "w", "too late", "", "")
	require.Equal(t, http.StatusGone, res.StatusCode(), "input to a step whose timeout passed, run over: %s", res.Body)
}

// TestInputValidation gives every kind of wait_for_input invalid input
// through POST /v1/runs/{id}/inputs/{step} — 422 with the problems under
// /value, the run still waiting — then valid input (200, the data reaching
// the next step), then a second input (409). A rejected approval fails the
// run, or continues it with on_reject continue.
func TestInputValidation(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	schema := map[string]any{
		"type":                 "object",
		"required":             []any{"address", "qty"},
		"additionalProperties": false,
		"properties": map[string]any{
			"address": map[string]any{"type": "string", "minLength": 3},
			"qty":     map[string]any{"type": "integer", "minimum": 1},
			"email":   map[string]any{"type": "string", "format": "email"},
		},
	}
	questions := map[string]map[string]any{
		"approval":        {"kind": "approval", "prompt": "Ship it?"},
		"approval-reject": {"kind": "approval", "prompt": "Ship it?", "on_reject": "continue"},
		"choice":          {"kind": "choice", "prompt": "Colour?", "options": []any{"red", "green", "blue"}},
		"text":            {"kind": "text", "prompt": "Why?"},
		"form":            {"kind": "form", "prompt": "Shipping details", "schema": schema},
	}
	runs := map[string]uuid.UUID{}
	for name, q := range questions {
		step := map[string]any{"name": "q", "type": "wait_for_input", "timeout": "1m"}
		for k, v := range q {
			step[k] = v
		}
		e.createWorkflow(stDef(t, map[string]any{"name": name, "steps": []any{
			step,
			map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"answer": "${ steps.q.output }"}},
		}}))
		runs[name] = e.startRun(name, nil)
	}
	// A second approval run, rejected with the default on_reject (fail).
	runs["approval-fail"] = e.startRun("approval", nil)

	invalid := map[string][]struct {
		value any
		paths []string // exactly, when set; else all under /value
	}{
		"approval":      {{"yes", []string{"/value"}}, {1, []string{"/value"}}, {nil, []string{"/value"}}, {map[string]any{"approved": true}, []string{"/value"}}},
		"approval-fail": {{"false", []string{"/value"}}},
		"choice":        {{"purple", []string{"/value"}}, {"Red", []string{"/value"}}, {3, []string{"/value"}}, {[]any{"red"}, []string{"/value"}}},
		"text":          {{42, []string{"/value"}}, {true, []string{"/value"}}, {map[string]any{"a": "b"}, []string{"/value"}}, {nil, []string{"/value"}}},
		"form": {
			{"not an object", nil},
			{map[string]any{"qty": 0}, nil},
			{map[string]any{"address": 5, "qty": 2}, nil},
			{map[string]any{"address": "Main St 1", "qty": 2, "email": "not-an-email"}, nil},
			{map[string]any{"address": "Main St 1", "qty": 2, "extra": true}, nil},
			{map[string]any{"address": "Main St 1", "qty": 1.5}, nil},
		},
	}
	for name, cases := range invalid {
		id := runs[name]
		wtAwaitWaiting(t, e, id, "q")
		for _, c := range cases {
			res := wtInput(t, e, id, "q", c.value, "mallory", "")
			require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), "%s: input %s: %s", name, stJSON(t, c.value), res.Body)
			require.Equal(t, "application/problem+json", res.HTTPResponse.Header.Get("Content-Type"))
			paths := wtProblemPaths(t, res.Body)
			require.NotEmpty(t, paths, "%s: %s", name, res.Body)
			if c.paths != nil {
				require.Equal(t, c.paths, paths, "%s: %s", name, res.Body)
			}
			for _, p := range paths {
				require.True(t, p == "/value" || strings.HasPrefix(p, "/value/"), "%s: problem path %q is not under /value: %s", name, p, res.Body)
			}
		}
		wtAssertStillWaiting(t, e, id, "q", 0)
	}

	// The form's problems say where they are.
	formPaths := func(v any) []string {
		res := wtInput(t, e, runs["form"], "q", v, "", "")
		require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), string(res.Body))
		return wtProblemPaths(t, res.Body)
	}
	require.Contains(t, formPaths(map[string]any{"address": 5, "qty": 2}), "/value/address")
	require.Contains(t, formPaths(map[string]any{"address": "Main St 1", "qty": 0}), "/value/qty")
	require.Contains(t, formPaths(map[string]any{"address": "Main St 1", "qty": 2, "email": "nope"}), "/value/email", "format assertions are on")
	both := formPaths(map[string]any{"address": "M", "qty": -1})
	require.Contains(t, both, "/value/address", "every problem is listed: %v", both)
	require.Contains(t, both, "/value/qty", "every problem is listed: %v", both)

	// Valid input: 200, the run goes on with the answer.
	valid := map[string]struct {
		value any
		want  string // the step's output
	}{
		"approval":        {true, `{"value": true, "approved": true, "by": "bob", "comment": "fine"}`},
		"approval-reject": {false, `{"value": false, "approved": false, "by": "bob", "comment": "fine"}`},
		"choice":          {"green", `{"value": "green", "by": "bob", "comment": "fine"}`},
		"text":            {"because ünïcode", `{"value": "because ünïcode", "by": "bob", "comment": "fine"}`},
		"form": {map[string]any{"address": "Main St 1", "qty": 2, "email": "a@example.com"},
			`{"value": {"address": "Main St 1", "qty": 2, "email": "a@example.com"}, "by": "bob", "comment": "fine"}`},
	}
	for name, v := range valid {
		id := runs[name]
		wtAwaitWaiting(t, e, id, "q")
		res := wtInput(t, e, id, "q", v.value, "bob", "fine")
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s: %s", name, res.Body)
		require.Equal(t, "succeeded", res.JSON200.Status, name)
		r := e.waitRun(id, 10*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, "%s: %s", name, runErrorText(r))
		require.JSONEq(t, v.want, stJSON(t, stStepNamed(t, e.steps(id), "q").Output), name)
		calls := wtCallsOf(rec, id)
		require.Len(t, calls, 1, name)
		require.JSONEq(t, `{"answer": `+v.want+`}`, string(calls[0].Body.Input), name)

		// A second input: 409, nothing changes.
		res = wtInput(t, e, id, "q", v.value, "eve", "")
		require.Equal(t, http.StatusConflict, res.StatusCode(), "%s: second input: %s", name, res.Body)
		h := e.history(id)
		require.Equal(t, 1, countHistory(h, "step_succeeded", "q"), "%s: %v", name, historyKeys(h))
	}

	// A rejected approval (on_reject fail by default) fails the run.
	id := runs["approval-fail"]
	res := wtInput(t, e, id, "q", false, "carol", "not like this")
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, "failed", res.JSON200.Status)
	r := e.waitRun(id, 10*time.Second)
	require.Equal(t, client.RunStatus("failed"), r.Status)
	require.Contains(t, runErrorText(r), "rejected")
	require.Equal(t, "q", *r.Error.Step)
	s := stStepNamed(t, e.steps(id), "q")
	require.Equal(t, client.StepExecutionStatus("failed"), s.Status)
	require.Contains(t, stJSON(t, s.Error), "carol", "the step's error keeps who rejected it")
	require.Empty(t, wtCallsOf(rec, id), "the step after a rejected approval must not run")
	h := e.history(id)
	require.Equal(t, 1, countHistory(h, "step_failed", "q"), "%v", historyKeys(h))
	require.Equal(t, 1, countHistory(h, "run_failed", ""), "%v", historyKeys(h))
	res = wtInput(t, e, id, "q", true, "carol", "")
	require.Equal(t, http.StatusConflict, res.StatusCode(), "input after the rejection: %s", res.Body)

	// Input for a step that does not exist, a run that does not exist, or a
	// step that takes no input.
	res = wtInput(t, e, runs["text"], "nope", "x", "", "")
	require.Equal(t, http.StatusNotFound, res.StatusCode(), string(res.Body))
	res = wtInput(t, e, uuid.New(), "q", "x", "", "")
	require.Equal(t, http.StatusNotFound, res.StatusCode(), string(res.Body))
	e.createWorkflow(stDef(t, map[string]any{"name": "not-input", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "x", "key": "${ 'k' }", "lookback": "0s"},
	}}))
	ev := e.startRun("not-input", nil)
	wtAwaitWaiting(t, e, ev, "w")
	res = wtInput(t, e, ev, "w", true, "", "")
	require.Equal(t, http.StatusConflict, res.StatusCode(), "input for an event wait: %s", res.Body)
	wtAssertStillWaiting(t, e, ev, "w", 0)
}

// TestWaitingForVisibility checks what a waiting run shows: the waiting
// step, its deadline and, for events, their names and keys; for input, the
// question. GET /v1/runs?status=waiting lists the waiting runs; a
// cancelled one leaves the list and takes no event.
func TestWaitingForVisibility(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	schema := map[string]any{"type": "object", "required": []any{"address"}, "properties": map[string]any{"address": map[string]any{"type": "string"}}}
	e.createWorkflow(stDef(t, map[string]any{"name": "vis", "steps": []any{
		map[string]any{"name": "nap", "type": "sleep", "duration": "1m"},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "vis-event", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "timeout": "10m", "lookback": "0s", "all": []any{
			map[string]any{"event": "x.a", "key": "${ input.id }"},
			map[string]any{"event": "x.b", "key": "${ 'k-' + input.id }"},
		}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "vis-choice", "steps": []any{
		map[string]any{"name": "pick", "type": "wait_for_input", "kind": "choice", "prompt": "Pick one", "options": []any{"a", "b"}, "timeout": "1h"},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "vis-form", "steps": []any{
		map[string]any{"name": "fill", "type": "wait_for_input", "kind": "form", "prompt": "Shipping details", "schema": schema},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "vis-done", "steps": []any{
		map[string]any{"name": "nap", "type": "sleep", "duration": "1ms"},
	}}))

	begin := time.Now()
	sleeping := e.startRun("vis", nil)
	event := e.startRun("vis-event", map[string]any{"id": "42"})
	choice := e.startRun("vis-choice", nil)
	form := e.startRun("vis-form", nil)
	done := e.startRun("vis-done", nil)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(done, 10*time.Second).Status)

	check := func(id uuid.UUID, step, typ string, timeout time.Duration) client.WaitingFor {
		t.Helper()
		r := wtAwaitWaiting(t, e, id, step)
		require.Len(t, *r.WaitingFor, 1, stJSON(t, r.WaitingFor))
		w := (*r.WaitingFor)[0]
		require.Equal(t, step, w.Step)
		require.Equal(t, typ, w.Type)
		require.NotNil(t, w.Deadline, "a waiting step shows its deadline")
		require.WithinDuration(t, begin.Add(timeout), *w.Deadline, 10*time.Second)
		require.Equal(t, time.UTC, w.Deadline.Location(), "timestamps are UTC")
		return w
	}
	w := check(sleeping, "nap", "sleep", time.Minute)
	require.Nil(t, w.Events)
	require.Nil(t, w.Question)
	require.Nil(t, w.CallbackUrl, "only a wait for a person has a callback URL")
	w = check(event, "w", "wait_for_event", 10*time.Minute)
	require.NotNil(t, w.Events)
	require.JSONEq(t, `[{"event": "x.a", "key": "42"}, {"event": "x.b", "key": "k-42"}]`, stJSON(t, *w.Events))
	require.Nil(t, w.Question)
	require.Nil(t, w.CallbackUrl, "only a wait for a person has a callback URL")
	w = check(choice, "pick", "wait_for_input", time.Hour)
	require.Nil(t, w.Events)
	require.NotNil(t, w.Question)
	require.JSONEq(t, `{"kind": "choice", "prompt": "Pick one", "options": ["a", "b"]}`, stJSON(t, w.Question))
	require.NotNil(t, w.CallbackUrl, "a wait for a person shows its callback URL")
	require.True(t, strings.HasPrefix(*w.CallbackUrl, e.apiURL+"/v1/callbacks/"), *w.CallbackUrl)
	w = check(form, "fill", "wait_for_input", orchestratorDefaultWaitTimeout)
	require.NotNil(t, w.Question)
	require.JSONEq(t, stJSON(t, map[string]any{"kind": "form", "prompt": "Shipping details", "schema": schema}), stJSON(t, w.Question))

	// A run that does not wait shows nothing of the kind.
	require.Nil(t, e.run(done).WaitingFor)

	list := func(statuses ...client.RunStatus) []uuid.UUID {
		t.Helper()
		limit := 100
		res, err := e.client.ListRunsWithResponse(context.Background(), &client.ListRunsParams{Status: &statuses, Limit: &limit})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
		var ids []uuid.UUID
		for _, r := range res.JSON200.Items {
			if slices.Contains(statuses, r.Status) {
				ids = append(ids, r.Id)
			} else {
				t.Fatalf("run %s is %s, listed under %v", r.Id, r.Status, statuses)
			}
		}
		return ids
	}
	require.ElementsMatch(t, []uuid.UUID{sleeping, event, choice, form}, list("waiting"))
	require.ElementsMatch(t, []uuid.UUID{done}, list("succeeded"))

	// Cancelled: no longer waiting, no longer resumed by its events.
	res, err := e.client.CancelRunWithResponse(context.Background(), event, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.ElementsMatch(t, []uuid.UUID{sleeping, choice, form}, list("waiting"))
	_, pub := wtPublish(t, e, "x.a", "42", nil, "")
	require.Zero(t, pub.Resumed, "a cancelled run's waits are closed")
	require.Equal(t, client.RunStatus("cancelled"), e.run(event).Status)
	require.Nil(t, e.run(event).WaitingFor)
}

// orchestratorDefaultWaitTimeout is the engine's default wait timeout
// (DURABLE_WAIT_TIMEOUT), which a wait without a timeout gets.
const orchestratorDefaultWaitTimeout = 7 * 24 * time.Hour

// TestEventThousandRunsDistinctKeys: 1,000 runs wait on distinct keys;
// 1,000 events published concurrently resume each exactly once, with two
// workers: every publish answers resumed=1, every run succeeds, each wait
// has one step_succeeded, and each next step got its own event's payload.
func TestEventThousandRunsDistinctKeys(t *testing.T) {
	t.Parallel()
	const (
		runs       = 1000
		publishers = 20
	)
	var mu sync.Mutex
	got := map[uuid.UUID][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec recorder
		c := rec.readStep(t, r)
		var in struct {
			Key string `json:"key"`
			N   string `json:"n"`
		}
		_ = json.Unmarshal(c.Body.Input, &in)
		mu.Lock()
		got[c.Body.RunID] = append(got[c.Body.RunID], in.Key+"="+in.N)
		mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"output": in.N})
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(stDef(t, map[string]any{"name": "scale", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "scale.go", "key": "${ input.key }", "lookback": "0s"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"key": "${ input.key }", "n": "${ steps.w.output.n }"}},
	}}))
	e.startWorker()
	e.startWorker()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	ids := make([]uuid.UUID, runs)
	errs := make(chan error, runs)
	parallel := func(fn func(i int) error) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := fn(i); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := range runs {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	key := func(i int) string { return fmt.Sprintf("key-%04d", i) }
	noErrors := func() {
		t.Helper()
		if len(errs) > 0 {
			require.NoError(t, <-errs, "and %d more errors", len(errs))
		}
	}
	parallel(func(i int) error {
		id, err := startRunErr(ctx, e.client, "scale", map[string]any{"key": key(i)})
		ids[i] = id
		return err
	})
	noErrors()
	started := time.Since(begin)

	for dbCount(t, db, `SELECT count(*) FROM waits WHERE status = 'open'`) < runs {
		require.NoError(t, ctx.Err(), "the runs did not all wait")
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM runs WHERE status = 'waiting'`))
	waiting := time.Since(begin)

	var resumed [runs]int
	parallel(func(i int) error {
		status, pub, err := wtPublishErr(ctx, e.client, client.PublishEventRequest{
			Name: "scale.go", Key: key(i), Payload: map[string]any{"n": fmt.Sprint(i)}, Id: stPtr(fmt.Sprintf("scale-%d", i)),
		})
		if err != nil {
			return err
		}
		if status != http.StatusCreated || pub.Duplicate {
			return fmt.Errorf("publish %d: %d duplicate=%t", i, status, pub.Duplicate)
		}
		resumed[i] = pub.Resumed
		return nil
	})
	noErrors()
	published := time.Since(begin)
	for i, n := range resumed {
		require.Equal(t, 1, n, "event %d resumed %d waits", i, n)
	}

	for dbCount(t, db, `SELECT count(*) FROM runs WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled')`) < runs {
		require.NoError(t, ctx.Err(), "the runs did not all finish")
		time.Sleep(50 * time.Millisecond)
	}
	finished := time.Since(begin)

	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM runs WHERE status = 'succeeded'`))
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'step_succeeded' AND step_key = 'w'`))
	require.Equal(t, runs, dbCount(t, db, `SELECT count(DISTINCT run_id) FROM history_events WHERE type = 'step_succeeded' AND step_key = 'w'`))
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'step_succeeded' AND step_key = 'next'`))
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM waits WHERE status = 'resolved'`))
	require.Zero(t, dbCount(t, db, `SELECT count(*) FROM waits WHERE status <> 'resolved'`))
	require.Zero(t, dbCount(t, db, `SELECT count(*) FROM work_items`))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, runs)
	for i, id := range ids {
		require.Equal(t, []string{key(i) + "=" + fmt.Sprint(i)}, got[id], "run %d", i)
	}
	t.Logf("%d runs started in %s, all waiting at %s, %d events published by %s (%.0f/s), all succeeded at %s",
		runs, started.Round(time.Millisecond), waiting.Round(time.Millisecond), runs, published.Round(time.Millisecond),
		float64(runs)/(published-waiting).Seconds(), finished.Round(time.Millisecond))
}

// wtRace is what one iteration of a wait-versus-timeout race observed.
type wtRace struct {
	i       int
	offset  time.Duration // when the event or input was sent, from the deadline
	run     client.Run
	won     bool // the event resumed the step (resumed=1) or the input was taken (200)
	answer  int  // resumed, or the input's HTTP status
	steps   []client.StepExecution
	history []client.HistoryEvent
	err     error
}

func (o wtRace) String() string {
	return fmt.Sprintf("iteration %d: offset %s, answer %d, run %s %s, history %v", o.i, o.offset, o.answer, o.run.Id, o.run.Status, historyKeys(o.history))
}

// wtRaceTimeout runs iterations of a race between a wait's timeout and fire
// (the event or the input, sent at the step's deadline plus an offset from
// -50 to +50 ms) and checks that exactly one side won each time.
func wtRaceTimeout(t *testing.T, workflow string, def string, fire func(ctx context.Context, c *client.ClientWithResponses, i int, id uuid.UUID) (bool, int, error)) {
	t.Helper()
	const (
		iterations = 30
		earliest   = -50 * time.Millisecond
		latest     = 50 * time.Millisecond
	)
	srv, _ := wtEcho(t)
	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(def, srv.URL))
	e.startWorker()
	e.startWorker()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	out := make([]wtRace, iterations)
	raceEach(iterations, func(i int) {
		o := wtRace{i: i, offset: earliest + time.Duration(i)*(latest-earliest)/(iterations-1)}
		defer func() { out[i] = o }()
		id, err := startRunErr(ctx, e.client, workflow, map[string]any{"k": fmt.Sprintf("race-%d", i)})
		if o.err = err; err != nil {
			return
		}
		deadline, err := wtStepDeadline(ctx, e.client, id, "w")
		if o.err = err; err != nil {
			return
		}
		time.Sleep(time.Until(deadline.Add(o.offset)))
		if o.won, o.answer, o.err = fire(ctx, e.client, i, id); o.err != nil {
			return
		}
		if o.run, o.err = pollRun(ctx, e.client, id, 15*time.Second, terminalRun); o.err != nil {
			return
		}
		if o.steps, o.err = fetchSteps(ctx, e.client, id); o.err != nil {
			return
		}
		o.history, o.err = fetchHistory(ctx, e.client, id)
	})

	var won, lost int
	var lateWins []string
	for _, o := range out {
		require.NoError(t, o.err, "iteration %d", o.i)
		w, ok := findStep(o.steps, "w")
		require.True(t, ok, "%s", o)
		succeeded := countHistory(o.history, "step_succeeded", "w")
		timedOut := countHistory(o.history, "step_timed_out", "w")
		require.Equal(t, 1, succeeded+timedOut, "the step must either succeed or time out, once: %s", o)
		if o.won {
			won++
			require.Equal(t, 1, succeeded, "%s", o)
			require.Zero(t, timedOut, "the event or input won, but the step timed out too: %s", o)
			require.Equal(t, client.StepExecutionStatus("succeeded"), w.Status, "%s", o)
			require.Equal(t, client.RunStatus("succeeded"), o.run.Status, "%s", o)
			require.JSONEq(t, fmt.Sprintf(`{"i": %d}`, o.i), stJSON(t, o.run.Output), "%s", o)
			// The deadline is the database's clock on this machine: what is
			// sent after it arrives after it, and must not win.
			require.LessOrEqual(t, o.offset, 5*time.Millisecond, "sent %s after the deadline, yet it won: %s", o.offset, o)
			if o.offset > 0 {
				lateWins = append(lateWins, o.offset.String())
			}
		} else {
			lost++
			require.Equal(t, 1, timedOut, "%s", o)
			require.Zero(t, succeeded, "the timeout won, but the step succeeded too: %s", o)
			require.Equal(t, client.StepExecutionStatus("timed_out"), w.Status, "%s", o)
			require.Equal(t, client.RunStatus("timed_out"), o.run.Status, "%s", o)
		}
	}
	t.Logf("%d iterations in %s: the event/input won %d, the timeout won %d; won though sent after the deadline: %v",
		iterations, time.Since(begin).Round(time.Millisecond), won, lost, lateWins)
}

// TestEventRacesTimeout publishes the event a wait_for_event waits for at
// about its 300 ms timeout, 30 times: either the event resumed the step
// (resumed=1, the step succeeded, no step_timed_out) or the timeout won
// (resumed=0, step_timed_out, the run timed_out) — never both, never
// neither.
func TestEventRacesTimeout(t *testing.T) {
	t.Parallel()
	wtRaceTimeout(t, "evrace", `{"name": "evrace", "steps": [
		{"name": "w", "type": "wait_for_event", "event": "race", "key": "${ input.k }", "timeout": "300ms", "on_timeout": "fail"},
		{"name": "next", "type": "call", "url": "%s/next", "input": {"i": "${ steps.w.output.i }"}}]}`,
		func(ctx context.Context, c *client.ClientWithResponses, i int, _ uuid.UUID) (bool, int, error) {
			status, pub, err := wtPublishErr(ctx, c, client.PublishEventRequest{Name: "race", Key: fmt.Sprintf("race-%d", i), Payload: map[string]any{"i": i}})
			if err != nil {
				return false, 0, err
			}
			if status != http.StatusCreated || pub.Resumed > 1 {
				return false, pub.Resumed, fmt.Errorf("iteration %d: publish answered %d, resumed %d", i, status, pub.Resumed)
			}
			return pub.Resumed == 1, pub.Resumed, nil
		})
}

// TestInputRacesTimeout gives a wait_for_input its input at about its
// 300 ms timeout, 30 times: either the input is taken (200, the step
// succeeded) or it is refused as gone (410, the step timed out, the run
// timed_out) — never both.
func TestInputRacesTimeout(t *testing.T) {
	t.Parallel()
	wtRaceTimeout(t, "inrace", `{"name": "inrace", "steps": [
		{"name": "w", "type": "wait_for_input", "kind": "form", "schema": {"type": "object"}, "timeout": "300ms", "on_timeout": "fail"},
		{"name": "next", "type": "call", "url": "%s/next", "input": {"i": "${ steps.w.output.value.i }"}}]}`,
		func(ctx context.Context, c *client.ClientWithResponses, i int, id uuid.UUID) (bool, int, error) {
			res, err := c.GiveInputWithResponse(ctx, id, "w", client.InputRequest{Value: map[string]any{"i": i}})
			if err != nil {
				return false, 0, err
			}
			switch res.StatusCode() {
			case http.StatusOK:
				return true, http.StatusOK, nil
			case http.StatusGone:
				return false, http.StatusGone, nil
			}
			return false, res.StatusCode(), fmt.Errorf("iteration %d: input answered %d: %s", i, res.StatusCode(), res.Body)
		})
}

// wtCallbackToken returns the token of the callback URL a waiting run
// shows for its input step.
func wtCallbackToken(t *testing.T, e *env, r client.Run, step string) string {
	t.Helper()
	w, ok := wtWaitingFor(r, step)
	require.True(t, ok, "run %s does not wait on %s", r.Id, step)
	require.NotNil(t, w.CallbackUrl, "a wait for a person shows its callback URL: %s", stJSON(t, w))
	return stToken(t, e, *w.CallbackUrl)
}

// TestInputThroughCallbackURL answers wait_for_input steps through the
// callback URL a waiting run shows: GET describes the question (kind,
// prompt, options or schema, deadline); POST validates the input like the
// inputs endpoint (422 under /value, the run still waiting), takes a valid
// one with by and comment, and refuses a second one (409) by either way.
// After a timeout, the URL is gone (410).
func TestInputThroughCallbackURL(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := wtEcho(t)
	schema := map[string]any{"type": "object", "required": []any{"address"}, "properties": map[string]any{"address": map[string]any{"type": "string"}}}
	e.createWorkflow(stDef(t, map[string]any{"name": "cb-choice", "steps": []any{
		map[string]any{"name": "pick", "type": "wait_for_input", "kind": "choice", "prompt": "Pick one", "options": []any{"a", "b"}, "timeout": "1h"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"answer": "${ steps.pick.output }"}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "cb-form", "steps": []any{
		map[string]any{"name": "fill", "type": "wait_for_input", "kind": "form", "prompt": "Shipping details", "schema": schema},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "cb-late", "steps": []any{
		map[string]any{"name": "ok", "type": "wait_for_input", "kind": "approval", "timeout": "500ms"},
	}}))
	choice := e.startRun("cb-choice", nil)
	form := e.startRun("cb-form", nil)
	late := e.startRun("cb-late", nil)

	// GET describes the question.
	r := wtAwaitWaiting(t, e, choice, "pick")
	token := wtCallbackToken(t, e, r, "pick")
	w, _ := wtWaitingFor(r, "pick")
	d := stDescribe(t, e, token)
	require.Equal(t, http.StatusOK, d.StatusCode(), string(d.Body))
	require.Equal(t, choice, d.JSON200.RunId)
	require.Equal(t, "pick", d.JSON200.Step)
	require.Equal(t, "wait_for_input", d.JSON200.Type)
	require.Equal(t, "waiting", d.JSON200.Status)
	require.Equal(t, "cb-choice", d.JSON200.Workflow.Name)
	require.NotNil(t, d.JSON200.Deadline)
	require.True(t, w.Deadline.Equal(*d.JSON200.Deadline), "the deadline: %s and %s", w.Deadline, d.JSON200.Deadline)
	require.NotNil(t, d.JSON200.Question)
	require.JSONEq(t, `{"kind": "choice", "prompt": "Pick one", "options": ["a", "b"]}`, stJSON(t, d.JSON200.Question))
	require.Equal(t, token, wtCallbackToken(t, e, e.run(choice), "pick"), "the URL stays the same")

	rf := wtAwaitWaiting(t, e, form, "fill")
	formToken := wtCallbackToken(t, e, rf, "fill")
	require.NotEqual(t, token, formToken)
	d = stDescribe(t, e, formToken)
	require.Equal(t, http.StatusOK, d.StatusCode(), string(d.Body))
	require.JSONEq(t, stJSON(t, map[string]any{"kind": "form", "prompt": "Shipping details", "schema": schema}), stJSON(t, d.JSON200.Question))

	// POST validates like the inputs endpoint.
	for _, v := range []any{"c", 1, nil} {
		res := stCallback(t, e, token, client.CallbackRequest{Value: v, By: stPtr("mallory")})
		require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), "value %v: %s", v, res.Body)
		require.Equal(t, []string{"/value"}, wtProblemPaths(t, res.Body))
	}
	res := stCallback(t, e, formToken, client.CallbackRequest{Value: map[string]any{"address": 7}})
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), string(res.Body))
	require.Contains(t, wtProblemPaths(t, res.Body), "/value/address")
	// A call step's callback body is not an input.
	res = stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "b"})
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), string(res.Body))
	wtAssertStillWaiting(t, e, choice, "pick", 0)
	wtAssertStillWaiting(t, e, form, "fill", 0)
	// A token altered or made up changes nothing.
	for _, bad := range []string{stAlter(token, len(token)-3), stAlter(token, 30), "x"} {
		res := stCallback(t, e, bad, client.CallbackRequest{Value: "a"})
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusNotFound}, res.StatusCode(), string(res.Body))
	}
	wtAssertStillWaiting(t, e, choice, "pick", 0)

	// A valid input: 200; the answer reaches the next step.
	res = stCallback(t, e, token, client.CallbackRequest{Value: "b", By: stPtr("dora"), Comment: stPtr("b is better")})
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, "succeeded", res.JSON200.Status)
	run := e.waitRun(choice, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, runErrorText(run))
	want := `{"value": "b", "by": "dora", "comment": "b is better"}`
	require.JSONEq(t, want, stJSON(t, stStepNamed(t, e.steps(choice), "pick").Output))
	require.Len(t, wtCallsOf(rec, choice), 1)
	require.JSONEq(t, `{"answer": `+want+`}`, string(wtCallsOf(rec, choice)[0].Body.Input))

	// Once only, by either way in.
	res = stCallback(t, e, token, client.CallbackRequest{Value: "a"})
	require.Equal(t, http.StatusConflict, res.StatusCode(), string(res.Body))
	in := wtInput(t, e, choice, "pick", "a", "", "")
	require.Equal(t, http.StatusConflict, in.StatusCode(), string(in.Body))
	in = wtInput(t, e, form, "fill", map[string]any{"address": "Main St 1"}, "erin", "")
	require.Equal(t, http.StatusOK, in.StatusCode(), string(in.Body))
	res = stCallback(t, e, formToken, client.CallbackRequest{Value: map[string]any{"address": "Elm St 2"}})
	require.Equal(t, http.StatusConflict, res.StatusCode(), string(res.Body))
	require.JSONEq(t, `{"value": {"address": "Main St 1"}, "by": "erin"}`, stJSON(t, stStepNamed(t, e.steps(form), "fill").Output))

	// After the timeout, the callback URL is gone.
	lateToken := wtCallbackToken(t, e, wtAwaitWaiting(t, e, late, "ok"), "ok")
	require.Equal(t, client.RunStatus("timed_out"), e.waitRun(late, 10*time.Second).Status)
	res = stCallback(t, e, lateToken, client.CallbackRequest{Value: true})
	require.Equal(t, http.StatusGone, res.StatusCode(), string(res.Body))
}

// TestInputCallbackURLSurvivesSecretRotation rotates the signing secret
// (a new one first, the old one still accepted) while a run waits for a
// person: the callback URL the API shows then must still answer the step,
// as must the URL shown before the rotation.
func TestInputCallbackURLSurvivesSecretRotation(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	e.createWorkflow(stDef(t, map[string]any{"name": "rotate", "steps": []any{
		map[string]any{"name": "ok", "type": "wait_for_input", "kind": "approval", "prompt": "Ship it?"},
	}}))
	id := e.startRun("rotate", nil)
	before := wtCallbackToken(t, e, wtAwaitWaiting(t, e, id, "ok"), "ok")

	newSecret, err := signing.GenerateSecret()
	require.NoError(t, err)
	rotated := e.start(bins.api, "DURABLE_ADDR=127.0.0.1:0", "DURABLE_SIGNING_SECRET="+newSecret+" "+e.secret)
	c, err := client.NewClientWithResponses("http://" + rotated.waitLog(t, "api listening", "addr"))
	require.NoError(t, err)

	res, err := c.DescribeCallbackWithResponse(context.Background(), before)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "the URL shown before the rotation: %s", res.Body)

	got, err := c.GetRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.StatusCode(), string(got.Body))
	w, ok := wtWaitingFor(*got.JSON200, "ok")
	require.True(t, ok)
	require.NotNil(t, w.CallbackUrl)
	after := stToken(t, e, *w.CallbackUrl)
	res, err = c.DescribeCallbackWithResponse(context.Background(), after)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "the URL the API shows after the rotation: %s", res.Body)
	cb, err := c.CompleteCallbackWithResponse(context.Background(), after, client.CallbackRequest{Value: true, By: stPtr("ops")})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, cb.StatusCode(), "the URL the API shows after the rotation: %s", cb.Body)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(id, 10*time.Second).Status)
}

// TestSleepWakesOnTimeWithoutPolling gives the worker a long poll interval
// (3s): a 1s sleep and a 1s wait timeout, each alone in the queue, must
// still end on time — timers are due rows that wake the worker, not
// something it finds by polling.
func TestSleepWakesOnTimeWithoutPolling(t *testing.T) {
	t.Parallel()
	const tolerance = 300 * time.Millisecond
	e := newEnv(t, "DURABLE_POLL_INTERVAL=3s")
	srv, rec := wtEcho(t)
	e.createWorkflow(stDef(t, map[string]any{"name": "ontime-sleep", "steps": []any{
		map[string]any{"name": "nap", "type": "sleep", "duration": "1s"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next"},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "ontime-timeout", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "never", "key": "${ 'k' }", "timeout": "1s", "on_timeout": "continue"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next"},
	}}))
	e.startWorker()
	// Past the worker's start-up (its listener wakes it once on connecting).
	time.Sleep(500 * time.Millisecond)
	// One at a time, so that no other due item wakes the worker.
	for _, c := range [][2]string{{"ontime-sleep", "nap"}, {"ontime-timeout", "w"}} {
		step := c[1]
		id := e.startRun(c[0], nil)
		r := e.waitRun(id, 15*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
		s := stStepNamed(t, e.steps(id), step)
		require.NotNil(t, s.FinishedAt)
		require.NotNil(t, s.Deadline)
		late := s.FinishedAt.Sub(*s.Deadline)
		calls := wtCallsOf(rec, id)
		require.Len(t, calls, 1)
		assert.Less(t, late, tolerance, "%s: the %s step ended %s after its deadline (the poll interval is 3s); history %v", id, step, late, historyKeys(e.history(id)))
		assert.Less(t, calls[0].At.Sub(*s.Deadline), tolerance, "%s: the next step was called %s after the deadline", id, calls[0].At.Sub(*s.Deadline))
	}
}

// TestEventWaitsOnSharedKeys starts 300 runs that wait on three shared
// keys with two workers: every run must begin its wait promptly (no claim
// stalls on the keys' locks), and one event per key resumes its 100 runs,
// each once.
func TestEventWaitsOnSharedKeys(t *testing.T) {
	t.Parallel()
	const runs, keys = 300, 3
	srv, rec := wtEcho(t)
	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(stDef(t, map[string]any{"name": "shared", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "shared.go", "key": "${ input.key }", "lookback": "0s"},
		map[string]any{"name": "next", "type": "call", "url": srv.URL + "/next", "input": map[string]any{"p": "${ steps.w.output }"}},
	}}))
	workers := []*proc{e.startWorker(), e.startWorker()}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]uuid.UUID, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ids[i], errs[i] = startRunErr(ctx, e.client, "shared", map[string]any{"key": fmt.Sprintf("K%d", i%keys)})
			}
		}()
	}
	begin := time.Now()
	for i := range runs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	for {
		n := dbCount(t, db, `SELECT count(*) FROM waits WHERE status = 'open'`)
		if n == runs {
			break
		}
		if time.Since(begin) > 15*time.Second {
			var deadlocks []string
			for _, w := range workers {
				for _, line := range strings.Split(w.output(), "\n") {
					if strings.Contains(line, "deadlock") {
						deadlocks = append(deadlocks, line)
					}
				}
			}
			t.Fatalf("%d of %d runs wait after %s; worker log lines about deadlocks:\n%s", n, runs, time.Since(begin).Round(time.Millisecond), strings.Join(deadlocks, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d runs waiting after %s", runs, time.Since(begin).Round(time.Millisecond))

	for k := range keys {
		status, pub := wtPublish(t, e, "shared.go", fmt.Sprintf("K%d", k), map[string]any{"k": k}, "")
		require.Equal(t, http.StatusCreated, status)
		require.Equal(t, runs/keys, pub.Resumed, "key K%d", k)
	}
	for dbCount(t, db, `SELECT count(*) FROM runs WHERE status = 'succeeded'`) < runs {
		require.NoError(t, ctx.Err(), "the runs did not all succeed")
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'step_succeeded' AND step_key = 'w'`))
	require.Equal(t, runs, dbCount(t, db, `SELECT count(DISTINCT run_id) FROM history_events WHERE type = 'step_succeeded' AND step_key = 'w'`))
	for i, id := range ids {
		calls := wtCallsOf(rec, id)
		require.Len(t, calls, 1)
		require.JSONEq(t, fmt.Sprintf(`{"p": {"k": %d}}`, i%keys), string(calls[0].Body.Input))
	}
}

// TestEventLookbackDoesNotReuseConsumedEvent runs two waits for the same
// event name and key one after the other: the event that resumed the first
// must not resume the second from the look-back window — one event resumes
// a run once — so the second waits for an event of its own.
func TestEventLookbackDoesNotReuseConsumedEvent(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	e.createWorkflow(stDef(t, map[string]any{"name": "twice", "steps": []any{
		map[string]any{"name": "first", "type": "wait_for_event", "event": "signed", "key": "${ input.doc }"},
		map[string]any{"name": "second", "type": "wait_for_event", "event": "signed", "key": "${ input.doc }"},
	}}))
	id := e.startRun("twice", map[string]any{"doc": "d-1"})
	wtAwaitWaiting(t, e, id, "first")
	_, pub := wtPublish(t, e, "signed", "d-1", map[string]any{"by": "alice"}, "")
	require.Equal(t, 1, pub.Resumed)
	wtAwaitWaiting(t, e, id, "second")
	wtAssertStillWaiting(t, e, id, "second", 300*time.Millisecond)
	_, pub = wtPublish(t, e, "signed", "d-1", map[string]any{"by": "bob"}, "")
	require.Equal(t, 1, pub.Resumed)
	r := e.waitRun(id, 10*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status)
	require.JSONEq(t, `{"by": "alice"}`, stJSON(t, stStepNamed(t, e.steps(id), "first").Output))
	require.JSONEq(t, `{"by": "bob"}`, stJSON(t, r.Output))
}
