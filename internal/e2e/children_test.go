package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// TestCallWorkflow starts child runs: the parent waits for a child and
// takes its output, fails with a failing child, goes on at once without
// waiting, cancels its children when cancelled, and stops runaway
// recursion at the depth limit.
func TestCallWorkflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.startWorker()
	rec := &recorder{}
	// Held steps occupy worker slots until released, so the test lets them
	// go as soon as it has seen what it needs.
	hold := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	t.Cleanup(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/fail":
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"code": "nope"}})
		case "/hold":
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			writeJSON(w, http.StatusOK, map[string]any{})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"got": json.RawMessage(c.Body.Input)}})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "child", "steps": [
	  {"name": "work", "type": "call", "url": "%s/work", "input": {"n": "${ input.n }"}}]}`, srv.URL))
	e.createWorkflow(fmt.Sprintf(`{"name": "bad-child", "steps": [
	  {"name": "oops", "type": "call", "url": "%s/fail", "retry": {"max_attempts": 1}}]}`, srv.URL))
	e.createWorkflow(fmt.Sprintf(`{"name": "slow-child", "steps": [
	  {"name": "slow", "type": "call", "url": "%s/hold", "timeout": "1m"}]}`, srv.URL))
	e.createWorkflow(fmt.Sprintf(`{"name": "parent", "steps": [
	  {"name": "sub", "type": "call_workflow", "workflow": "child", "input": {"n": "${ input.n }"}},
	  {"name": "after", "type": "call", "url": "%s/after", "input": {"child": "${ steps.sub.output }"}}]}`, srv.URL))
	e.createWorkflow(`{"name": "bad-parent", "steps": [{"name": "sub", "type": "call_workflow", "workflow": "bad-child"}]}`)
	e.createWorkflow(`{"name": "detached", "steps": [
	  {"name": "sub", "type": "call_workflow", "workflow": "slow-child", "wait": false},
	  {"name": "nap", "type": "sleep", "duration": "1ms"}]}`)
	e.createWorkflow(`{"name": "holder", "steps": [{"name": "sub", "type": "call_workflow", "workflow": "slow-child"}]}`)
	e.createWorkflow(`{"name": "impatient", "steps": [
	  {"name": "bg", "type": "call_workflow", "workflow": "slow-child", "wait": false},
	  {"name": "sub", "type": "call_workflow", "workflow": "slow-child", "timeout": "300ms"}]}`)
	e.createWorkflow(`{"name": "forever", "steps": [{"name": "again", "type": "call_workflow", "workflow": "forever"}]}`)
	ctx := context.Background()
	children := func(parent uuid.UUID) []client.RunSummary {
		res, err := e.client.ListRunsWithResponse(ctx, &client.ListRunsParams{Parent: &parent})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
		return res.JSON200.Items
	}

	// The parent waits and takes the child's output.
	id := e.startRun("parent", map[string]any{"n": 7})
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	kids := children(id)
	require.Len(t, kids, 1)
	require.Equal(t, client.RunStatus("succeeded"), kids[0].Status)
	child := e.run(kids[0].Id)
	require.Equal(t, id, *child.ParentRunId)
	require.Equal(t, map[string]any{"n": float64(7)}, child.Input)
	require.JSONEq(t, `{"got": {"n": 7}}`, mustJSON(t, child.Output))
	require.JSONEq(t, `{"got": {"child": {"got": {"n": 7}}}}`, mustJSON(t, run.Output))
	// The worker that started the child logs its start, naming its parent.
	var logged []map[string]any
	for _, line := range worker.logsWith("run started") {
		if line["run_id"] == child.Id.String() {
			logged = append(logged, line)
		}
	}
	require.Len(t, logged, 1)
	require.Equal(t, "parent", logged[0]["started_by"])
	require.Equal(t, id.String(), logged[0]["parent_run_id"])
	require.Equal(t, "child", logged[0]["workflow"])

	// A failing child fails its parent with the child's error.
	id = e.startRun("bad-parent", nil)
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.Contains(t, mustJSON(t, run.Error), "ended failed")

	// Without waiting, the parent goes on while the child runs.
	id = e.startRun("detached", nil)
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status)
	kids = children(id)
	require.Len(t, kids, 1)
	require.Contains(t, []client.RunStatus{"pending", "running"}, kids[0].Status)

	// Cancelling a parent cancels its child.
	id = e.startRun("holder", nil)
	require.Eventually(t, func() bool { return len(children(id)) == 1 }, 10*time.Second, 20*time.Millisecond)
	res, err := e.client.CancelRunWithResponse(ctx, id, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Equal(t, client.RunStatus("cancelled"), e.run(children(id)[0].Id).Status)

	// A step that stops waiting cancels its own child, and only that one.
	id = e.startRun("impatient", nil)
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("timed_out"), run.Status)
	require.Contains(t, mustJSON(t, run.Error.Details), "the wait timed out after 300ms")
	childOf := map[string]uuid.UUID{}
	for _, st := range e.steps(id) {
		var in struct {
			RunID uuid.UUID `json:"run_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(mustJSON(t, st.Input)), &in))
		childOf[st.Name] = in.RunID
	}
	require.Equal(t, client.RunStatus("cancelled"), e.run(childOf["sub"]).Status)
	require.Contains(t, []client.RunStatus{"pending", "running"}, e.run(childOf["bg"]).Status)
	release()

	// A workflow that calls itself stops at the depth limit.
	id = e.startRun("forever", nil)
	deepest := id
	require.Eventually(t, func() bool {
		for {
			kids := children(deepest)
			if len(kids) == 0 {
				break
			}
			deepest = kids[0].Id
		}
		return e.run(deepest).Status == "failed"
	}, 30*time.Second, 50*time.Millisecond)
	require.Contains(t, mustJSON(t, e.run(deepest).Error), "nest at most")
	run = e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status, "the failure climbs to the top")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
