package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file kill and stop worker processes in the middle of a step
// and check that the run goes on, each transition recorded once.

// historyKeys renders history events as "type step#attempt", in order.
func historyKeys(events []client.HistoryEvent) []string {
	out := make([]string, len(events))
	for i, h := range events {
		s := h.Type
		if h.Step != nil {
			s += " " + *h.Step
		}
		if h.Attempt != nil {
			s += fmt.Sprintf("#%d", *h.Attempt)
		}
		out[i] = s
	}
	return out
}

// runErrorText renders a run's error as JSON.
func runErrorText(r client.Run) string {
	b, err := json.Marshal(r.Error)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// countKeys counts the occurrences of each rendered history event.
func countKeys(keys []string) map[string]int {
	m := map[string]int{}
	for _, k := range keys {
		m[k]++
	}
	return m
}

// stepByKey finds a step execution by its key.
func stepByKey(t *testing.T, steps []client.StepExecution, key string) client.StepExecution {
	t.Helper()
	for _, s := range steps {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no step execution %q among %d", key, len(steps))
	return client.StepExecution{}
}

// attemptStatuses lists a step execution's attempts' statuses in order.
func attemptStatuses(s client.StepExecution) []string {
	out := make([]string, len(s.Attempts))
	for i, a := range s.Attempts {
		out[i] = string(a.Status)
	}
	return out
}

// workItem is a run's work item as the database holds it.
type workItem struct {
	Kind      string
	Attempt   *int32
	AfterStep *string
	Owner     *string
	Leased    bool          // lease_owner set and visible_at in the future
	DueIn     time.Duration // visible_at - now()
}

// runWorkItems reads a run's work items, for assertions.
func runWorkItems(t *testing.T, db *pgxpool.Pool, runID uuid.UUID) []workItem {
	t.Helper()
	rows, err := db.Query(context.Background(), `
		SELECT kind, attempt, after_step, lease_owner,
		       lease_owner IS NOT NULL AND visible_at > now(),
		       (extract(epoch FROM visible_at - now()) * 1000)::bigint
		FROM work_items WHERE run_id = $1 AND kind NOT IN ('run_timeout') ORDER BY id`, runID)
	require.NoError(t, err)
	defer rows.Close()
	var out []workItem
	for rows.Next() {
		var w workItem
		var ms int64
		require.NoError(t, rows.Scan(&w.Kind, &w.Attempt, &w.AfterStep, &w.Owner, &w.Leased, &ms))
		w.DueIn = time.Duration(ms) * time.Millisecond
		out = append(out, w)
	}
	require.NoError(t, rows.Err())
	return out
}

// callsTo filters recorded calls by path.
func callsTo(r *recorder, path string) []stepCall {
	var out []stepCall
	for _, c := range r.all() {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// waitCall waits for a call on ch.
func waitCall(t *testing.T, ch <-chan stepCall, timeout time.Duration, what string) stepCall {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(timeout):
		t.Fatalf("no %s within %s", what, timeout)
		return stepCall{}
	}
}

// TestCrashMidStepReinvokesWithSameWebhookID kills a worker (SIGKILL) while
// its step request is in flight: another worker must take the step over
// once the lease expires — not before — with the same webhook-id and the
// next attempt number, and every transition must be recorded once.
func TestCrashMidStepReinvokesWithSameWebhookID(t *testing.T) {
	t.Parallel()
	const (
		stepTimeout = 2 * time.Second
		leaseMargin = 2 * time.Second // DURABLE_LEASE_MARGIN; the default is 30s
		lease       = stepTimeout + leaseMargin
	)

	rec := &recorder{}
	first := make(chan stepCall, 1)
	release := make(chan struct{})
	var s1Calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		if c.Path == "/s1" && s1Calls.Add(1) == 1 {
			// The first attempt hangs until its worker is gone.
			first <- c
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step, "attempt": c.Body.Attempt}})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for handlers

	e := newEnv(t, leanPool, "DURABLE_LEASE_MARGIN="+leaseMargin.String())
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "crash", "steps": [
		{"name": "s1", "type": "call", "url": "%[1]s/s1", "timeout": "2s"},
		{"name": "s2", "type": "call", "url": "%[1]s/s2", "timeout": "2s"}]}`, srv.URL))

	w1 := e.startWorker()
	id := e.startRun("crash", map[string]any{"n": 1})
	c1 := waitCall(t, first, 20*time.Second, "first request of s1")
	require.Equal(t, 1, c1.Body.Attempt)
	require.NotEmpty(t, c1.WebhookID)

	// The first worker holds the step's lease: step timeout + margin.
	items := runWorkItems(t, db, id)
	require.Len(t, items, 1, "%+v", items)
	require.Equal(t, "invoke", items[0].Kind)
	require.True(t, items[0].Leased, "the step's work item is not leased: %+v", items[0])
	require.InDelta(t, float64(lease), float64(items[0].DueIn), float64(time.Second), "lease left %s; want about %s", items[0].DueIn, lease)

	w1.kill()
	e.startWorker()

	r := e.waitRun(id, lease+20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))

	// s1 was requested twice, with the same webhook-id, by attempts 1 and 2;
	// the second only once the first worker's lease had expired.
	s1 := callsTo(rec, "/s1")
	require.Len(t, s1, 2)
	c2 := s1[1]
	require.Equal(t, c1.WebhookID, c2.WebhookID, "webhook-id changed across attempts")
	require.Equal(t, c1.WebhookID, c2.Header.Get("Idempotency-Key"))
	require.Equal(t, 2, c2.Body.Attempt)
	gap := c2.At.Sub(c1.At)
	require.GreaterOrEqual(t, gap, lease-300*time.Millisecond, "the step was taken over %s after its first request, before the %s lease expired", gap, lease)
	require.Less(t, gap, lease+10*time.Second, "the step was taken over only %s after its first request (lease %s): is DURABLE_LEASE_MARGIN honoured?", gap, lease)
	require.Len(t, callsTo(rec, "/s2"), 1)

	// Attempt 1 is recorded abandoned, attempt 2 succeeded, by another worker.
	steps := e.steps(id)
	require.Len(t, steps, 2)
	st1 := stepByKey(t, steps, "s1")
	require.Equal(t, client.StepExecutionStatus("succeeded"), st1.Status)
	require.Equal(t, 2, st1.Attempt)
	require.Equal(t, []string{"abandoned", "succeeded"}, attemptStatuses(st1))
	if st1.Attempts[0].Worker != nil && st1.Attempts[1].Worker != nil {
		require.NotEqual(t, *st1.Attempts[0].Worker, *st1.Attempts[1].Worker, "both attempts by the same worker")
	}
	st2 := stepByKey(t, steps, "s2")
	require.Equal(t, client.StepExecutionStatus("succeeded"), st2.Status)
	require.Equal(t, []string{"succeeded"}, attemptStatuses(st2))

	// Every transition once, in order.
	require.Equal(t, []string{
		"run_created", "run_started",
		"step_started s1#1", "step_abandoned s1#1",
		"step_started s1#2", "step_succeeded s1#2",
		"step_started s2#1", "step_succeeded s2#1",
		"run_succeeded",
	}, historyKeys(e.history(id)))
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM work_items WHERE run_id = $1`, id), "work items left")
	t.Logf("step taken over %s after the first request (lease %s)", gap.Round(time.Millisecond), lease)
}

