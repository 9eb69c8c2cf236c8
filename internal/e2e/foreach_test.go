package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// inFlight measures, at a step server, how many requests it serves at once.
type inFlight struct {
	now, max atomic.Int64
}

func (f *inFlight) enter() {
	n := f.now.Add(1)
	for {
		m := f.max.Load()
		if n <= m || f.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (f *inFlight) leave() { f.now.Add(-1) }

// TestForeach runs a concurrent foreach and checks that its concurrency
// limit is never exceeded at the step server, that each item's steps see
// their item and index and their own earlier steps, and that collect_as
// gathers the outputs in item order; and a sequential one, whose items run
// strictly one after another.
func TestForeach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	var flight inFlight
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flight.enter()
		defer flight.leave()
		c := rec.readStep(t, r)
		if c.Path == "/label" {
			time.Sleep(30 * time.Millisecond) // long enough for items to overlap
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"path": c.Path, "input": json.RawMessage(c.Body.Input)}})
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "ship", "steps": [
	  {"name": "ship", "type": "foreach", "items": "${ input.orders }", "mode": "concurrent", "concurrency": 3,
	   "collect_as": "shipments", "steps": [
	    {"name": "label", "type": "call", "url": "%[1]s/label", "input": {"order": "${ item }", "index": "${ index }"}},
	    {"name": "send", "type": "call", "url": "%[1]s/send", "input": {"label": "${ steps.label.output.input.order }"}}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after", "input": {"shipments": "${ ctx.shipments }"}}]}`, srv.URL))
	const n = 20
	orders := make([]string, n)
	for i := range orders {
		orders[i] = fmt.Sprintf("o%02d", i)
	}
	id := e.startRun("ship", map[string]any{"orders": orders})
	run := e.waitRun(id, 60*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	require.LessOrEqual(t, flight.max.Load(), int64(3), "the concurrency limit was exceeded")
	require.GreaterOrEqual(t, flight.max.Load(), int64(2), "the items never ran side by side")

	var labels, sends []string
	for _, c := range rec.all() {
		var in map[string]any
		require.NoError(t, json.Unmarshal(c.Body.Input, &in))
		switch c.Path {
		case "/label":
			require.Equal(t, orders[int(in["index"].(float64))], in["order"])
			labels = append(labels, in["order"].(string))
		case "/send":
			sends = append(sends, in["label"].(string))
		}
	}
	sort.Strings(labels)
	sort.Strings(sends)
	require.Equal(t, orders, labels)
	require.Equal(t, orders, sends, "each item's send saw its own label")
	last := rec.all()[len(rec.all())-1]
	require.Equal(t, "/after", last.Path)
	var after struct {
		Shipments []struct {
			Input struct {
				Label string `json:"label"`
			} `json:"input"`
		} `json:"shipments"`
	}
	require.NoError(t, json.Unmarshal(last.Body.Input, &after))
	require.Len(t, after.Shipments, n)
	for i, s := range after.Shipments {
		require.Equal(t, orders[i], s.Input.Label, "collected in item order")
	}
	lanes := 0
	for _, s := range e.steps(id) {
		if s.Type == "lane" {
			lanes++
		}
	}
	require.Equal(t, n, lanes)

	// The run's graph counts each step's executions over the items; the
	// lanes' own executions are not counted as the foreach's.
	resp, err := http.Get(e.apiURL + "/v1/runs/" + id.String() + "/graph?format=cytoscape")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var g struct {
		Elements struct {
			Nodes []struct {
				Data struct {
					Step       string `json:"step"`
					Kind       string `json:"kind"`
					Status     string `json:"status"`
					Executions int    `json:"executions"`
				} `json:"data"`
			} `json:"nodes"`
		} `json:"elements"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&g))
	executions := map[string]int{}
	for _, node := range g.Elements.Nodes {
		if node.Data.Status != "" && node.Data.Step != "" {
			executions[node.Data.Step] = node.Data.Executions
			require.Equal(t, "succeeded", node.Data.Status, "%s", node.Data.Step)
		}
	}
	require.Equal(t, map[string]int{"ship": 1, "label": n, "send": n, "after": 1}, executions)

	// Sequential: one item at a time, in order.
	e.createWorkflow(fmt.Sprintf(`{"name": "seq", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "steps": [
	    {"name": "one", "type": "call", "url": "%[1]s/one", "input": {"x": "${ item }"}}]}]}`, srv.URL))
	before := len(rec.all())
	flight.max.Store(0)
	id = e.startRun("seq", map[string]any{"xs": []int{5, 4, 3, 2, 1}})
	run = e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	require.Equal(t, int64(1), flight.max.Load())
	var xs []float64
	for _, c := range rec.all()[before:] {
		var in map[string]float64
		require.NoError(t, json.Unmarshal(c.Body.Input, &in))
		xs = append(xs, in["x"])
	}
	require.Equal(t, []float64{5, 4, 3, 2, 1}, xs)
	out, err := json.Marshal(run.Output)
	require.NoError(t, err)
	require.JSONEq(t, `{"results": [
	  {"path": "/one", "input": {"x": 5}}, {"path": "/one", "input": {"x": 4}}, {"path": "/one", "input": {"x": 3}},
	  {"path": "/one", "input": {"x": 2}}, {"path": "/one", "input": {"x": 1}}], "errors": []}`, string(out))

	// No items: the step succeeds at once.
	id = e.startRun("seq", map[string]any{"xs": []int{}})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	out, err = json.Marshal(run.Output)
	require.NoError(t, err)
	require.JSONEq(t, `{"results": [], "errors": []}`, string(out))

	// Items that are not a list fail the step clearly.
	id = e.startRun("seq", map[string]any{"xs": "nope"})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Contains(t, run.Error.Message, "items")
}

// TestForeachErrors checks the three on_error policies: fail_fast stops
// opening items at the first failure, continue leaves a failed item's
// result null, collect gathers the errors beside the results.
func TestForeachErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		var in map[string]any
		_ = json.Unmarshal(c.Body.Input, &in)
		if in["x"] == "bad" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"message": "bad item"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": in["x"]})
	}))
	t.Cleanup(srv.Close)
	for _, policy := range []string{"fail_fast", "continue", "collect"} {
		e.createWorkflow(fmt.Sprintf(`{"name": "e-%[2]s", "steps": [
		  {"name": "each", "type": "foreach", "items": "${ input.xs }", "on_error": %[2]q, "steps": [
		    {"name": "one", "type": "call", "url": "%[1]s/%[2]s", "input": {"x": "${ item }"}}]}]}`, srv.URL, policy))
	}
	xs := []string{"a", "bad", "c"}
	calls := func(path string) []string {
		var out []string
		for _, c := range rec.all() {
			if c.Path == path {
				var in map[string]string
				require.NoError(t, json.Unmarshal(c.Body.Input, &in))
				out = append(out, in["x"])
			}
		}
		return out
	}

	run := e.waitRun(e.startRun("e-fail_fast", map[string]any{"xs": xs}), 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Equal(t, "each", *run.Error.Step)
	require.Contains(t, run.Error.Message, "item 1 failed")
	require.Contains(t, run.Error.Message, "step each[1].one failed: the step answered 422")
	require.Equal(t, []string{"a", "bad"}, calls("/fail_fast"), "no item opens after the failure")
	require.Zero(t, dbCount(t, assertDB(t, e), `SELECT count(*) FROM block_items`), "the items never opened are dropped")

	run = e.waitRun(e.startRun("e-continue", map[string]any{"xs": xs}), 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	out, err := json.Marshal(run.Output)
	require.NoError(t, err)
	require.JSONEq(t, `{"results": ["a", null, "c"], "errors": []}`, string(out))

	run = e.waitRun(e.startRun("e-collect", map[string]any{"xs": xs}), 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	var got struct {
		Results []any `json:"results"`
		Errors  []struct {
			Index int `json:"index"`
			Error struct {
				Message string `json:"message"`
				Step    string `json:"step"`
			} `json:"error"`
		} `json:"errors"`
	}
	out, err = json.Marshal(run.Output)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, []any{"a", nil, "c"}, got.Results)
	require.Len(t, got.Errors, 1)
	require.Equal(t, 1, got.Errors[0].Index)
	require.Equal(t, "each[1].one", got.Errors[0].Error.Step)
	require.Contains(t, got.Errors[0].Error.Message, "422")
}

// TestForeachLateResult fails a foreach fast while another item's only
// step is in flight: that step's late success is refused — the step and
// its lane stay cancelled, and no item opens in its place.
func TestForeachLateResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	slowStarted, release, answered := make(chan struct{}), make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		var in map[string]string
		_ = json.Unmarshal(c.Body.Input, &in)
		switch in["x"] {
		case "bad":
			<-slowStarted
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "bad item"}})
		case "slow":
			close(slowStarted)
			<-release
			writeJSON(w, http.StatusOK, map[string]any{"output": "late"})
			close(answered)
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": in["x"]})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "late", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": 2, "steps": [
	    {"name": "one", "type": "call", "url": "%s/one", "input": {"x": "${ item }"}}]}]}`, srv.URL))
	id := e.startRun("late", map[string]any{"xs": []string{"slow", "bad", "c"}})
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	close(release)
	<-answered
	time.Sleep(500 * time.Millisecond) // for the late answer to be recorded, or refused
	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	require.Equal(t, map[string]string{
		"each": "failed", "each[0]": "cancelled", "each[0].one": "cancelled", "each[1]": "failed", "each[1].one": "failed",
	}, status)
	require.Len(t, rec.all(), 2, "no item opened after the failure")
	require.Zero(t, dbCount(t, assertDB(t, e), `SELECT count(*) FROM block_items`), "the items never opened are dropped")
}

