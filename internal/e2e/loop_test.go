package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// TestLoop runs loop steps end to end: a poll that goes on until its
// endpoint says done, with a wait in its body and the iteration in scope;
// the output of the last iteration flowing to the step after; the bound of
// max_iterations; a condition false at once; a condition that fails; a step
// failing in an iteration; and a loop in each item of a foreach.
func TestLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	rec := &recorder{}
	var mu sync.Mutex
	polls := map[uuid.UUID]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/check":
			mu.Lock()
			polls[c.Body.RunID]++
			n := polls[c.Body.RunID]
			mu.Unlock()
			state := "pending"
			if n >= 3 {
				state = "done"
			}
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"state": state, "poll": n}})
		case "/fail":
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "bad item"}})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"path": c.Path, "input": json.RawMessage(c.Body.Input)}})
		}
	}))
	t.Cleanup(srv.Close)
	e.createWorkflow(fmt.Sprintf(`{"name": "poll", "steps": [
	  {"name": "poll", "type": "loop", "max_iterations": 10,
	   "while": "${ iteration == 0 || steps.check.output.state != 'done' }",
	   "steps": [
	     {"name": "check", "type": "call", "url": "%[1]s/check", "input": {"iteration": "${ iteration }"}},
	     {"name": "pause", "type": "sleep", "duration": "10ms"},
	     {"name": "note", "type": "call", "url": "%[1]s/note", "input": {"iteration": "${ iteration }", "state": "${ steps.check.output.state }"}}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after", "input": {"last": "${ steps.poll.output }"}}]}`, srv.URL))

	id := e.startRun("poll", nil)
	run := e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
	var keys []string
	for _, s := range e.steps(id) {
		keys = append(keys, s.Key)
		require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status, s.Key)
	}
	sort.Strings(keys)
	require.Equal(t, []string{"after", "poll",
		"poll[0].check", "poll[0].note", "poll[0].pause",
		"poll[1].check", "poll[1].note", "poll[1].pause",
		"poll[2].check", "poll[2].note", "poll[2].pause"}, keys)
	var notes []string
	var after stepCall
	for _, c := range rec.all() {
		if c.Body.RunID != id {
			continue
		}
		switch c.Path {
		case "/note":
			notes = append(notes, string(c.Body.Input))
		case "/after":
			after = c
		}
	}
	require.Len(t, notes, 3)
	require.JSONEq(t, `{"iteration": 0, "state": "pending"}`, notes[0])
	require.JSONEq(t, `{"iteration": 2, "state": "done"}`, notes[2])
	require.JSONEq(t, `{"last": {"path": "/note", "input": {"iteration": 2, "state": "done"}}}`, string(after.Body.Input),
		"the loop's output is its last iteration's")
	cases := []struct {
		name, def string
		check     func(t *testing.T, run client.Run, steps []client.StepExecution)
	}{
		{"bounded", `{"name": "bounded", "steps": [
		  {"name": "spin", "type": "loop", "while": "${ true }", "max_iterations": 4, "steps": [
		    {"name": "tick", "type": "call", "url": "%[1]s/tick", "input": {"i": "${ iteration }"}}]}]}`,
			func(t *testing.T, run client.Run, steps []client.StepExecution) {
				require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
				require.Len(t, steps, 5, "max_iterations bounds the loop")
				out, _ := json.Marshal(run.Output)
				require.JSONEq(t, `{"path": "/tick", "input": {"i": 3}}`, string(out))
			}},
		{"never", `{"name": "never", "steps": [
		  {"name": "spin", "type": "loop", "while": "${ input.go }", "max_iterations": 4, "steps": [
		    {"name": "tick", "type": "call", "url": "%[1]s/tick"}]},
		  {"name": "after", "type": "call", "url": "%[1]s/after", "input": {"last": "${ steps.spin.output }"}}]}`,
			func(t *testing.T, run client.Run, steps []client.StepExecution) {
				require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
				require.Len(t, steps, 2, "no iteration ran")
				out, _ := json.Marshal(run.Output)
				require.JSONEq(t, `{"path": "/after", "input": {"last": null}}`, string(out))
			}},
		{"badwhile", `{"name": "badwhile", "steps": [
		  {"name": "spin", "type": "loop", "while": "${ iteration == 0 || steps.tick.output.nothing == 1 }", "max_iterations": 4, "steps": [
		    {"name": "tick", "type": "call", "url": "%[1]s/tick"}]}]}`,
			func(t *testing.T, run client.Run, steps []client.StepExecution) {
				require.Equal(t, client.RunStatus("failed"), run.Status)
				require.Contains(t, run.Error.Message, "while condition failed before iteration 1")
				require.Equal(t, "spin", *run.Error.Step)
			}},
		{"stepfails", `{"name": "stepfails", "steps": [
		  {"name": "spin", "type": "loop", "while": "${ true }", "max_iterations": 4, "steps": [
		    {"name": "pick", "type": "branch", "cases": [{"if": "${ iteration == 1 }", "steps": [
		      {"name": "bad", "type": "call", "url": "%[1]s/fail"}]}],
		     "default": [{"name": "tick", "type": "call", "url": "%[1]s/tick"}]}]}]}`,
			func(t *testing.T, run client.Run, steps []client.StepExecution) {
				require.Equal(t, client.RunStatus("failed"), run.Status)
				require.Equal(t, "spin[1].bad", *run.Error.Step)
				status := map[string]client.StepExecutionStatus{}
				for _, s := range steps {
					status[s.Key] = s.Status
				}
				require.Equal(t, client.StepExecutionStatus("failed"), status["spin"], "the loop fails with its step")
				require.Equal(t, client.StepExecutionStatus("failed"), status["spin[1].pick"], "and the branch around it")
				require.Equal(t, client.StepExecutionStatus("succeeded"), status["spin[0].tick"])
				require.NotContains(t, status, "spin[2].tick", "no iteration starts after the failure")
			}},
		{"items", `{"name": "items", "steps": [
		  {"name": "each", "type": "foreach", "items": "${ [10, 20] }", "mode": "concurrent", "steps": [
		    {"name": "spin", "type": "loop", "while": "${ iteration < 2 }", "max_iterations": 5, "steps": [
		      {"name": "tick", "type": "call", "url": "%[1]s/tick", "input": {"item": "${ item }", "i": "${ iteration }"}}]}]}]}`,
			func(t *testing.T, run client.Run, steps []client.StepExecution) {
				require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
				out, _ := json.Marshal(run.Output)
				require.JSONEq(t, `{"results": [{"path": "/tick", "input": {"item": 10, "i": 1}}, {"path": "/tick", "input": {"item": 20, "i": 1}}], "errors": []}`, string(out))
				var keys []string
				for _, s := range steps {
					keys = append(keys, s.Key)
				}
				require.Contains(t, keys, "each[1].spin[1].tick")
				require.Contains(t, keys, "each[0].spin")
			}},
		{"nested", `{"name": "nested", "steps": [
		  {"name": "fan", "type": "parallel", "branches": [
		    {"name": "a", "steps": [
		      {"name": "outer", "type": "loop", "while": "${ iteration < 2 }", "max_iterations": 3, "steps": [
		        {"name": "each", "type": "foreach", "items": "${ [iteration, iteration + 10] }", "steps": [
		          {"name": "leaf", "type": "call", "url": "%[1]s/leaf", "input": {"item": "${ item }", "i": "${ iteration }"}}]}]}]},
		    {"name": "b", "steps": [{"name": "other", "type": "call", "url": "%[1]s/other"}]}]}]}`,
			func(t *testing.T, run client.Run, steps []client.StepExecution) {
				require.Equal(t, client.RunStatus("succeeded"), run.Status, "%+v", run.Error)
				out, _ := json.Marshal(run.Output)
				require.JSONEq(t, `{"a": {"results": [{"path": "/leaf", "input": {"item": 1, "i": 1}}, {"path": "/leaf", "input": {"item": 11, "i": 1}}], "errors": []},
				  "b": {"path": "/other", "input": {}}}`, string(out))
				var keys []string
				for _, s := range steps {
					keys = append(keys, s.Key)
				}
				require.Contains(t, keys, "outer[1].each[1].leaf")
				require.Contains(t, keys, "outer[0].each[0]")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.createWorkflow(fmt.Sprintf(tc.def, srv.URL))
			id := e.startRun(tc.name, map[string]any{"go": false})
			run := e.waitRun(id, 30*time.Second, "succeeded", "failed")
			tc.check(t, run, e.steps(id))
		})
	}
}
