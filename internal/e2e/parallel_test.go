package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// TestParallel runs branches side by side and joins them: their outputs
// merged as an object keyed by branch, each branch's steps seen by name
// after the block, and deep_merge merging into the context.
func TestParallel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/profile":
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"user": map[string]any{"name": "ada"}}})
		case "/orders":
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"user": map[string]any{"orders": 3}}})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"path": c.Path, "input": json.RawMessage(c.Body.Input)}})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "notify", "steps": [
	  {"name": "notify", "type": "parallel", "branches": [
	    {"name": "email", "steps": [
	      {"name": "email1", "type": "call", "url": "%[1]s/email1"},
	      {"name": "email2", "type": "call", "url": "%[1]s/email2", "input": {"prev": "${ steps.email1.output.path }"}}]},
	    {"name": "sms", "steps": [{"name": "sms1", "type": "call", "url": "%[1]s/sms1"}]}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after",
	   "input": {"joined": "${ steps.notify.output }", "email1": "${ steps.email1.output.path }"}}]}`, srv.URL))
	id := e.startRun("notify", map[string]any{})
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	calls := rec.all()
	require.Len(t, calls, 4)
	last := calls[3]
	require.Equal(t, "/after", last.Path)
	require.JSONEq(t, `{"email1": "/email1", "joined": {
	  "email": {"path": "/email2", "input": {"prev": "/email1"}},
	  "sms": {"path": "/sms1", "input": {}}}}`, string(last.Body.Input))

	keys := map[string]string{}
	for _, s := range e.steps(id) {
		keys[s.Key] = string(s.Status)
	}
	require.Equal(t, map[string]string{
		"notify": "succeeded", "notify[email]": "succeeded", "notify[sms]": "succeeded",
		"email1": "succeeded", "email2": "succeeded", "sms1": "succeeded", "after": "succeeded",
	}, keys)

	// deep_merge: objects merge into one, and into the context.
	e.createWorkflow(fmt.Sprintf(`{"name": "deep", "steps": [
	  {"name": "load", "type": "parallel", "merge": "deep_merge", "branches": [
	    {"name": "a", "steps": [{"name": "profile", "type": "call", "url": "%[1]s/profile"}]},
	    {"name": "b", "steps": [{"name": "orders", "type": "call", "url": "%[1]s/orders"}]}]},
	  {"name": "use", "type": "call", "url": "%[1]s/use", "input": {"user": "${ ctx.user }", "out": "${ steps.load.output }"}}]}`, srv.URL))
	id = e.startRun("deep", map[string]any{})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	last = rec.all()[len(rec.all())-1]
	require.JSONEq(t, `{"user": {"name": "ada", "orders": 3}, "out": {"user": {"name": "ada", "orders": 3}}}`, string(last.Body.Input))
}

// TestParallelFailFast fails one branch and checks that the other branch's
// later steps are never scheduled, its in-flight step's late result is
// ignored, and the run fails naming the branch.
func TestParallelFailFast(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	release := make(chan struct{})
	slowStarted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/boom":
			// Fail only once the other branch's step is in flight.
			<-slowStarted
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "boom"}})
		case "/slow":
			close(slowStarted)
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			writeJSON(w, http.StatusOK, map[string]any{"output": "late"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": c.Path})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "ff", "steps": [
	  {"name": "both", "type": "parallel", "branches": [
	    {"name": "bad", "steps": [{"name": "boom", "type": "call", "url": "%[1]s/boom"}]},
	    {"name": "good", "steps": [
	      {"name": "slow", "type": "call", "url": "%[1]s/slow"},
	      {"name": "never", "type": "call", "url": "%[1]s/never"}]}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after"}]}`, srv.URL))
	id := e.startRun("ff", map[string]any{})
	run := e.waitRun(id, 20*time.Second)
	close(release)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.NotNil(t, run.Error)
	require.Equal(t, "both", *run.Error.Step)
	require.Contains(t, run.Error.Message, "branch bad failed")
	require.Contains(t, run.Error.Message, "boom")
	// The slow step's late answer changes nothing.
	time.Sleep(500 * time.Millisecond)
	for _, c := range rec.all() {
		require.NotContains(t, []string{"/never", "/after"}, c.Path)
	}
	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	require.Equal(t, "cancelled", status["slow"], "%v", status)
	require.Equal(t, "cancelled", status["both[good]"], "%v", status)
	require.Equal(t, "failed", status["both[bad]"], "%v", status)
	require.Equal(t, "failed", status["both"], "%v", status)
	require.NotContains(t, status, "never")
	require.True(t, strings.Contains(strings.Join(e.historyTypes(id), ","), "run_failed"))
}