// TestForeachFailsAmidSuccesses fails a foreach fast while many of its
// items succeed at the same moment, so that their results are recorded
// together with the failure, some before it and some after: the run fails
// once, every execution ends, nothing of the run is left queued, and a lane
// succeeded exactly when its step did.
func TestForeachFailsAmidSuccesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	const concurrency = 20
	var calls atomic.Int64
	arrived := make(chan struct{}, concurrency)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body stepBody
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("decode step body: %v", err)
		}
		if calls.Add(1) <= concurrency {
			arrived <- struct{}{}
			<-release
		}
		if string(body.Input) == "7" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "bad item"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(body.Input)})
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "amid", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": %d, "steps": [
	    {"name": "one", "type": "call", "url": "%s/one", "input": "${ index }"}]}]}`, concurrency, srv.URL))
	id := e.startRun("amid", map[string]any{"xs": make([]int, 200)})
	for range concurrency {
		<-arrived
	}
	close(release)
	run := e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Contains(t, run.Error.Message, "item 7 failed")
	pool := assertDB(t, e)
	require.Eventually(t, func() bool {
		return dbCount(t, pool, `SELECT count(*) FROM work_items WHERE run_id = $1`, id) == 0
	}, 10*time.Second, 20*time.Millisecond, "nothing of the run is left queued")
	require.Zero(t, dbCount(t, pool, `SELECT count(*) FROM step_executions WHERE run_id = $1 AND status IN ('pending', 'running', 'waiting')`, id))
	require.Zero(t, dbCount(t, pool, `SELECT count(*) FROM step_attempts WHERE run_id = $1 AND status IN ('running', 'accepted')`, id))
	require.Zero(t, dbCount(t, pool, `SELECT count(*) FROM block_items`))
	lanes := dbCount(t, pool, `SELECT count(*) FROM step_executions WHERE run_id = $1 AND step_type = 'lane'`, id)
	require.LessOrEqual(t, lanes, 2*concurrency-1, "only the successes before the failure opened items")
	require.Equal(t, 1, dbCount(t, pool, `SELECT count(*) FROM history_events WHERE run_id = $1 AND type = 'run_failed'`, id))
	// A lane that succeeded has its step succeeded, and one that did not
	// has no step that did.
	require.Zero(t, dbCount(t, pool, `SELECT count(*) FROM step_executions l JOIN step_executions s ON s.parent_id = l.id
		WHERE l.run_id = $1 AND l.step_type = 'lane' AND (l.status = 'succeeded') <> (s.status = 'succeeded')`, id))
}

// TestWaitsInLanes puts waits inside parallel branches and foreach items:
// each lane waits for its own event, independently of the others, and the
// events resume them in whatever order they come.
func TestWaitsInLanes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec, stepsURL := echoSteps(t)
	e.createWorkflow(fmt.Sprintf(`{"name": "lanes-wait", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.keys }", "mode": "concurrent", "concurrency": 10, "steps": [
	    {"name": "hold", "type": "wait_for_event", "event": "go", "key": "${ item }", "timeout": "1m"},
	    {"name": "done", "type": "call", "url": "%[1]s/done", "input": {"key": "${ item }", "got": "${ steps.hold.output }"}}]},
	  {"name": "both", "type": "parallel", "branches": [
	    {"name": "nap", "steps": [{"name": "nap", "type": "sleep", "duration": "300ms"}]},
	    {"name": "ask", "steps": [{"name": "ok", "type": "wait_for_input", "kind": "approval", "timeout": "1m"}]}]}]}`, stepsURL))
	keys := []string{"k0", "k1", "k2", "k3"}
	id := e.startRun("lanes-wait", map[string]any{"keys": keys})
	require.Eventually(t, func() bool {
		waiting := 0
		for _, s := range e.steps(id) {
			if s.Name == "hold" && s.Status == "waiting" {
				waiting++
			}
		}
		return waiting == len(keys)
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, client.RunStatus("waiting"), e.run(id).Status)
	for _, k := range []string{"k2", "k0", "k3", "k1"} {
		res, err := e.client.PublishEventWithResponse(context.Background(), client.PublishEventRequest{Name: "go", Key: k, Payload: map[string]any{"key": k}})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))
	}
	require.Eventually(t, func() bool {
		for _, s := range e.steps(id) {
			if s.Key == "ok" && s.Status == "waiting" {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	for _, c := range rec.all() {
		var in struct {
			Key string `json:"key"`
			Got struct {
				Key string `json:"key"`
			} `json:"got"`
		}
		require.NoError(t, json.Unmarshal(c.Body.Input, &in))
		require.Equal(t, in.Key, in.Got.Key, "each item got its own event")
	}
	require.Len(t, rec.all(), len(keys))
	res, err := e.client.GiveInputWithResponse(context.Background(), id, "ok", client.GiveInputJSONRequestBody{Value: true})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
}

// TestForeachItemsFromInput runs a foreach whose items are not in
// block_items, as when a worker of an earlier version started it: its lanes
// open with their items read from the foreach's input, after a step that
// answered with a context (the general path) and after one that did not
// (the one statement of a lane's last step).
func TestForeachItemsFromInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		if len(rec.all()) == 1 {
			<-release
			writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(c.Body.Input), "context": map[string]any{"first": true}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(c.Body.Input)})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	e.createWorkflow(fmt.Sprintf(`{"name": "old-items", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "steps": [
	    {"name": "one", "type": "call", "url": "%s/one", "input": {"x": "${ item }", "i": "${ index }"}}]}]}`, srv.URL))
	id := e.startRun("old-items", map[string]any{"xs": []string{"a", "b", "c"}})
	require.Eventually(t, func() bool { return len(rec.all()) == 1 }, 20*time.Second, 10*time.Millisecond)
	pool := assertDB(t, e)
	_, err := pool.Exec(context.Background(), `DELETE FROM block_items`)
	require.NoError(t, err)
	close(release)
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	out, err := json.Marshal(run.Output)
	require.NoError(t, err)
	require.JSONEq(t, `{"results": [{"x": "a", "i": 0}, {"x": "b", "i": 1}, {"x": "c", "i": 2}], "errors": []}`, string(out))
}

// TestForeachLarge runs a foreach over 10,000 items: the run succeeds with
// every result in order, the items in flight never exceed the concurrency,
// and the run's queue never holds more work items than that. It keeps a
// worker busy for tens of seconds, so it runs alone, before the parallel
// tests, whose timing it would disturb.
func TestForeachLarge(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	var flight inFlight
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flight.enter()
		defer flight.leave()
		calls.Add(1)
		var body stepBody
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("decode step body: %v", err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(body.Input)})
	}))
	t.Cleanup(srv.Close)
	const n, concurrency = 10000, 50
	e.createWorkflow(fmt.Sprintf(`{"name": "big", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": %d, "steps": [
	    {"name": "one", "type": "call", "url": "%s/one", "input": "${ index }"}]}]}`, concurrency, srv.URL))
	xs := make([]int, n)
	id := e.startRun("big", map[string]any{"xs": xs})
	// The run's queue and its unfinished step executions stay bounded by the
	// concurrency, however many items the list has.
	pool := assertDB(t, e)
	var maxWork, maxOpen int
	sampled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			maxWork = max(maxWork, dbCount(t, pool, `SELECT count(*) FROM work_items WHERE run_id = $1`, id))
			maxOpen = max(maxOpen, dbCount(t, pool, `SELECT count(*) FROM step_executions WHERE run_id = $1 AND status IN ('pending', 'running', 'waiting')`, id))
		}
	}()
	run := e.waitRun(id, 8*time.Minute)
	close(stop)
	<-sampled
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	require.LessOrEqual(t, flight.max.Load(), int64(concurrency))
	require.LessOrEqual(t, maxWork, concurrency, "work items of the run")
	// Each open item has its lane and its step; the foreach is open too.
	require.LessOrEqual(t, maxOpen, 2*concurrency+1, "unfinished step executions of the run")
	require.Equal(t, int64(n), calls.Load(), "each item's step ran once")
	require.Zero(t, dbCount(t, pool, `SELECT count(*) FROM block_items`), "each item is dropped as its lane opens")
	var out struct {
		Results []int `json:"results"`
	}
	raw, err := json.Marshal(run.Output)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Len(t, out.Results, n)
	for i, r := range out.Results {
		require.Equal(t, i, r)
	}
	// The items' events are written, and the history cap does not count
	// them: the run fits under the default cap of 10,000.
	events := dbCount(t, pool, `SELECT count(*) FROM history_events WHERE run_id = $1`, id)
	counted := dbCount(t, pool, `SELECT history_count FROM runs WHERE id = $1`, id)
	t.Logf("the run wrote %d history events; its history cap counts %d", events, counted)
	require.Greater(t, events, 3*n)
	require.Less(t, counted, 10)
}
