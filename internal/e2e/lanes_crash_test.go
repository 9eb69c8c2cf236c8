package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file SIGKILL a worker while the lanes of a parallel or
// foreach step are in flight: another worker takes the lanes over once the
// leases end, and nothing is done twice — each step execution succeeds
// once, every request for one step execution carries its webhook-id, and
// the block's output has each branch or item exactly once.

// lanesCrashLeaseMargin is the lease margin of the deployments here: with
// the steps' 2s timeout, a dead worker's step is taken over after 3s.
const lanesCrashLeaseMargin = "DURABLE_LEASE_MARGIN=1s"

// lanesSucceededOnce checks that history records step_succeeded exactly once for
// each of keys, and at most once for any key.
func lanesSucceededOnce(t *testing.T, events []client.HistoryEvent, keys ...string) {
	t.Helper()
	n := map[string]int{}
	for _, h := range events {
		if h.Type == "step_succeeded" && h.Step != nil {
			n[*h.Step]++
		}
	}
	for k, c := range n {
		require.Equal(t, 1, c, "step %s succeeded %d times; history %v", k, c, historyKeys(events))
	}
	for _, k := range keys {
		require.Equal(t, 1, n[k], "step %s succeeded %d times; history %v", k, n[k], historyKeys(events))
	}
}

// lanesOneWebhookIDPerKey checks that the calls grouped by step key each carry a
// single webhook-id, and that different keys have different ones.
func lanesOneWebhookIDPerKey(t *testing.T, byKey map[string][]stepCall) {
	t.Helper()
	owner := map[string]string{}
	for key, calls := range byKey {
		require.NotEmpty(t, calls, key)
		id := calls[0].WebhookID
		require.NotEmpty(t, id, "step %s has no webhook-id", key)
		for _, c := range calls {
			require.Equal(t, id, c.WebhookID, "step %s was requested with two webhook-ids (attempts %d and %d)", key, calls[0].Body.Attempt, c.Body.Attempt)
		}
		if other, ok := owner[id]; ok {
			t.Fatalf("steps %s and %s share the webhook-id %s", other, key, id)
		}
		owner[id] = key
	}
}