// TestNestedLanes nests blocks: a foreach whose items run a parallel step,
// one of whose branches runs a foreach of its own and a branch step. Keys
// qualify each execution by the items around it, each step sees its own
// item, and outputs come back nested the same way.
func TestNestedLanes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, stepsURL := echoSteps(t)
	e.createWorkflow(fmt.Sprintf(`{"name": "nested", "steps": [
	  {"name": "outer", "type": "foreach", "items": "${ input.groups }", "mode": "concurrent", "concurrency": 2, "steps": [
	    {"name": "fan", "type": "parallel", "branches": [
	      {"name": "each", "steps": [
	        {"name": "inner", "type": "foreach", "items": "${ item.members }", "steps": [
	          {"name": "greet", "type": "call", "url": "%[1]s/greet", "input": {"member": "${ item }", "at": "${ index }"}}]}]},
	      {"name": "pick", "steps": [
	        {"name": "route", "type": "branch", "on": "${ item.kind }", "cases": [
	          {"value": "big", "steps": [{"name": "big", "type": "call", "url": "%[1]s/big", "input": {"group": "${ item.name }"}}]}],
	         "default": [{"name": "small", "type": "call", "url": "%[1]s/small", "input": {"group": "${ item.name }"}}]}]}]},
	    {"name": "sum", "type": "call", "url": "%[1]s/sum", "input": {"group": "${ item.name }", "greeted": "${ steps.fan.output.each.results }"}}]}]}`, stepsURL))
	id := e.startRun("nested", map[string]any{"groups": []map[string]any{
		{"name": "g0", "kind": "big", "members": []string{"ann", "bob"}},
		{"name": "g1", "kind": "tiny", "members": []string{"cy"}},
	}})
	run := e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	out, err := json.Marshal(run.Output)
	require.NoError(t, err)
	require.JSONEq(t, `{"errors": [], "results": [
	  {"group": "g0", "greeted": [{"member": "ann", "at": 0}, {"member": "bob", "at": 1}]},
	  {"group": "g1", "greeted": [{"member": "cy", "at": 0}]}]}`, string(out))
	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	for _, key := range []string{
		"outer", "outer[0]", "outer[1]", "outer[0].fan", "outer[0].fan[each]", "outer[0].fan[pick]",
		"outer[0].inner", "outer[0].inner[0]", "outer[0].inner[1]", "outer[0].inner[0].greet", "outer[0].inner[1].greet",
		"outer[0].route", "outer[0].big", "outer[0].sum", "outer[1].inner[0].greet", "outer[1].small", "outer[1].sum",
	} {
		require.Equal(t, "succeeded", status[key], "%s in %v", key, status)
	}
	require.NotContains(t, status, "outer[0].small")
	require.NotContains(t, status, "outer[1].big")
	require.Len(t, status, 23)
}