// TestPausedWorkerResultIsFenced freezes a worker (SIGSTOP) while its step
// request is in flight, lets another worker take the step over and finish
// the run once the lease expires, then thaws the first worker (SIGCONT): its
// late result must be ignored, and the history must not change.
func TestPausedWorkerResultIsFenced(t *testing.T) {
	t.Parallel()
	const (
		stepTimeout = 2 * time.Second
		leaseMargin = 2 * time.Second
		lease       = stepTimeout + leaseMargin
	)

	rec := &recorder{}
	first := make(chan stepCall, 1)
	frozen := make(chan struct{})
	var s1Calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		from := "second"
		if c.Path == "/s1" && s1Calls.Add(1) == 1 {
			// Answer the first attempt only once its worker is frozen: the
			// answer waits in the socket for the worker to thaw.
			first <- c
			select {
			case <-frozen:
			case <-r.Context().Done(): // the test failed and killed the worker
				return
			}
			from = "zombie"
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step, "from": from}, "context": map[string]any{c.Body.Step: from}})
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool, "DURABLE_LEASE_MARGIN="+leaseMargin.String())
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "zombie", "steps": [
		{"name": "s1", "type": "call", "url": "%[1]s/s1", "timeout": "2s"},
		{"name": "s2", "type": "call", "url": "%[1]s/s2", "timeout": "2s"}]}`, srv.URL))

	w1 := e.startWorker()
	id := e.startRun("zombie", map[string]any{})
	c1 := waitCall(t, first, 20*time.Second, "first request of s1")
	require.NoError(t, w1.cmd.Process.Signal(syscall.SIGSTOP))
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			_ = w1.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	close(frozen)

	e.startWorker()
	r := e.waitRun(id, lease+20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
	want := []string{
		"run_created", "run_started",
		"step_started s1#1", "step_abandoned s1#1",
		"step_started s1#2", "step_succeeded s1#2",
		"step_started s2#1", "step_succeeded s2#1",
		"run_succeeded",
	}
	require.Equal(t, want, historyKeys(e.history(id)))
	s1 := callsTo(rec, "/s1")
	require.Len(t, s1, 2)
	require.Equal(t, c1.WebhookID, s1[1].WebhookID)
	before := e.run(id)

	// Thaw the first worker: it finds its lease gone and records nothing.
	require.NoError(t, w1.cmd.Process.Signal(syscall.SIGCONT))
	thawed = true
	reason := w1.waitLog(t, "step result ignored", "reason")
	require.Contains(t, reason, "lease")
	time.Sleep(500 * time.Millisecond) // let a wrongly recorded result show
	require.Equal(t, want, historyKeys(e.history(id)), "the frozen worker's late result changed the history")
	after := e.run(id)
	require.Equal(t, before.Status, after.Status)
	require.Equal(t, before.Context, after.Context, "the frozen worker's late result changed the run's context")
	require.Equal(t, before.Output, after.Output)
	st1 := stepByKey(t, e.steps(id), "s1")
	require.Equal(t, []string{"abandoned", "succeeded"}, attemptStatuses(st1))
	require.Equal(t, map[string]any{"step": "s1", "from": "second"}, st1.Output, "s1's output")
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM work_items WHERE run_id = $1`, id), "work items left")
	require.Len(t, callsTo(rec, "/s2"), 1, "s2 invoked again")
}