// TestParallelWorkerKilled kills the worker while two branches of a
// parallel step have a step in flight and the third is at its end: another
// worker finishes the branches, each step once, and the step after the
// block sees all three branches.
func TestParallelWorkerKilled(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	killed := make(chan struct{})
	b1Arrived, c1Arrived, a2Arrived := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var b1Calls, c1Calls, a2Calls atomic.Int32
	// hold keeps a first request in flight until its worker is gone.
	hold := func(r *http.Request, arrived chan struct{}) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-killed:
			// The test ends without having killed the worker.
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch {
		case c.Path == "/b1" && b1Calls.Add(1) == 1:
			hold(r, b1Arrived)
			return
		case c.Path == "/c1" && c1Calls.Add(1) == 1:
			hold(r, c1Arrived)
			return
		case c.Path == "/a2" && a2Calls.Add(1) == 1:
			close(a2Arrived) // answered at once: the worker dies recording it, or soon after
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step, "input": json.RawMessage(c.Body.Input)}})
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(killed) }) }) // before srv.Close

	e := newEnv(t, leanPool, lanesCrashLeaseMargin)
	step := func(name, input string) string {
		return fmt.Sprintf(`{"name": %q, "type": "call", "url": "%s/%s", "timeout": "2s", "input": %s}`, name, srv.URL, name, input)
	}
	branch := func(b string) string {
		return fmt.Sprintf(`{"name": %q, "steps": [%s, %s]}`, b,
			step(b+"1", `{"branch": "`+b+`"}`),
			step(b+"2", `{"branch": "`+b+`", "prev": "${ steps.`+b+`1.output.step }"}`))
	}
	e.createWorkflow(fmt.Sprintf(`{"name": "par-kill", "steps": [
	  {"name": "p", "type": "parallel", "merge": "object", "branches": [%s, %s, %s]},
	  %s]}`, branch("a"), branch("b"), branch("c"), step("final", `{"joined": "${ steps.p.output }"}`)))

	w1 := e.startWorker()
	id := e.startRun("par-kill", map[string]any{})
	for _, ch := range []chan struct{}{b1Arrived, c1Arrived, a2Arrived} {
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("the branches' first requests did not all arrive; calls %d", len(rec.all()))
		}
	}
	w1.kill()
	once.Do(func() { close(killed) })
	killedAt := time.Now()
	e.startWorker()

	r := e.waitRun(id, 40*time.Second)
	events := e.history(id)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s; history %v", runErrorText(r), historyKeys(events))
	t.Logf("the run ended %s after the kill; history %v", time.Since(killedAt).Round(time.Millisecond), historyKeys(events))

	// Each step, lane and the block succeeded exactly once.
	keys := []string{"p", "p[a]", "p[b]", "p[c]", "a1", "a2", "b1", "b2", "c1", "c2", "final"}
	lanesSucceededOnce(t, events, keys...)
	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	want := map[string]string{}
	for _, k := range keys {
		want[k] = "succeeded"
	}
	require.Equal(t, want, status, "step executions")
	for _, k := range []string{"b1", "c1"} {
		st := stepByKey(t, e.steps(id), k)
		as := attemptStatuses(st)
		require.Equal(t, "succeeded", as[len(as)-1], "%s attempts %v", k, as)
		require.Len(t, as, 2, "%s: attempts %v; the killed worker's attempt, then the new worker's", k, as)
	}

	// Every request of one step carried the same webhook-id; the held
	// steps were requested again, the others at most again.
	byKey := map[string][]stepCall{}
	for _, c := range rec.all() {
		byKey[c.Body.Step] = append(byKey[c.Body.Step], c)
	}
	require.Len(t, byKey, 7, "steps requested: %v", laneTestKeys(byKey))
	lanesOneWebhookIDPerKey(t, byKey)
	require.Len(t, byKey["b1"], 2)
	require.Len(t, byKey["c1"], 2)
	require.Len(t, byKey["final"], 1)
	for k, calls := range byKey {
		require.LessOrEqual(t, len(calls), 2, "step %s requested %d times", k, len(calls))
	}

	// The step after the block saw each branch once, with its last output.
	final := byKey["final"][0]
	require.JSONEq(t, `{"joined": {
	  "a": {"step": "a2", "input": {"branch": "a", "prev": "a1"}},
	  "b": {"step": "b2", "input": {"branch": "b", "prev": "b1"}},
	  "c": {"step": "c2", "input": {"branch": "c", "prev": "c1"}}}}`, string(final.Body.Input))
}

