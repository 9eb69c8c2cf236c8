package e2e_test

import (
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