// TestShutdownFinishesStepInFlight stops a worker (SIGTERM) during a step
// that takes about a second: the step completes and is recorded, the
// worker exits without starting the next step, and another worker goes on
// from the next step.
func TestShutdownFinishesStepInFlight(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second

	rec := &recorder{}
	inS1 := make(chan stepCall, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		if c.Path == "/s1" {
			inS1 <- c
			time.Sleep(time.Second)
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step}})
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "drain", "steps": [
		{"name": "s1", "type": "call", "url": "%[1]s/s1", "timeout": "10s"},
		{"name": "s2", "type": "call", "url": "%[1]s/s2", "timeout": "10s"},
		{"name": "s3", "type": "call", "url": "%[1]s/s3", "timeout": "10s"}]}`, srv.URL))

	w1 := e.startWorker("DURABLE_SHUTDOWN_GRACE=" + grace.String())
	id := e.startRun("drain", map[string]any{})
	waitCall(t, inS1, 20*time.Second, "request of s1")

	stop := time.Now()
	w1.terminate(t, grace+5*time.Second)
	took := time.Since(stop)
	require.Less(t, took, grace, "the worker took %s to stop; the step took about 1s", took)
	require.Equal(t, 0, w1.cmd.ProcessState.ExitCode(), "worker exit status")

	// s1 completed and was recorded; s2 was not started.
	require.Len(t, callsTo(rec, "/s1"), 1)
	require.Empty(t, callsTo(rec, "/s2"), "the stopping worker started the next step")
	steps := e.steps(id)
	require.Len(t, steps, 1, "step executions after the first worker stopped")
	require.Equal(t, client.StepExecutionStatus("succeeded"), steps[0].Status)
	require.Equal(t, []string{"succeeded"}, attemptStatuses(steps[0]))
	// The run is handed back to the queue, unleased, to go on after s1.
	items := runWorkItems(t, db, id)
	require.Len(t, items, 1, "%+v", items)
	require.Equal(t, "advance", items[0].Kind)
	require.NotNil(t, items[0].AfterStep)
	require.Equal(t, "s1", *items[0].AfterStep)
	require.False(t, items[0].Leased, "the stopped worker still leases the run's work: %+v", items[0])
	require.Nil(t, items[0].Owner, "the stopped worker still owns the run's work")
	require.Equal(t, []string{"run_created", "run_started", "step_started s1#1", "step_succeeded s1#1"}, historyKeys(e.history(id)))

	// Another worker goes on from s2.
	e.startWorker()
	r := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
	require.Len(t, callsTo(rec, "/s1"), 1, "s1 invoked again")
	require.Len(t, callsTo(rec, "/s2"), 1)
	require.Len(t, callsTo(rec, "/s3"), 1)
	require.Equal(t, []string{
		"run_created", "run_started",
		"step_started s1#1", "step_succeeded s1#1",
		"step_started s2#1", "step_succeeded s2#1",
		"step_started s3#1", "step_succeeded s3#1",
		"run_succeeded",
	}, historyKeys(e.history(id)))
	t.Logf("worker stopped %s after SIGTERM", took.Round(time.Millisecond))
}

// TestShutdownAbandonsSlowStep stops a worker (SIGTERM) during a step that
// outlasts the shutdown grace: the attempt is abandoned and released, so
// another worker re-runs it at once — not after the lease — with the same
// webhook-id.
func TestShutdownAbandonsSlowStep(t *testing.T) {
	t.Parallel()
	const grace = time.Second

	rec := &recorder{}
	calls := make(chan stepCall, 4)
	release := make(chan struct{})
	var cut atomic.Bool
	var s1Calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		if c.Path == "/s1" {
			calls <- c
			if s1Calls.Add(1) == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
					cut.Store(true) // the worker gave the request up
				}
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step}})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	// The default lease margin (30s): a re-run after the lease would be
	// 50s away.
	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "slow", "steps": [
		{"name": "s1", "type": "call", "url": "%[1]s/s1", "timeout": "20s"},
		{"name": "s2", "type": "call", "url": "%[1]s/s2", "timeout": "20s"}]}`, srv.URL))

	w1 := e.startWorker("DURABLE_SHUTDOWN_GRACE=" + grace.String())
	id := e.startRun("slow", map[string]any{})
	c1 := waitCall(t, calls, 20*time.Second, "first request of s1")

	stop := time.Now()
	w1.terminate(t, grace+10*time.Second)
	took := time.Since(stop)
	require.GreaterOrEqual(t, took, grace-100*time.Millisecond, "the worker did not wait for the grace period")
	require.Less(t, took, grace+3*time.Second, "the worker took %s to stop with a grace of %s", took, grace)
	require.Equal(t, 0, w1.cmd.ProcessState.ExitCode(), "worker exit status")
	require.Eventually(t, cut.Load, 5*time.Second, 20*time.Millisecond, "the abandoned request was not cut off")

	// Attempt 1 is recorded abandoned; the step is due again at once, for
	// any worker.
	steps := e.steps(id)
	require.Len(t, steps, 1)
	require.Equal(t, []string{"abandoned"}, attemptStatuses(steps[0]))
	items := runWorkItems(t, db, id)
	require.Len(t, items, 1, "%+v", items)
	require.Equal(t, "invoke", items[0].Kind)
	require.NotNil(t, items[0].Attempt)
	require.EqualValues(t, 2, *items[0].Attempt)
	require.False(t, items[0].Leased, "the abandoned step's work is still leased: %+v", items[0])
	require.LessOrEqual(t, items[0].DueIn, time.Duration(0), "the abandoned step is due only in %s", items[0].DueIn)

	restart := time.Now()
	e.startWorker()
	c2 := waitCall(t, calls, 10*time.Second, "second request of s1 (the lease would end in 50s)")
	promptly := c2.At.Sub(restart)
	require.Less(t, promptly, 5*time.Second)
	require.Equal(t, c1.WebhookID, c2.WebhookID, "webhook-id changed across attempts")
	require.Equal(t, 2, c2.Body.Attempt)

	r := e.waitRun(id, 20*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
	require.Len(t, callsTo(rec, "/s1"), 2)
	require.Len(t, callsTo(rec, "/s2"), 1)
	st1 := stepByKey(t, e.steps(id), "s1")
	require.Equal(t, []string{"abandoned", "succeeded"}, attemptStatuses(st1))
	keys := historyKeys(e.history(id))
	for k, n := range countKeys(keys) {
		require.Equal(t, 1, n, "history event %q recorded %d times: %v", k, n, keys)
	}
	n := countKeys(keys)
	require.Equal(t, 1, n["step_succeeded s1#2"], "%v", keys)
	require.Equal(t, 1, n["step_succeeded s2#1"], "%v", keys)
	require.Equal(t, 1, n["run_succeeded"], "%v", keys)
	require.Equal(t, 1, n["step_abandoned s1#1"]+n["step_retry_scheduled s1#1"], "attempt 1's end is not in the history: %v", keys)
	t.Logf("worker stopped %s after SIGTERM; the step re-ran %s after a new worker started; history %v",
		took.Round(time.Millisecond), promptly.Round(time.Millisecond), keys)
}