// TestParallelWorkerKilledBeforeBranchesBegin kills the worker as soon as
// the second of eight branches has its step in flight, while the worker
// has claimed the other branches' work items and is beginning them one at
// a time (a run's lanes take turns at the run's lock). docs/architecture.md:
// "A worker that dies holds its leases until they end (step timeout plus
// margin)", and DURABLE_LEASE_MARGIN is "how much longer than a step's
// timeout a worker holds its work": every branch must be taken over within
// the steps' timeout plus the margin (3s here), not after the claim's fixed
// 15s lease that a claimed item keeps until its worker begins it.
func TestParallelWorkerKilledBeforeBranchesBegin(t *testing.T) {
	t.Parallel()
	const (
		branches = 8
		lease    = 3 * time.Second // the steps' 2s timeout + the 1s margin
	)
	rec := &recorder{}
	killed := make(chan struct{})
	secondArrived := make(chan struct{}, 1)
	var arrivals atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		if c.Body.Attempt == 1 {
			// The first worker's requests are held until it is gone.
			if arrivals.Add(1) == 2 {
				// The worker that opened the lanes started the first
				// branch itself; the second is one it claimed.
				secondArrived <- struct{}{}
			}
			select {
			case <-r.Context().Done():
				return
			case <-killed:
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": c.Body.Step})
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(killed) }) }) // before srv.Close

	e := newEnv(t, leanPool, lanesCrashLeaseMargin)
	db := assertDB(t, e)
	var bs []string
	want := map[string]any{}
	for i := range branches {
		b := fmt.Sprintf("b%d", i)
		bs = append(bs, fmt.Sprintf(`{"name": %q, "steps": [{"name": "s%d", "type": "call", "url": "%s/s%d", "timeout": "2s"}]}`, b, i, srv.URL, i))
		want[b] = fmt.Sprintf("s%d", i)
	}
	e.createWorkflow(fmt.Sprintf(`{"name": "par-kill-early", "steps": [
	  {"name": "p", "type": "parallel", "branches": [%s]}]}`, strings.Join(bs, ", ")))

	w1 := e.startWorker()
	id := e.startRun("par-kill-early", map[string]any{})
	select {
	case <-secondArrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no branch's step was requested")
	}
	w1.kill()
	once.Do(func() { close(killed) })
	killedAt := time.Now()
	// What the dead worker holds: leases of steps (invoke items, 3s) and
	// of work it claimed but had not begun yet.
	var held []string
	for _, w := range runWorkItems(t, db, id) {
		after := ""
		if w.AfterStep != nil {
			after = " after " + *w.AfterStep
		}
		held = append(held, fmt.Sprintf("%s%s leased=%v due in %s", w.Kind, after, w.Leased, w.DueIn.Round(100*time.Millisecond)))
	}
	e.startWorker()

	r := e.waitRun(id, 40*time.Second)
	took := time.Since(killedAt)
	events := e.history(id)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s; history %v", runErrorText(r), historyKeys(events))
	require.Equal(t, want, r.Output)
	keys := []string{"p"}
	for i := range branches {
		keys = append(keys, fmt.Sprintf("p[b%d]", i), fmt.Sprintf("s%d", i))
	}
	lanesSucceededOnce(t, events, keys...)
	// When did each branch's step start after the kill (attempt 1 by the
	// dead worker, or attempt 2 by the new one), or its lane at all?
	var late []string
	for _, h := range events {
		if h.Type == "step_started" && h.Step != nil && h.Time.Sub(killedAt) > lease+3*time.Second {
			late = append(late, fmt.Sprintf("%s#%d at +%s", *h.Step, *h.Attempt, h.Time.Sub(killedAt).Round(time.Millisecond)))
		}
	}
	require.Empty(t, late, "branches the dead worker had claimed were taken over long after the %s lease (run done %s after the kill); "+
		"work items at the kill:\n%s\nhistory since the kill:\n%s",
		lease, took.Round(time.Millisecond), strings.Join(held, "\n"), lanesTimeline(events, killedAt))
	t.Logf("the run ended %s after the kill:\n%s", took.Round(time.Millisecond), lanesTimeline(events, killedAt))
}