// TestLanesCancelled cancels a run while its foreach items run: every lane
// and step still open ends cancelled, and no step starts afterwards.
func TestLanesCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.readStep(t, r)
		select {
		case <-r.Context().Done():
		case <-time.After(300 * time.Millisecond):
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": 1})
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "cancel-lanes", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": 3, "steps": [
	    {"name": "one", "type": "call", "url": "%[1]s/one"},
	    {"name": "nap", "type": "sleep", "duration": "200ms"}]}]}`, srv.URL))
	id := e.startRun("cancel-lanes", map[string]any{"xs": []int{1, 2, 3, 4, 5, 6, 7, 8, 9}})
	require.Eventually(t, func() bool { return len(rec.all()) >= 4 }, 20*time.Second, 20*time.Millisecond)
	res, err := e.client.CancelRunWithResponse(context.Background(), id, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	calls := len(rec.all())
	time.Sleep(time.Second)
	require.Equal(t, calls, len(rec.all()), "no step started after the cancellation")
	require.Equal(t, client.RunStatus("cancelled"), e.run(id).Status)
	for _, s := range e.steps(id) {
		require.Contains(t, []string{"succeeded", "cancelled"}, string(s.Status), "%s", s.Key)
	}
	require.Zero(t, dbCount(t, assertDB(t, e), `SELECT count(*) FROM block_items`), "the items never opened are dropped")
}

// TestParallelCompleteAllAndConflicts checks complete_all (every branch
// runs to its end before the block fails, naming each failed branch) and
// deep_merge conflicts (reported with their paths and branches, never lost).
func TestParallelCompleteAllAndConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/bad":
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "no"}})
		case "/slow":
			time.Sleep(200 * time.Millisecond)
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"user": map[string]any{"name": "ada", "id": 1}}})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"user": map[string]any{"name": "bob", "id": 1}}})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "all", "steps": [
	  {"name": "p", "type": "parallel", "on_error": "complete_all", "branches": [
	    {"name": "bad", "steps": [{"name": "bad", "type": "call", "url": "%[1]s/bad"}]},
	    {"name": "slow", "steps": [
	      {"name": "slow", "type": "call", "url": "%[1]s/slow"},
	      {"name": "later", "type": "call", "url": "%[1]s/later"}]}]}]}`, srv.URL))
	run := e.waitRun(e.startRun("all", map[string]any{}), 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Contains(t, run.Error.Message, "1 of 2 branches failed")
	paths := []string{}
	for _, c := range rec.all() {
		paths = append(paths, c.Path)
	}
	require.Contains(t, paths, "/later", "the other branch ran to its end")
	details, err := json.Marshal(run.Error.Details)
	require.NoError(t, err)
	require.Contains(t, string(details), `"bad"`)

	e.createWorkflow(fmt.Sprintf(`{"name": "conflict", "steps": [
	  {"name": "p", "type": "parallel", "merge": "deep_merge", "branches": [
	    {"name": "a", "steps": [{"name": "a", "type": "call", "url": "%[1]s/slow"}]},
	    {"name": "b", "steps": [{"name": "b", "type": "call", "url": "%[1]s/fast"}]}]}]}`, srv.URL))
	id := e.startRun("conflict", map[string]any{"keep": true})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Contains(t, run.Error.Message, "/user/name")
	details, err = json.Marshal(run.Error.Details)
	require.NoError(t, err)
	require.JSONEq(t, `[{"path": "/user/name", "branches": ["a", "b"]}]`, jsonPath(t, details, "conflicts"))
	// Both branches' outputs are kept on their lanes.
	for _, s := range e.steps(id) {
		if s.Key == "p[a]" || s.Key == "p[b]" {
			require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status)
			require.NotNil(t, s.Output)
		}
	}
}

// jsonPath returns the member name of the JSON object raw, as JSON.
func jsonPath(t *testing.T, raw []byte, name string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return string(m[name])
}

// TestChildInFailedBranch starts a child run from a parallel branch; when
// the other branch fails fast, the child's step is cancelled and so is the
// child run.
func TestChildInFailedBranch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	childStarted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-childStarted
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "no"}})
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(`{"name": "kid", "steps": [{"name": "hold", "type": "wait_for_event", "event": "never", "key": "${ 'k' }", "timeout": "1h"}]}`)
	e.createWorkflow(fmt.Sprintf(`{"name": "mom", "steps": [
	  {"name": "p", "type": "parallel", "branches": [
	    {"name": "kid", "steps": [{"name": "call", "type": "call_workflow", "workflow": "kid"}]},
	    {"name": "bad", "steps": [{"name": "bad", "type": "call", "url": "%s/bad"}]}]}]}`, srv.URL))
	id := e.startRun("mom", map[string]any{})
	var child client.RunSummary
	require.Eventually(t, func() bool {
		res, err := e.client.ListRunsWithResponse(context.Background(), &client.ListRunsParams{Parent: &id})
		require.NoError(t, err)
		if res.JSON200 == nil || len(res.JSON200.Items) == 0 {
			return false
		}
		child = res.JSON200.Items[0]
		return child.Status == "waiting"
	}, 20*time.Second, 20*time.Millisecond)
	close(childStarted)
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Equal(t, client.RunStatus("cancelled"), e.waitRun(child.Id, 20*time.Second).Status)
	for _, s := range e.steps(id) {
		if s.Key == "call" {
			require.Equal(t, client.StepExecutionStatus("cancelled"), s.Status)
		}
	}
}

