package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// TestWaitWorkerKilledWhileRunsWait SIGKILLs the only worker while runs
// sleep and wait for events. With no worker running, the events are
// published (the API resumes their waits; the next steps wait for a
// worker) and the timers come due. A second worker then fires the timers,
// late, saying how late, and runs every next step: nothing lost, nothing
// doubled.
func TestWaitWorkerKilledWhileRunsWait(t *testing.T) {
	t.Parallel()
	const (
		sleepers = 5
		waiters  = 5
		napFor   = 2 * time.Second
	)
	e := newEnv(t, leanPool)
	srv, rec := wtEcho(t)
	e.createWorkflow(stDef(t, map[string]any{"name": "crash-sleep", "steps": []any{
		map[string]any{"name": "nap", "type": "sleep", "duration": napFor.String()},
		map[string]any{"name": "after", "type": "call", "url": srv.URL + "/after", "input": map[string]any{"late_ms": "${ steps.nap.output.late_ms }", "i": "${ input.i }"}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "crash-event", "steps": []any{
		map[string]any{"name": "w", "type": "wait_for_event", "event": "crash.go", "key": "${ input.key }", "lookback": "0s"},
		map[string]any{"name": "after", "type": "call", "url": srv.URL + "/after", "input": map[string]any{"p": "${ steps.w.output }"}},
	}}))
	first := e.startWorker()

	var sleeping, waiting []uuid.UUID
	for i := range sleepers {
		sleeping = append(sleeping, e.startRun("crash-sleep", map[string]any{"i": i}))
	}
	for i := range waiters {
		waiting = append(waiting, e.startRun("crash-event", map[string]any{"key": fmt.Sprintf("k%d", i)}))
	}
	for _, id := range sleeping {
		wtAwaitWaiting(t, e, id, "nap")
	}
	for _, id := range waiting {
		wtAwaitWaiting(t, e, id, "w")
	}
	first.kill()
	killed := time.Now()

	// No worker: the API takes the events and resumes the waits; the next
	// steps are not called.
	for i, id := range waiting {
		status, pub := wtPublish(t, e, "crash.go", fmt.Sprintf("k%d", i), map[string]any{"i": i}, "")
		require.Equal(t, http.StatusCreated, status)
		require.Equal(t, 1, pub.Resumed, "run %s", id)
		s := stStepNamed(t, e.steps(id), "w")
		require.Equal(t, client.StepExecutionStatus("succeeded"), s.Status)
		require.JSONEq(t, fmt.Sprintf(`{"i": %d}`, i), stJSON(t, s.Output))
		require.Equal(t, client.RunStatus("running"), e.run(id).Status, "resumed, the run waits for a worker to run its next step")
	}

	// The timers come due with no worker to fire them.
	var due time.Time
	for _, id := range sleeping {
		s := stStepNamed(t, e.steps(id), "nap")
		require.NotNil(t, s.Deadline)
		if s.Deadline.After(due) {
			due = *s.Deadline
		}
	}
	time.Sleep(time.Until(due.Add(700 * time.Millisecond)))
	for _, id := range sleeping {
		r := e.run(id)
		require.Equal(t, client.RunStatus("waiting"), r.Status, "no worker runs, so the sleep cannot have ended")
	}
	require.Empty(t, rec.all(), "no step may run while no worker does")

	restarted := time.Now()
	e.startWorker()
	for _, id := range append(append([]uuid.UUID{}, sleeping...), waiting...) {
		r := e.waitRun(id, 15*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, "run %s: %s %v", id, runErrorText(r), historyKeys(e.history(id)))
	}
	t.Logf("worker down for %s; all runs done %s after the restart", restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))

	for _, id := range sleeping {
		h := e.history(id)
		keys := countKeys(historyKeys(h))
		require.Equal(t, 1, keys["step_waiting nap#1"], "%v", historyKeys(h))
		require.Equal(t, 1, keys["step_succeeded nap#1"], "%v", historyKeys(h))
		require.Equal(t, 1, keys["step_started after#1"], "%v", historyKeys(h))
		require.Equal(t, 1, keys["step_succeeded after#1"], "%v", historyKeys(h))
		require.Equal(t, 1, keys["run_succeeded"], "%v", historyKeys(h))
		s := stStepNamed(t, e.steps(id), "nap")
		late, ok := wtHistoryData(t, h, "step_succeeded", "nap")["late_ms"].(float64)
		require.True(t, ok, "the fired timer's history says how late it was")
		lateBy := restarted.Sub(*s.Deadline)
		require.GreaterOrEqual(t, late, float64(lateBy.Milliseconds()-50), "the timer was due %s before a worker returned", lateBy)
		require.Less(t, late, float64(lateBy.Milliseconds()+5000))
		calls := wtCallsOf(rec, id)
		require.Len(t, calls, 1, "the step after the sleep runs once")
		var in struct {
			LateMS float64 `json:"late_ms"`
		}
		require.NoError(t, json.Unmarshal(calls[0].Body.Input, &in))
		require.Equal(t, late, in.LateMS, "the sleep's output reached the next step")
	}
	for i, id := range waiting {
		h := e.history(id)
		keys := countKeys(historyKeys(h))
		require.Equal(t, 1, keys["step_succeeded w#1"], "%v", historyKeys(h))
		require.Equal(t, 1, keys["step_started after#1"], "%v", historyKeys(h))
		require.Equal(t, 1, keys["step_succeeded after#1"], "%v", historyKeys(h))
		require.Zero(t, keys["step_abandoned after#1"], "%v", historyKeys(h))
		calls := wtCallsOf(rec, id)
		require.Len(t, calls, 1, "the step after the event runs once")
		require.JSONEq(t, fmt.Sprintf(`{"p": {"i": %d}}`, i), string(calls[0].Body.Input))
		require.False(t, calls[0].At.Before(restarted), "the next step ran only once a worker was back")
	}
}