// TestForeachWorkerKilled kills the worker in the middle of a concurrent
// foreach, with item steps in flight: another worker finishes the items,
// never more at once than the concurrency allows, each item step once, and
// the results hold each item exactly once, in item order.
func TestForeachWorkerKilled(t *testing.T) {
	t.Parallel()
	const (
		n           = 12
		concurrency = 4
		killAfter   = 5 // distinct first-step requests before the kill
	)
	rec := &recorder{}
	var flight inFlight
	var after atomic.Bool // the first worker is dead
	killNow := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]bool{} // webhook-ids of s1 requests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flight.enter()
		defer flight.leave()
		c := rec.readStep(t, r)
		if c.Path == "/s1" {
			mu.Lock()
			if !seen[c.WebhookID] {
				seen[c.WebhookID] = true
				if len(seen) == killAfter {
					close(killNow)
				}
			}
			mu.Unlock()
		}
		pause := 50 * time.Millisecond
		if !after.Load() {
			// Before the kill, steps take long enough to be in flight
			// when it comes (the dead worker's requests end with it), and
			// items take different times, so that the kill comes as one
			// item's lane opens while others' steps are in flight.
			var in struct {
				I int `json:"i"`
			}
			_ = json.Unmarshal(c.Body.Input, &in)
			pause = 150*time.Millisecond + time.Duration(in.I)*40*time.Millisecond
		}
		select {
		case <-time.After(pause):
		case <-r.Context().Done():
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(c.Body.Input)})
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool, lanesCrashLeaseMargin)
	e.createWorkflow(fmt.Sprintf(`{"name": "each-kill", "steps": [
	  {"name": "f", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": %[2]d,
	   "collect_as": "got", "steps": [
	    {"name": "s1", "type": "call", "url": "%[1]s/s1", "timeout": "2s", "input": {"x": "${ item }", "i": "${ index }"}},
	    {"name": "s2", "type": "call", "url": "%[1]s/s2", "timeout": "2s",
	     "input": {"x": "${ item }", "i": "${ index }", "s1": "${ steps.s1.output }"}}]}]}`, srv.URL, concurrency))

	xs := make([]string, n)
	for i := range xs {
		xs[i] = fmt.Sprintf("x%02d", i)
	}
	w1 := e.startWorker()
	id := e.startRun("each-kill", map[string]any{"xs": xs})
	select {
	case <-killNow:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d item requests arrived", len(rec.all()))
	}
	inFlightAtKill := flight.now.Load()
	w1.kill()
	after.Store(true)
	killedAt := time.Now()
	e.startWorker()

	r := e.waitRun(id, 45*time.Second)
	events := e.history(id)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s; history %v", runErrorText(r), historyKeys(events))
	t.Logf("%d requests in flight at the kill; the run ended %s after it; %d requests in all, at most %d at once",
		inFlightAtKill, time.Since(killedAt).Round(time.Millisecond), len(rec.all()), flight.max.Load())
	t.Logf("history since the kill:\n%s", lanesTimeline(events, killedAt))
	require.LessOrEqual(t, flight.max.Load(), int64(concurrency), "the concurrency limit was exceeded")
	require.GreaterOrEqual(t, flight.max.Load(), int64(2), "the items never ran side by side")

	// Each item step, item lane and the block succeeded exactly once.
	keys := []string{"f"}
	for i := range xs {
		keys = append(keys, fmt.Sprintf("f[%d]", i), fmt.Sprintf("f[%d].s1", i), fmt.Sprintf("f[%d].s2", i))
	}
	lanesSucceededOnce(t, events, keys...)
	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	want := map[string]string{}
	for _, k := range keys {
		want[k] = "succeeded"
	}
	require.Equal(t, want, status, "step executions")

	// Every request of one item step carried the same webhook-id, and it
	// was its item's.
	byKey := map[string][]stepCall{}
	for _, c := range rec.all() {
		var in struct {
			X string `json:"x"`
			I int    `json:"i"`
		}
		require.NoError(t, json.Unmarshal(c.Body.Input, &in))
		require.Equal(t, xs[in.I], in.X, "item %d's step got another item", in.I)
		key := fmt.Sprintf("f[%d].%s", in.I, c.Body.Step)
		byKey[key] = append(byKey[key], c)
	}
	require.Len(t, byKey, 2*n, "item steps requested: %v", laneTestKeys(byKey))
	lanesOneWebhookIDPerKey(t, byKey)
	retried := 0
	for k, calls := range byKey {
		require.LessOrEqual(t, len(calls), 2, "step %s requested %d times", k, len(calls))
		if len(calls) == 2 {
			retried++
		}
	}
	require.GreaterOrEqual(t, retried, 1, "no step in flight at the kill was requested again")

	// Each item's result once, in item order.
	out, err := json.Marshal(r.Output)
	require.NoError(t, err)
	var got struct {
		Results []struct {
			X  string `json:"x"`
			I  int    `json:"i"`
			S1 struct {
				X string `json:"x"`
				I int    `json:"i"`
			} `json:"s1"`
		} `json:"results"`
		Errors []any `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	require.Len(t, got.Results, n, "%s", out)
	require.Empty(t, got.Errors, "%s", out)
	for i, res := range got.Results {
		require.Equal(t, xs[i], res.X, "result %d: %s", i, out)
		require.Equal(t, i, res.I, "result %d: %s", i, out)
		require.Equal(t, xs[i], res.S1.X, "result %d: %s", i, out)
		require.Equal(t, i, res.S1.I, "result %d: %s", i, out)
	}
	ctx, err := json.Marshal(r.Context)
	require.NoError(t, err)
	var collected struct {
		Got []json.RawMessage `json:"got"`
	}
	require.NoError(t, json.Unmarshal(ctx, &collected), "%s", ctx)
	require.Len(t, collected.Got, n, "collect_as: %s", ctx)
}

// laneTestKeys lists a map's keys, sorted.
func laneTestKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// lanesTimeline renders history events with their time relative to t0.
func lanesTimeline(events []client.HistoryEvent, t0 time.Time) string {
	var b strings.Builder
	for i, h := range events {
		fmt.Fprintf(&b, "%+8dms %s\n", h.Time.Sub(t0).Milliseconds(), historyKeys(events[i : i+1])[0])
	}
	return b.String()
}