// TestNestedLaneFailures fails steps nested inside foreach items — in a
// branch's case, and in a parallel step that fails fast — and checks that
// each failure ends its branch, block and item, and that the foreach
// (on_error collect) gathers both errors and goes on.
func TestNestedLaneFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slowbad":
			// Long enough for the other branch's sleep to begin.
			time.Sleep(300 * time.Millisecond)
			fallthrough
		case "/bad":
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "no"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": r.URL.Path})
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "nested-fail", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.kinds }", "on_error": "collect", "steps": [
	    {"name": "route", "type": "branch", "on": "${ item }", "cases": [
	      {"value": "branch", "steps": [{"name": "inner", "type": "call", "url": "%[1]s/bad"}]},
	      {"value": "fan", "steps": [
	        {"name": "fan", "type": "parallel", "branches": [
	          {"name": "x", "steps": [{"name": "fx", "type": "call", "url": "%[1]s/slowbad"}]},
	          {"name": "y", "steps": [{"name": "fy", "type": "sleep", "duration": "1h"}]}]}]}],
	     "default": [{"name": "fine", "type": "call", "url": "%[1]s/fine"}]}]}]}`, srv.URL))
	id := e.startRun("nested-fail", map[string]any{"kinds": []string{"ok", "branch", "fan"}})
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	var out struct {
		Results []any `json:"results"`
		Errors  []struct {
			Index int `json:"index"`
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		} `json:"errors"`
	}
	raw, err := json.Marshal(run.Output)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Equal(t, []any{"/fine", nil, nil}, out.Results)
	require.Len(t, out.Errors, 2)
	require.Equal(t, 1, out.Errors[0].Index)
	require.Contains(t, out.Errors[0].Error.Message, "step each[1].inner failed")
	require.Equal(t, 2, out.Errors[1].Index)
	require.Contains(t, out.Errors[1].Error.Message, "step each[2].fan failed: branch x failed: step each[2].fx failed")
	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	for key, want := range map[string]string{
		"each": "succeeded", "each[0]": "succeeded", "each[1]": "failed", "each[2]": "failed",
		"each[1].route": "failed", "each[1].inner": "failed",
		"each[2].route": "failed", "each[2].fan": "failed", "each[2].fan[x]": "failed",
		"each[2].fan[y]": "cancelled", "each[2].fy": "cancelled",
	} {
		require.Equal(t, want, status[key], "%s in %v", key, status)
	}
	// The cancelled sleep's timer is gone: the run has no work left.
	require.Equal(t, 0, dbCount(t, assertDB(t, e), `SELECT count(*) FROM work_items WHERE run_id = $1`, id))
}

// TestLanesShareContext has one branch merge into the context while the
// other branch's step is in flight: the other branch's next step sees the
// merge, in its input and in the context it is sent.
func TestLanesShareContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	merged, b1Started := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/a1":
			// Merge only once branch b has read the run to start b1.
			<-b1Started
			writeJSON(w, http.StatusOK, map[string]any{"output": 1, "context": map[string]any{"from_a": "hello"}})
		case "/b1":
			close(b1Started)
			select {
			case <-merged:
			case <-time.After(10 * time.Second):
			}
			writeJSON(w, http.StatusOK, map[string]any{"output": 2})
		case "/a2":
			close(merged) // a1's merge has been recorded: a2 started after it
			writeJSON(w, http.StatusOK, map[string]any{"output": 3})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(c.Body.Input)})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "share", "steps": [
	  {"name": "p", "type": "parallel", "branches": [
	    {"name": "a", "steps": [
	      {"name": "a1", "type": "call", "url": "%[1]s/a1"},
	      {"name": "a2", "type": "call", "url": "%[1]s/a2"}]},
	    {"name": "b", "steps": [
	      {"name": "b1", "type": "call", "url": "%[1]s/b1"},
	      {"name": "b2", "type": "call", "url": "%[1]s/b2", "input": {"seen": "${ ctx.from_a }"}}]}]}]}`, srv.URL))
	run := e.waitRun(e.startRun("share", map[string]any{}), 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	for _, c := range rec.all() {
		if c.Path == "/b2" {
			require.JSONEq(t, `{"seen": "hello"}`, string(c.Body.Input))
			require.JSONEq(t, `{"from_a": "hello"}`, string(c.Body.Context))
			return
		}
	}
	t.Fatal("b2 was never called")
}