// TestShutdownAbandonsLastAttempt stops a worker (SIGTERM) past its grace
// during the only attempt a step's retry policy allows. DESIGN.md: "A
// worker that dies mid-step loses its lease; another worker invokes the step
// again with the same webhook-id" — a worker stopped on purpose abandons the
// attempt through no fault of the endpoint, so the step must be invoked
// again rather than failed for want of attempts.
func TestShutdownAbandonsLastAttempt(t *testing.T) {
	t.Parallel()
	const grace = 500 * time.Millisecond

	rec := &recorder{}
	calls := make(chan stepCall, 4)
	release := make(chan struct{})
	var s1Calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		calls <- c
		if s1Calls.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": "done"})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "once", "steps": [
		{"name": "s1", "type": "call", "url": "%s/s1", "timeout": "20s", "retry": {"max_attempts": 1}}]}`, srv.URL))
	w1 := e.startWorker("DURABLE_SHUTDOWN_GRACE=" + grace.String())
	id := e.startRun("once", map[string]any{})
	c1 := waitCall(t, calls, 20*time.Second, "first request of s1")
	w1.terminate(t, grace+10*time.Second)

	e.startWorker()
	r := e.waitRun(id, 20*time.Second)
	keys := historyKeys(e.history(id))
	require.Equal(t, client.RunStatus("succeeded"), r.Status,
		"the step was not invoked again after its worker shut down (run error: %s); history %v", runErrorText(r), keys)
	s1 := callsTo(rec, "/s1")
	require.Len(t, s1, 2)
	require.Equal(t, c1.WebhookID, s1[1].WebhookID)
}
