package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// TestBranch runs a branch with value cases, an if case, a default and a
// nested wait, and checks that exactly the chosen case's steps run, that
// data flows out of the branch, and that no match without a default fails
// the run clearly.
func TestBranch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"path": c.Path}})
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "route", "steps": [
	  {"name": "route", "type": "branch", "on": "${ input.tier }", "cases": [
	    {"value": "gold", "steps": [
	      {"name": "gold1", "type": "call", "url": "%[1]s/gold1"},
	      {"name": "gold2", "type": "call", "url": "%[1]s/gold2", "input": {"from": "${ steps.gold1.output.path }"}}]},
	    {"if": "${ input.amount > 100 }", "steps": [
	      {"name": "big", "type": "call", "url": "%[1]s/big"}]},
	    {"value": "wait", "steps": [
	      {"name": "hold", "type": "wait_for_event", "event": "go", "key": "${ input.key }", "timeout": "1m"}]}],
	   "default": [{"name": "plain", "type": "call", "url": "%[1]s/plain"}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after", "input": {"branch": "${ steps.route.output }"}}]}`, srv.URL))

	paths := func(run client.Run) []string {
		var out []string
		for _, c := range rec.all() {
			if c.Body.RunID == run.Id {
				out = append(out, c.Path)
			}
		}
		return out
	}
	for _, tc := range []struct {
		input map[string]any
		paths []string
		last  string
	}{
		{map[string]any{"tier": "gold", "amount": 500}, []string{"/gold1", "/gold2", "/after"}, "/gold2"},
		{map[string]any{"tier": "silver", "amount": 500}, []string{"/big", "/after"}, "/big"},
		{map[string]any{"tier": "silver", "amount": 5}, []string{"/plain", "/after"}, "/plain"},
	} {
		id := e.startRun("route", tc.input)
		run := e.waitRun(id, 20*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), run.Status, "%v: %+v", tc.input, run.Error)
		require.Equal(t, tc.paths, paths(run), "%v", tc.input)
		after := rec.all()[len(rec.all())-1]
		require.JSONEq(t, fmt.Sprintf(`{"branch": {"path": %q}}`, tc.last), string(after.Body.Input))
		var branch client.StepExecution
		for _, s := range e.steps(id) {
			if s.Name == "route" {
				branch = s
			}
		}
		require.Equal(t, client.StepExecutionStatus("succeeded"), branch.Status)
	}

	// A wait inside a case: the branch waits, then goes on after the event.
	id := e.startRun("route", map[string]any{"tier": "wait", "amount": 1, "key": "k1"})
	e.waitRun(id, 20*time.Second, "waiting")
	res, err := e.client.PublishEventWithResponse(context.Background(), client.PublishEventRequest{Name: "go", Key: "k1", Payload: map[string]any{"ok": true}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))
	require.Equal(t, 1, res.JSON201.Resumed)
	run := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status)
	after := rec.all()[len(rec.all())-1]
	require.JSONEq(t, `{"branch": {"ok": true}}`, string(after.Body.Input))
	types := e.historyTypes(id)
	require.Equal(t, "run_succeeded", types[len(types)-1])

	// No case matches and there is no default.
	e.createWorkflow(`{"name": "strict", "steps": [
	  {"name": "pick", "type": "branch", "on": "${ input.x }", "cases": [{"value": 1, "steps": [
	    {"name": "one", "type": "sleep", "duration": "1ms"}]}]}]}`)
	id = e.startRun("strict", map[string]any{"x": 2})
	run = e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	msg, _ := json.Marshal(run.Error)
	require.Contains(t, string(msg), "no case of the branch matched")
	pick := e.steps(id)[0]
	require.Equal(t, "pick", pick.Key)
	require.JSONEq(t, `{"case": null}`, mustJSON(t, pick.Input), "no case was chosen")
}
