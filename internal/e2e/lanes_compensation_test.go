package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file fail runs after steps inside parallel branches and
// foreach items succeeded: their compensations run with the others', in
// reverse order of completion, and steps that a failing sibling cancelled
// are not compensated.

// compensationBody is what Durable posts to a compensation endpoint.
type compensationBody struct {
	Compensation bool            `json:"compensation"`
	Step         string          `json:"step"`
	Input        json.RawMessage `json:"input"`
	Output       json.RawMessage `json:"output"`
}

// compensationsOf lists the compensation requests a recorder got, in order
// of arrival: those to paths under /c/.
func compensationsOf(t *testing.T, rec *recorder) ([]stepCall, []compensationBody) {
	t.Helper()
	var calls []stepCall
	var bodies []compensationBody
	for _, c := range rec.all() {
		if !strings.HasPrefix(c.Path, "/c/") {
			continue
		}
		var b compensationBody
		require.NoError(t, json.Unmarshal(c.Raw, &b), "%s", c.Raw)
		calls, bodies = append(calls, c), append(bodies, b)
	}
	return calls, bodies
}

// mustJSONOf encodes v, for comparing decoded API values with raw JSON.
func mustJSONOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestCompensationInLanes fails a run after a top-level step, the steps of
// two parallel branches and the steps of three foreach items succeeded:
// all six are compensated, in reverse order of completion, each with its own
// input and output, each under the webhook-id cmp_<execution id>.
func TestCompensationInLanes(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch {
		case strings.HasPrefix(c.Path, "/c/"):
			writeJSON(w, http.StatusOK, map[string]any{})
		case c.Path == "/boom":
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "boom"}})
		default:
			if c.Path == "/pb" {
				time.Sleep(500 * time.Millisecond) // pa finishes first
			}
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{
				"done": c.Path, "echo": json.RawMessage(c.Body.Input), "webhook": c.WebhookID}})
		}
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t)
	e.startWorker()
	e.createWorkflow(fmt.Sprintf(`{"name": "lane-saga", "steps": [
	  {"name": "first", "type": "call", "url": "%[1]s/first", "input": {"order": "${ input.order }"},
	   "compensate": {"url": "%[1]s/c/first"}},
	  {"name": "p", "type": "parallel", "branches": [
	    {"name": "a", "steps": [{"name": "pa", "type": "call", "url": "%[1]s/pa", "input": {"branch": "a"},
	      "compensate": {"url": "%[1]s/c/pa"}}]},
	    {"name": "b", "steps": [{"name": "pb", "type": "call", "url": "%[1]s/pb", "input": {"branch": "b"},
	      "compensate": {"url": "%[1]s/c/pb"}}]}]},
	  {"name": "f", "type": "foreach", "items": "${ input.xs }", "mode": "sequential", "steps": [
	    {"name": "item", "type": "call", "url": "%[1]s/item", "input": {"x": "${ item }", "i": "${ index }"},
	     "compensate": {"url": "%[1]s/c/item"}}]},
	  {"name": "boom", "type": "call", "url": "%[1]s/boom", "retry": {"max_attempts": 1}}]}`, srv.URL))

	id := e.startRun("lane-saga", map[string]any{"order": "o-1", "xs": []string{"x0", "x1", "x2"}})
	run := e.waitRun(id, 30*time.Second)
	events := e.history(id)
	require.Equal(t, client.RunStatus("compensated"), run.Status, "run error: %s; history %v", runErrorText(run), historyKeys(events))
	require.Contains(t, runErrorText(run), "boom", "the run keeps the failure that made it compensate")

	// The compensable step executions, by id, and in reverse order of
	// completion as their finished_at says.
	steps := e.steps(id)
	byID := map[string]client.StepExecution{}
	var done []client.StepExecution
	compensable := map[string]bool{"first": true, "pa": true, "pb": true, "item": true}
	for _, s := range steps {
		if compensable[s.Name] && s.Type == "call" {
			byID[s.Id.String()] = s
			done = append(done, s)
		}
	}
	require.Len(t, done, 6, "compensable step executions")
	for _, s := range done {
		require.NotNil(t, s.FinishedAt, "step %s has no finished_at", s.Key)
		require.Equal(t, client.StepExecutionStatus("compensated"), s.Status, "step %s", s.Key)
	}
	sort.SliceStable(done, func(i, j int) bool {
		if !done[i].FinishedAt.Equal(*done[j].FinishedAt) {
			return done[i].FinishedAt.After(*done[j].FinishedAt)
		}
		return done[i].Id.String() > done[j].Id.String()
	})
	var byFinish []string
	for _, s := range done {
		byFinish = append(byFinish, s.Key)
	}
	wantOrder := []string{"f[2].item", "f[1].item", "f[0].item", "pb", "pa", "first"}
	require.Equal(t, wantOrder, byFinish, "the steps did not finish in the order the step server's delays make")

	// The compensations arrived in that order, once each, with the
	// original step's input and output.
	calls, bodies := compensationsOf(t, rec)
	var got []string
	for i, c := range calls {
		require.True(t, strings.HasPrefix(c.WebhookID, "cmp_"), "compensation webhook-id %q", c.WebhookID)
		s, ok := byID[strings.TrimPrefix(c.WebhookID, "cmp_")]
		require.True(t, ok, "compensation %d (%s) has the webhook-id %s of no compensable step execution", i, c.Path, c.WebhookID)
		got = append(got, s.Key)
		b := bodies[i]
		require.True(t, b.Compensation, "compensation of %s: %s", s.Key, c.Raw)
		require.Equal(t, s.Name, b.Step, "compensation of %s", s.Key)
		require.Equal(t, "/c/"+s.Name, c.Path, "compensation of %s", s.Key)
		require.JSONEq(t, mustJSONOf(t, s.Input), string(b.Input), "compensation of %s: the step's input", s.Key)
		require.JSONEq(t, mustJSONOf(t, s.Output), string(b.Output), "compensation of %s: the step's output", s.Key)
	}
	require.Equal(t, byFinish, got, "compensations out of reverse order of completion")
	require.Equal(t, wantOrder, got)

	// And those are what the steps really got and answered: each item its
	// own item.
	original := map[string]stepCall{}
	for _, c := range rec.all() {
		switch c.Path {
		case "/first", "/pa", "/pb":
			original[c.Body.Step] = c
		case "/item":
			var in struct {
				I int `json:"i"`
			}
			require.NoError(t, json.Unmarshal(c.Body.Input, &in))
			original[fmt.Sprintf("f[%d].item", in.I)] = c
		}
	}
	wantInput := map[string]string{
		"first": `{"order": "o-1"}`, "pa": `{"branch": "a"}`, "pb": `{"branch": "b"}`,
		"f[0].item": `{"x": "x0", "i": 0}`, "f[1].item": `{"x": "x1", "i": 1}`, "f[2].item": `{"x": "x2", "i": 2}`,
	}
	for i, c := range calls {
		key := got[i]
		orig, ok := original[key]
		require.True(t, ok, "no original request of %s", key)
		require.JSONEq(t, wantInput[key], string(orig.Body.Input), "original input of %s", key)
		require.JSONEq(t, wantInput[key], string(bodies[i].Input), "compensation input of %s", key)
		wantOutput := mustJSONOf(t, map[string]any{"done": orig.Path, "echo": json.RawMessage(orig.Body.Input), "webhook": orig.WebhookID})
		require.JSONEq(t, wantOutput, string(bodies[i].Output), "compensation output of %s", key)
		require.NotEqual(t, orig.WebhookID, c.WebhookID)
	}

	// Each compensated once in the history; the blocks and lanes stay
	// succeeded, boom failed.
	n := countKeys(historyKeys(events))
	for _, k := range wantOrder {
		require.Equal(t, 1, n["step_compensated "+k+"#1"], "step_compensated %s; history %v", k, historyKeys(events))
	}
	status := map[string]string{}
	for _, s := range steps {
		status[s.Key] = string(s.Status)
	}
	for _, k := range []string{"p", "p[a]", "p[b]", "f", "f[0]", "f[1]", "f[2]"} {
		require.Equal(t, "succeeded", status[k], "%s: %v", k, status)
	}
	require.Equal(t, "failed", status["boom"], "%v", status)
	types := e.historyTypes(id)
	require.Equal(t, "run_compensated", types[len(types)-1])
}

// TestCompensationAfterFailFast fails one branch of a parallel step while
// the other branch has a compensable step done and another in flight: the
// run compensates the done step once, and not the cancelled one, even when
// the cancelled step's late answer arrives while the run compensates.
func TestCompensationAfterFailFast(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	a2Started := make(chan struct{})
	a2Answered := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseA2 := func() { releaseOnce.Do(func() { close(release) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		switch c.Path {
		case "/b1":
			// Fail only once branch a's second step is in flight.
			select {
			case <-a2Started:
			case <-time.After(20 * time.Second):
			}
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "b1 refused"}})
		case "/a2":
			close(a2Started)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"late": true}})
			close(a2Answered)
		case "/c/a1":
			// Let the cancelled step answer while the run compensates.
			releaseA2()
			select {
			case <-a2Answered:
			case <-time.After(5 * time.Second):
			}
			time.Sleep(300 * time.Millisecond) // let a wrongly recorded late answer show
			writeJSON(w, http.StatusOK, map[string]any{})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"done": c.Path}})
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(releaseA2) // before srv.Close

	e := newEnv(t)
	w := e.startWorker()
	e.createWorkflow(fmt.Sprintf(`{"name": "ff-saga", "steps": [
	  {"name": "p", "type": "parallel", "on_error": "fail_fast", "branches": [
	    {"name": "a", "steps": [
	      {"name": "a1", "type": "call", "url": "%[1]s/a1", "input": {"n": 1}, "compensate": {"url": "%[1]s/c/a1"}},
	      {"name": "a2", "type": "call", "url": "%[1]s/a2", "compensate": {"url": "%[1]s/c/a2"}},
	      {"name": "a3", "type": "call", "url": "%[1]s/a3", "compensate": {"url": "%[1]s/c/a3"}}]},
	    {"name": "b", "steps": [
	      {"name": "b1", "type": "call", "url": "%[1]s/b1", "retry": {"max_attempts": 1}}]}]},
	  {"name": "after", "type": "call", "url": "%[1]s/after"}]}`, srv.URL))

	id := e.startRun("ff-saga", map[string]any{})
	run := e.waitRun(id, 30*time.Second)
	events := e.history(id)
	require.Equal(t, client.RunStatus("compensated"), run.Status, "run error: %s; history %v", runErrorText(run), historyKeys(events))
	require.NotNil(t, run.Error)
	require.NotNil(t, run.Error.Step)
	require.Equal(t, "p", *run.Error.Step)
	require.Contains(t, run.Error.Message, "branch b failed")

	select {
	case <-a2Answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled step a2 was never answered")
	}
	// The worker got the late answer and ignored it.
	require.Equal(t, "a2", w.waitLog(t, "step result ignored", "step"))
	time.Sleep(300 * time.Millisecond)
	events = e.history(id)

	calls, bodies := compensationsOf(t, rec)
	var paths []string
	for _, c := range calls {
		paths = append(paths, c.Path)
	}
	require.Equal(t, []string{"/c/a1"}, paths, "compensations requested")
	a1 := stepByKey(t, e.steps(id), "a1")
	require.Equal(t, "cmp_"+a1.Id.String(), calls[0].WebhookID)
	require.JSONEq(t, `{"n": 1}`, string(bodies[0].Input))
	require.JSONEq(t, `{"done": "/a1"}`, string(bodies[0].Output))

	status := map[string]string{}
	for _, s := range e.steps(id) {
		status[s.Key] = string(s.Status)
	}
	require.Equal(t, map[string]string{
		"p": "failed", "p[a]": "cancelled", "p[b]": "failed",
		"a1": "compensated", "a2": "cancelled", "b1": "failed",
	}, status, "history %v", historyKeys(events))
	for _, c := range rec.all() {
		require.NotContains(t, []string{"/a3", "/after"}, c.Path, "a step after the failure ran")
	}
	n := countKeys(historyKeys(events))
	require.Equal(t, 1, n["step_compensated a1#1"], "%v", historyKeys(events))
	require.Zero(t, n["step_succeeded a2#1"], "the cancelled step's late answer was recorded: %v", historyKeys(events))
	types := e.historyTypes(id)
	require.Equal(t, "run_compensated", types[len(types)-1])
	require.Equal(t, 1, countKeys(types)["run_compensated"], "%v", types)
}
