package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file drive schedules end to end: real api and worker
// processes fire them on the clock. Firings are read from the database
// (schedule_fires, runs.schedule_id) with read-only queries, and through
// the API. Helpers are prefixed "sc".

// scFire is one row of schedule_fires.
type scFire struct {
	FireTime time.Time
	RunID    *uuid.UUID
	Outcome  string
	Manual   bool
	FiredAt  time.Time
}

func (f scFire) String() string {
	run := "-"
	if f.RunID != nil {
		run = f.RunID.String()
	}
	return fmt.Sprintf("%s %s run=%s manual=%v fired_at=%s", f.FireTime.UTC().Format(time.RFC3339Nano), f.Outcome, run, f.Manual, f.FiredAt.UTC().Format(time.RFC3339Nano))
}

// scFires reads a schedule's firings, oldest fire time first.
func scFires(t *testing.T, db *pgxpool.Pool, id uuid.UUID) []scFire {
	t.Helper()
	rows, err := db.Query(context.Background(), `
		SELECT fire_time, run_id::text, outcome, manual, fired_at
		FROM schedule_fires WHERE schedule_id = $1 ORDER BY fire_time`, id)
	require.NoError(t, err)
	defer rows.Close()
	var out []scFire
	for rows.Next() {
		var f scFire
		var run *string
		require.NoError(t, rows.Scan(&f.FireTime, &run, &f.Outcome, &f.Manual, &f.FiredAt))
		if run != nil {
			id := uuid.MustParse(*run)
			f.RunID = &id
		}
		out = append(out, f)
	}
	require.NoError(t, rows.Err())
	return out
}

// scRunIDs lists the runs a schedule started, oldest first.
func scRunIDs(t *testing.T, db *pgxpool.Pool, id uuid.UUID) []uuid.UUID {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT id::text FROM runs WHERE schedule_id = $1 ORDER BY created_at, id`, id)
	require.NoError(t, err)
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, uuid.MustParse(s))
	}
	require.NoError(t, rows.Err())
	return out
}

// scEventually polls cond every 20 ms until it holds or timeout passes.
func scEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scWaitFires waits until the schedule's firings satisfy cond and returns them.
func scWaitFires(t *testing.T, db *pgxpool.Pool, id uuid.UUID, timeout time.Duration, what string, cond func([]scFire) bool) []scFire {
	t.Helper()
	var fires []scFire
	deadline := time.Now().Add(timeout)
	for {
		fires = scFires(t, db, id)
		if cond(fires) {
			return fires
		}
		if time.Now().After(deadline) {
			t.Fatalf("firings not as wanted within %s (%s):\n%s", timeout, what, scDump(fires))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scDump(fires []scFire) string {
	var b strings.Builder
	for _, f := range fires {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

// scContiguous requires the fire times to be every period from first on,
// with no gap and no repeat.
func scContiguous(t *testing.T, fires []scFire, first time.Time, period time.Duration) {
	t.Helper()
	for i, f := range fires {
		require.True(t, f.FireTime.Equal(first.Add(time.Duration(i)*period)), "firing %d is at %s, wanted %s:\n%s", i, f.FireTime.UTC(), first.Add(time.Duration(i)*period).UTC(), scDump(fires))
	}
}

// scFireOf finds the firing that started run.
func scFireOf(t *testing.T, fires []scFire, run uuid.UUID) scFire {
	t.Helper()
	for _, f := range fires {
		if f.RunID != nil && *f.RunID == run {
			return f
		}
	}
	t.Fatalf("no firing started run %s:\n%s", run, scDump(fires))
	return scFire{}
}

func scPtr[T any](v T) *T { return &v }

// scCallDef is a one-step workflow calling url.
func scCallDef(name, url string) string {
	return fmt.Sprintf(`{"name": %q, "steps": [{"name": "work", "type": "call", "url": %q, "timeout": "60s"}]}`, name, url)
}

// scCreate creates a schedule and requires a 201.
func scCreate(t *testing.T, e *env, req client.ScheduleRequest) client.Schedule {
	t.Helper()
	res, err := e.client.CreateScheduleWithResponse(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))
	require.Equal(t, "/v1/schedules/"+res.JSON201.Id.String(), res.HTTPResponse.Header.Get("Location"))
	return *res.JSON201
}

func scGet(t *testing.T, e *env, id uuid.UUID) client.ScheduleDetail {
	t.Helper()
	res, err := e.client.GetScheduleWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

func scPause(t *testing.T, e *env, id uuid.UUID) client.Schedule {
	t.Helper()
	res, err := e.client.PauseScheduleWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.True(t, res.JSON200.Paused)
	return *res.JSON200
}

func scResume(t *testing.T, e *env, id uuid.UUID) client.Schedule {
	t.Helper()
	res, err := e.client.ResumeScheduleWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.False(t, res.JSON200.Paused)
	return *res.JSON200
}

func scTrigger(t *testing.T, e *env, id uuid.UUID) client.ScheduleFire {
	t.Helper()
	res, err := e.client.TriggerScheduleWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))
	return *res.JSON201
}

func scPatch(t *testing.T, e *env, id uuid.UUID, p client.SchedulePatch) client.Schedule {
	t.Helper()
	res, err := e.client.UpdateScheduleWithResponse(context.Background(), id, p)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

// scRunsOf lists the runs of a workflow through the API.
func scRunsOf(t *testing.T, e *env, workflow string) []client.RunSummary {
	t.Helper()
	limit := 1000
	res, err := e.client.ListRunsWithResponse(context.Background(), &client.ListRunsParams{Workflow: &workflow, Limit: &limit})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	return res.JSON200.Items
}

// scErrorLogs returns a process's ERROR log lines.
func scErrorLogs(p *proc) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.logs {
		if l["level"] == "ERROR" {
			out = append(out, fmt.Sprint(l))
		}
	}
	return out
}

// scLogs returns a process's log lines with message msg.
func scLogs(p *proc, msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.logs {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// scEcho is a step server that answers every call at once.
func scEcho(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.readStep(t, r)
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"ok": true}})
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

// scHold is a step server that holds every call until released: the run
// that made it stays active meanwhile.
type scHold struct {
	url   string
	calls chan stepCall
	rec   *recorder
	mu    sync.Mutex
	gate  chan struct{}
}

func newScHold(t *testing.T) *scHold {
	t.Helper()
	h := &scHold{calls: make(chan stepCall, 256), rec: &recorder{}, gate: make(chan struct{})}
	over, end := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := h.rec.readStep(t, r)
		h.calls <- c
		h.mu.Lock()
		gate := h.gate
		h.mu.Unlock()
		select {
		case <-gate:
			writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"released": true}})
		case <-r.Context().Done():
		case <-over.Done():
		}
	}))
	h.url = srv.URL
	t.Cleanup(srv.Close)
	t.Cleanup(end) // runs first: held requests end, so Close does not wait
	return h
}

// release answers the calls held now; later calls are held again.
func (h *scHold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.gate)
	h.gate = make(chan struct{})
}

// next returns the next call to arrive.
func (h *scHold) next(t *testing.T, timeout time.Duration) stepCall {
	t.Helper()
	select {
	case c := <-h.calls:
		return c
	case <-time.After(timeout):
		t.Fatalf("no step call within %s", timeout)
		return stepCall{}
	}
}

// TestScheduleEverySecondThreeWorkers runs an `@every 1s` schedule for
// about four seconds with three workers racing for it: every tick fires
// exactly once, with exactly one run.
func TestScheduleEverySecondThreeWorkers(t *testing.T) {
	t.Parallel()
	srv, rec := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-tick", srv.URL+"/tick"))
	var workers []*proc
	var metricsURLs []string
	for range 3 {
		w := e.startWorker("DURABLE_METRICS_ADDR=127.0.0.1:0")
		workers = append(workers, w)
		metricsURLs = append(metricsURLs, "http://"+w.waitLog(t, "metrics listening", "addr"))
	}

	sch := scCreate(t, e, client.ScheduleRequest{Name: "every-second", Workflow: "sc-tick", Cron: "@every 1s"})
	require.Equal(t, "UTC", sch.Timezone)
	require.EqualValues(t, "allow", sch.OverlapPolicy)
	require.EqualValues(t, "api", sch.Source)
	require.NotNil(t, sch.NextFireAt)
	first := *sch.NextFireAt
	require.True(t, first.Equal(first.Truncate(time.Second)), "@every 1s fires on whole seconds, not at %s", first)
	require.True(t, first.After(sch.CreatedAt.Add(-time.Second)) && !first.After(sch.CreatedAt.Add(1100*time.Millisecond)),
		"first firing %s is the next whole second after the creation at %s", first, sch.CreatedAt)

	// Four ticks come due within ~4 s of creation.
	scWaitFires(t, db, sch.Id, 15*time.Second, "four firings", func(f []scFire) bool { return len(f) >= 4 })
	scPause(t, e, sch.Id)
	fires := scFires(t, db, sch.Id)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, fires, scFires(t, db, sch.Id), "no firing once paused")

	scContiguous(t, fires, first, time.Second)
	var lateness []time.Duration
	runsOfFires := map[uuid.UUID]time.Time{}
	for _, f := range fires {
		require.Equal(t, "started", f.Outcome, "%s", f)
		require.False(t, f.Manual)
		require.NotNil(t, f.RunID, "%s", f)
		_, dup := runsOfFires[*f.RunID]
		require.False(t, dup, "run %s started by two firings:\n%s", *f.RunID, scDump(fires))
		runsOfFires[*f.RunID] = f.FireTime
		lateness = append(lateness, f.FiredAt.Sub(f.FireTime))
	}
	t.Logf("%d firings; lateness (fired_at - fire_time): %v", len(fires), lateness)

	// One run per firing, and no run without a firing.
	runs := scRunIDs(t, db, sch.Id)
	require.Len(t, runs, len(fires), "runs started by the schedule")
	for _, id := range runs {
		_, ok := runsOfFires[id]
		require.True(t, ok, "run %s belongs to no firing", id)
		require.EqualValues(t, "succeeded", e.waitRun(id, 15*time.Second).Status)
	}
	require.Len(t, scRunsOf(t, e, "sc-tick"), len(fires), "GET /v1/runs?workflow=")
	calls := rec.all()
	require.Len(t, calls, len(fires), "one step call per run")
	called := map[uuid.UUID]bool{}
	for _, c := range calls {
		require.False(t, called[c.Body.RunID], "run %s called its step twice", c.Body.RunID)
		called[c.Body.RunID] = true
	}

	// The API shows the same history, newest first.
	d := scGet(t, e, sch.Id)
	require.True(t, d.Paused)
	require.Nil(t, d.NextFireAt, "a paused schedule has no next firing")
	require.Empty(t, d.NextFireTimes)
	require.Len(t, d.Fires, len(fires))
	for i, f := range d.Fires {
		db := fires[len(fires)-1-i]
		require.True(t, f.FireTime.Equal(db.FireTime), "fires[%d]", i)
		require.Equal(t, db.RunID, f.RunId, "fires[%d]", i)
		require.EqualValues(t, "started", f.Outcome)
	}

	// A worker that lost a race for a firing has nothing to report: a
	// conflict on the (schedule, fire time) key would be logged as an error.
	// The one that won logs the run's start, saying the schedule started it.
	started := map[string]bool{}
	for i, w := range workers {
		require.Empty(t, scErrorLogs(w), "worker %d logged errors", i+1)
		for _, line := range w.logsWith("run started") {
			require.Equal(t, "schedule", line["started_by"])
			require.Equal(t, sch.Id.String(), line["schedule_id"])
			require.False(t, started[line["run_id"].(string)], "run %s's start logged twice", line["run_id"])
			started[line["run_id"].(string)] = true
		}
	}
	require.Len(t, started, len(runs))
	// And the workers' metrics count each firing and its run once.
	var fired, runsStarted float64
	for _, u := range metricsURLs {
		m := scrape(t, u)
		fired += metricValue(m, "durable_schedule_fires_total", map[string]string{"workflow": "sc-tick"})
		runsStarted += metricValue(m, "durable_runs_started_total", map[string]string{"workflow": "sc-tick"})
	}
	require.Equal(t, float64(len(fires)), fired)
	require.Equal(t, float64(len(runs)), runsStarted)
}

// TestScheduleManySchedulesThreeWorkers: more due schedules than one worker
// takes in a transaction (16), shared by three workers, each firing every
// tick exactly once.
func TestScheduleManySchedulesThreeWorkers(t *testing.T) {
	t.Parallel()
	const schedules = 40
	srv, rec := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-many", srv.URL+"/work"))
	workers := []*proc{e.startWorker(), e.startWorker(), e.startWorker()}
	var ids []uuid.UUID
	for i := range schedules {
		ids = append(ids, scCreate(t, e, client.ScheduleRequest{Name: fmt.Sprintf("many-%02d", i), Workflow: "sc-many", Cron: "@every 1s"}).Id)
	}
	// Three ticks of the last schedule created.
	scWaitFires(t, db, ids[len(ids)-1], 15*time.Second, "three firings", func(f []scFire) bool { return len(f) >= 3 })
	for _, id := range ids {
		scPause(t, e, id)
	}
	total := 0
	var worst time.Duration
	for i, id := range ids {
		fires := scFires(t, db, id)
		require.GreaterOrEqual(t, len(fires), 3, "schedule %d:\n%s", i, scDump(fires))
		scContiguous(t, fires, fires[0].FireTime, time.Second)
		seen := map[uuid.UUID]bool{}
		for _, f := range fires {
			require.Equal(t, "started", f.Outcome)
			require.NotNil(t, f.RunID)
			require.False(t, seen[*f.RunID])
			seen[*f.RunID] = true
			worst = max(worst, f.FiredAt.Sub(f.FireTime))
		}
		require.Len(t, scRunIDs(t, db, id), len(fires), "schedule %d", i)
		total += len(fires)
	}
	require.Equal(t, total, dbCount(t, db, `SELECT count(*) FROM runs WHERE schedule_id IS NOT NULL`))
	scEventually(t, 20*time.Second, "every run called its step", func() bool { return len(rec.all()) >= total })
	called := map[uuid.UUID]bool{}
	for _, c := range rec.all() {
		require.False(t, called[c.Body.RunID], "run %s called its step twice", c.Body.RunID)
		called[c.Body.RunID] = true
	}
	require.Len(t, called, total)
	for i, w := range workers {
		require.Empty(t, scErrorLogs(w), "worker %d logged errors", i+1)
	}
	t.Logf("%d schedules, %d firings, the latest made %s after its time", schedules, total, worst)
}

// TestScheduleOverlapPolicies fires `@every 1s` schedules whose runs block
// in a step until released, one schedule per overlap policy.
func TestScheduleOverlapPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := assertDB(t, e)
	e.startWorker()
	const wait = 10 * time.Second

	// schedule creates a workflow whose step h holds and a schedule of it.
	schedule := func(t *testing.T, policy string, h *scHold) client.Schedule {
		wf := "sc-overlap-" + strings.ReplaceAll(policy, "_", "-")
		e.createWorkflow(scCallDef(wf, h.url+"/work"))
		p := client.ScheduleRequestOverlapPolicy(policy)
		return scCreate(t, e, client.ScheduleRequest{Name: wf, Workflow: wf, Cron: "@every 1s", OverlapPolicy: &p})
	}

	t.Run("skip", func(t *testing.T) {
		t.Parallel()
		h := newScHold(t)
		sch := schedule(t, "skip", h)
		require.EqualValues(t, "skip", sch.OverlapPolicy)
		a := h.next(t, wait).Body.RunID

		// While A runs, later firings are skipped and start nothing.
		fires := scWaitFires(t, db, sch.Id, wait, "A and two skipped firings", func(f []scFire) bool { return len(f) >= 3 })
		require.Equal(t, "started", fires[0].Outcome)
		require.Equal(t, &a, fires[0].RunID)
		for _, f := range fires[1:] {
			require.Equal(t, "skipped", f.Outcome, "%s", f)
			require.Nil(t, f.RunID, "%s", f)
		}
		require.Equal(t, []uuid.UUID{a}, scRunIDs(t, db, sch.Id))

		// Once A ended, the next firing starts B.
		h.release()
		ra := e.waitRun(a, wait)
		require.EqualValues(t, "succeeded", ra.Status)
		b := h.next(t, wait).Body.RunID
		scPause(t, e, sch.Id)
		fires = scFires(t, db, sch.Id)
		scContiguous(t, fires, fires[0].FireTime, time.Second)
		fb := scFireOf(t, fires, b)
		require.Equal(t, "started", fb.Outcome)
		require.True(t, fb.FiredAt.After(*ra.FinishedAt), "B fired at %s, before A ended at %s", fb.FiredAt, ra.FinishedAt)
		for _, f := range fires {
			if f.FireTime.After(fires[0].FireTime) && !f.FireTime.Equal(fb.FireTime) {
				require.Equal(t, "skipped", f.Outcome, "every firing but A's and B's overlapped a run:\n%s", scDump(fires))
				require.Nil(t, f.RunID)
			}
		}
		require.Equal(t, []uuid.UUID{a, b}, scRunIDs(t, db, sch.Id))
		h.release()
		require.EqualValues(t, "succeeded", e.waitRun(b, wait).Status)
	})

	t.Run("buffer_one", func(t *testing.T) {
		t.Parallel()
		h := newScHold(t)
		sch := schedule(t, "buffer_one", h)
		a := h.next(t, wait).Body.RunID

		// While A runs, the first later firing is held back, the others
		// are skipped.
		fires := scWaitFires(t, db, sch.Id, wait, "A, one buffered and two skipped firings", func(f []scFire) bool { return len(f) >= 4 })
		require.Equal(t, "started", fires[0].Outcome)
		require.Equal(t, &a, fires[0].RunID)
		require.Equal(t, "buffered", fires[1].Outcome, "\n%s", scDump(fires))
		require.Nil(t, fires[1].RunID, "a buffered firing starts no run while A runs")
		for _, f := range fires[2:] {
			require.Equal(t, "skipped", f.Outcome, "%s", f)
			require.Nil(t, f.RunID)
		}
		require.Equal(t, []uuid.UUID{a}, scRunIDs(t, db, sch.Id))

		// When A ends, the buffered firing starts B, without waiting for
		// a tick of its own.
		h.release()
		ra := e.waitRun(a, wait)
		require.EqualValues(t, "succeeded", ra.Status)
		b := h.next(t, wait).Body.RunID
		rb := e.run(b)
		require.Less(t, rb.CreatedAt.Sub(*ra.FinishedAt), 1500*time.Millisecond, "B starts as A ends")
		fires = scFires(t, db, sch.Id)
		require.Equal(t, "buffered", fires[1].Outcome)
		require.Equal(t, &b, fires[1].RunID, "the buffered firing started B:\n%s", scDump(fires))

		// While B runs, one later firing waits again and the rest are skipped.
		n := len(fires)
		scWaitFires(t, db, sch.Id, wait, "two firings during B", func(f []scFire) bool { return len(f) >= n+2 })
		scPause(t, e, sch.Id)
		fires = scFires(t, db, sch.Id)
		scContiguous(t, fires, fires[0].FireTime, time.Second)
		waiting := 0
		for _, f := range fires[2:] {
			switch {
			case f.Outcome == "buffered" && f.RunID == nil:
				waiting++
			case f.Outcome == "skipped" && f.RunID == nil:
			default:
				t.Fatalf("unexpected firing %s:\n%s", f, scDump(fires))
			}
		}
		require.Equal(t, 1, waiting, "exactly one firing waited for B:\n%s", scDump(fires))
		require.Equal(t, []uuid.UUID{a, b}, scRunIDs(t, db, sch.Id))
		h.release()
		require.EqualValues(t, "succeeded", e.waitRun(b, wait).Status)
		time.Sleep(500 * time.Millisecond)
		require.Equal(t, []uuid.UUID{a, b}, scRunIDs(t, db, sch.Id), "the firing held back is dropped by the pause")
	})

	t.Run("cancel_other", func(t *testing.T) {
		t.Parallel()
		h := newScHold(t)
		sch := schedule(t, "cancel_other", h)
		a := h.next(t, wait).Body.RunID

		// The next firing cancels A and starts B.
		b := h.next(t, wait).Body.RunID
		ra := e.waitRun(a, wait, "cancelled")
		scPause(t, e, sch.Id)
		require.NotNil(t, ra.Error)
		require.Contains(t, ra.Error.Message, "newer firing")
		require.Contains(t, e.historyTypes(a), "run_cancelled")

		fires := scFires(t, db, sch.Id)
		scContiguous(t, fires, fires[0].FireTime, time.Second)
		require.Equal(t, "started", fires[0].Outcome)
		require.Equal(t, &a, fires[0].RunID)
		fb := scFireOf(t, fires, b)
		require.Equal(t, "cancelled_other", fb.Outcome)
		require.True(t, fb.FireTime.Equal(fires[0].FireTime.Add(time.Second)), "the very next firing replaced A")
		for _, f := range fires[1:] {
			require.Equal(t, "cancelled_other", f.Outcome, "%s", f)
			require.NotNil(t, f.RunID)
		}

		// Each run was replaced by the next; only the latest is active.
		runs := scRunIDs(t, db, sch.Id)
		require.Len(t, runs, len(fires))
		for _, id := range runs[:len(runs)-1] {
			require.EqualValues(t, "cancelled", e.waitRun(id, wait).Status, "run %s", id)
		}
		require.EqualValues(t, "running", e.run(runs[len(runs)-1]).Status)
		h.release()
		require.EqualValues(t, "succeeded", e.waitRun(runs[len(runs)-1], wait).Status)
	})

	t.Run("allow", func(t *testing.T) {
		t.Parallel()
		h := newScHold(t)
		sch := schedule(t, "allow", h)
		// Three runs are in their step at once.
		ids := []uuid.UUID{h.next(t, wait).Body.RunID, h.next(t, wait).Body.RunID, h.next(t, wait).Body.RunID}
		for _, id := range ids {
			require.EqualValues(t, "running", e.run(id).Status, "run %s", id)
		}
		scPause(t, e, sch.Id)
		fires := scFires(t, db, sch.Id)
		scContiguous(t, fires, fires[0].FireTime, time.Second)
		for i, f := range fires {
			require.Equal(t, "started", f.Outcome, "%s", f)
			require.NotNil(t, f.RunID)
			if i < len(ids) {
				require.Equal(t, ids[i], *f.RunID)
			}
		}
		h.release()
		for _, id := range scRunIDs(t, db, sch.Id) {
			require.EqualValues(t, "succeeded", e.waitRun(id, wait).Status)
		}
	})
}

// TestScheduleCatchUpAfterAllWorkersWereDown kills every worker for about
// three seconds: the worker started afterwards makes the firings missed
// meanwhile (they are within the catch-up window), each exactly once.
func TestScheduleCatchUpAfterAllWorkersWereDown(t *testing.T) {
	t.Parallel()
	srv, rec := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-catchup", srv.URL+"/work"))
	w1, w2 := e.startWorker(), e.startWorker()
	sch := scCreate(t, e, client.ScheduleRequest{Name: "catch-up", Workflow: "sc-catchup", Cron: "@every 1s", CatchupWindow: scPtr("10s")})
	require.Equal(t, "10s", sch.CatchupWindow)

	scWaitFires(t, db, sch.Id, 10*time.Second, "two firings", func(f []scFire) bool { return len(f) >= 2 })
	w1.kill()
	w2.kill()
	before := scFires(t, db, sch.Id)
	time.Sleep(3 * time.Second)
	require.Equal(t, before, scFires(t, db, sch.Id), "nothing fires without a worker")

	up := time.Now()
	w3 := e.startWorker()
	scWaitFires(t, db, sch.Id, 10*time.Second, "firing after the restart", func(f []scFire) bool {
		return len(f) > 0 && f[len(f)-1].FireTime.After(up.Add(time.Second))
	})
	scPause(t, e, sch.Id)
	fires := scFires(t, db, sch.Id)
	scContiguous(t, fires, before[0].FireTime, time.Second)

	last := before[len(before)-1].FireTime
	missed := 0
	runs := map[uuid.UUID]bool{}
	for _, f := range fires {
		require.Equal(t, "started", f.Outcome, "%s", f)
		require.NotNil(t, f.RunID, "%s", f)
		require.False(t, runs[*f.RunID], "run %s started twice", *f.RunID)
		runs[*f.RunID] = true
		if f.FireTime.After(last) && f.FireTime.Before(up) {
			missed++
			require.True(t, f.FiredAt.After(up.Add(-200*time.Millisecond)), "a missed firing is made after the restart: %s", f)
		}
	}
	require.GreaterOrEqual(t, missed, 2, "firings missed while no worker ran:\n%s", scDump(fires))
	t.Logf("%d firings before the outage, %d made late after it, %d in all", len(before), missed, len(fires))

	ids := scRunIDs(t, db, sch.Id)
	require.Len(t, ids, len(fires))
	for _, id := range ids {
		require.True(t, runs[id])
	}
	// The runs started after the restart each call their step once. (A run
	// whose step was in flight when its worker was killed waits for the
	// step's lease to end, which is not this test's business.)
	// The calls are counted once every run has ended, so that a run still
	// going when the schedule was paused is counted whole.
	for _, f := range fires[len(before):] {
		require.EqualValues(t, "succeeded", e.waitRun(*f.RunID, 15*time.Second).Status)
	}
	called := map[uuid.UUID]int{}
	for _, c := range rec.all() {
		called[c.Body.RunID]++
	}
	for _, f := range fires[len(before):] {
		require.Equal(t, 1, called[*f.RunID], "step calls of run %s", *f.RunID)
	}
	require.Empty(t, scErrorLogs(w3))
}

// TestScheduleCatchUpSkipsOldFirings stands for a downtime longer than the
// test can wait: with no worker running, the schedules' next_fire_at is
// moved into the past (the only write a test of this file makes to the
// database: it is what an hour or two of downtime leaves behind). The
// worker started then skips the firings older than the catch-up window
// (at least a minute applies) and moves the schedules on to the future,
// without a storm of runs.
func TestScheduleCatchUpSkipsOldFirings(t *testing.T) {
	t.Parallel()
	srv, _ := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-old", srv.URL+"/work"))
	minutely := scCreate(t, e, client.ScheduleRequest{Name: "minutely", Workflow: "sc-old", Cron: "* * * * *", CatchupWindow: scPtr("0s")})
	secondly := scCreate(t, e, client.ScheduleRequest{Name: "secondly", Workflow: "sc-old", Cron: "@every 1s", CatchupWindow: scPtr("0s")})
	ctx := context.Background()
	_, err := db.Exec(ctx, `UPDATE schedules SET next_fire_at = date_trunc('minute', now() - interval '2 hours') WHERE id = $1`, minutely.Id)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `UPDATE schedules SET next_fire_at = date_trunc('second', now() - interval '1 hour') WHERE id = $1`, secondly.Id)
	require.NoError(t, err)
	for _, id := range []uuid.UUID{minutely.Id, secondly.Id} {
		d := scGet(t, e, id)
		require.True(t, d.NextFireAt.Before(time.Now().Add(-time.Hour)), "next_fire_at %s", d.NextFireAt)
		require.Len(t, d.NextFireTimes, 5)
		require.True(t, d.NextFireTimes[0].Equal(*d.NextFireAt), "next_fire_times start at the overdue firing")
	}

	start := time.Now()
	w := e.startWorker()
	scEventually(t, 20*time.Second, "both schedules moved on to the future", func() bool {
		for _, id := range []uuid.UUID{minutely.Id, secondly.Id} {
			if d := scGet(t, e, id); d.NextFireAt == nil || d.NextFireAt.Before(time.Now()) {
				return false
			}
		}
		return true
	})
	caughtUp := time.Since(start)
	scPause(t, e, minutely.Id)
	scPause(t, e, secondly.Id)
	paused := time.Now()

	// Every-minute: 120 firings were due; at most the last minute's one
	// is made.
	fm := scFires(t, db, minutely.Id)
	require.LessOrEqual(t, len(fm), 1, "\n%s", scDump(fm))
	for _, f := range fm {
		require.True(t, f.FireTime.After(start.Add(-61*time.Second)), "a firing older than a minute was made: %s", f)
	}
	// Every-second: 3,600 firings were due; only those of the last minute
	// (the least window) are made, each once, none older.
	fs := scFires(t, db, secondly.Id)
	require.NotEmpty(t, fs)
	require.True(t, fs[0].FireTime.After(start.Add(-61*time.Second)), "a firing older than a minute was made: %s", fs[0])
	scContiguous(t, fs, fs[0].FireTime, time.Second)
	require.LessOrEqual(t, len(fs), 62+int(paused.Sub(start)/time.Second), "\n%s", scDump(fs))
	require.Len(t, scRunIDs(t, db, secondly.Id), len(fs))
	require.Len(t, scRunIDs(t, db, minutely.Id), len(fm))

	missed := map[string]float64{}
	for _, l := range scLogs(w, "schedule firings missed beyond the catch-up window") {
		n, _ := l["missed"].(float64)
		missed[fmt.Sprint(l["schedule"])] += n
	}
	require.Greater(t, missed["minutely"], 100.0, "missed firings are logged")
	require.Greater(t, missed["secondly"], 3000.0, "missed firings are logged")
	require.Empty(t, scErrorLogs(w))
	t.Logf("moved on in %s; made %d of the every-minute and %d of the every-second firings; skipped %v",
		caughtUp.Round(time.Millisecond), len(fm), len(fs), missed)
}

// TestScheduleDueAtAFiredTimeMovesOn: a schedule whose next firing is one
// that was made already must move on, not retry it. The state is made with
// a write to the database, standing for how it arises in a deployment: the
// API computes next_fire_at with its own clock (on create, PATCH, resume
// and when a definition is posted), so an API host whose clock lags a
// worker's by δ can set it to a tick the worker fired within δ; a manual
// firing that lands on a tick to the microsecond takes its key too.
func TestScheduleDueAtAFiredTimeMovesOn(t *testing.T) {
	t.Parallel()
	srv, _ := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-refire", srv.URL+"/work"))
	w := e.startWorker()
	sch := scCreate(t, e, client.ScheduleRequest{Name: "refire", Workflow: "sc-refire", Cron: "@every 1s"})
	scWaitFires(t, db, sch.Id, 10*time.Second, "a firing", func(f []scFire) bool { return len(f) >= 1 })

	var back time.Time
	require.NoError(t, db.QueryRow(context.Background(), `
		UPDATE schedules SET next_fire_at = (SELECT max(fire_time) FROM schedule_fires WHERE schedule_id = $1)
		WHERE id = $1 RETURNING next_fire_at`, sch.Id).Scan(&back))
	fired := len(scFires(t, db, sch.Id))

	time.Sleep(2 * time.Second)
	d := scGet(t, e, sch.Id)
	errs := scErrorLogs(w)
	scPause(t, e, sch.Id)
	require.NotNil(t, d.NextFireAt)
	require.True(t, d.NextFireAt.After(back), "the schedule is stuck at %s, a firing made already; the worker logged %d errors in 2 s, the last: %v",
		back.UTC().Format(time.RFC3339), len(errs), errs[max(len(errs)-1, 0):])
	require.Greater(t, len(scFires(t, db, sch.Id)), fired, "firing goes on")
	require.Less(t, len(errs), 5, "the worker does not retry the firing in a loop")
}

// TestSchedulePauseResume: no firing while paused; after resuming, firings
// go on from the next fire time after now, and those missed while paused
// are not made.
func TestSchedulePauseResume(t *testing.T) {
	t.Parallel()
	srv, _ := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-pause", srv.URL+"/work"))
	e.startWorker()
	sch := scCreate(t, e, client.ScheduleRequest{Name: "pausable", Workflow: "sc-pause", Cron: "@every 1s", CatchupWindow: scPtr("1h")})

	scWaitFires(t, db, sch.Id, 10*time.Second, "two firings", func(f []scFire) bool { return len(f) >= 2 })
	p := scPause(t, e, sch.Id)
	require.Nil(t, p.NextFireAt, "a paused schedule shows no next firing")
	before := scFires(t, db, sch.Id)
	time.Sleep(2500 * time.Millisecond)
	require.Equal(t, before, scFires(t, db, sch.Id), "no firing while paused")
	// Pausing again changes nothing.
	scPause(t, e, sch.Id)

	r := scResume(t, e, sch.Id)
	require.NotNil(t, r.NextFireAt)
	resumed := *r.NextFireAt
	require.True(t, resumed.After(before[len(before)-1].FireTime.Add(2*time.Second)), "resumed at %s", resumed)
	require.True(t, resumed.After(r.UpdatedAt.Add(-time.Second)) && !resumed.After(r.UpdatedAt.Add(1100*time.Millisecond)),
		"the first firing after resuming (%s) is the next tick after now (%s)", resumed, r.UpdatedAt)

	n := len(before)
	scWaitFires(t, db, sch.Id, 10*time.Second, "two firings after resuming", func(f []scFire) bool { return len(f) >= n+2 })
	scPause(t, e, sch.Id)
	fires := scFires(t, db, sch.Id)
	require.Equal(t, before, fires[:n])
	// The ticks of the pause were not made, despite the hour-long catch-up
	// window: firing goes on at the resumed schedule's next fire time.
	scContiguous(t, fires[n:], resumed, time.Second)
	for _, f := range fires {
		require.Equal(t, "started", f.Outcome)
	}
	require.Len(t, scRunIDs(t, db, sch.Id), len(fires))
}

// TestScheduleTriggerNow: a manual firing starts a run at once, even while
// the schedule is paused and whatever its overlap policy.
func TestScheduleTriggerNow(t *testing.T) {
	t.Parallel()
	h := newScHold(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.createWorkflow(scCallDef("sc-trigger", h.url+"/work"))
	e.startWorker()
	skip := client.ScheduleRequestOverlapPolicy("skip")
	sch := scCreate(t, e, client.ScheduleRequest{
		Name: "new-year", Workflow: "sc-trigger", Cron: "0 0 1 1 *", Timezone: scPtr("Pacific/Auckland"),
		Paused: scPtr(true), OverlapPolicy: &skip, Input: map[string]any{"from": "schedule"},
	})
	require.True(t, sch.Paused)
	require.Nil(t, sch.NextFireAt)

	f1 := scTrigger(t, e, sch.Id)
	require.True(t, f1.Manual)
	require.EqualValues(t, "started", f1.Outcome)
	require.NotNil(t, f1.RunId)
	// The run exists when the answer arrives, with the schedule's input.
	r1 := e.run(*f1.RunId)
	require.Equal(t, map[string]any{"from": "schedule"}, r1.Input)
	require.Equal(t, *f1.RunId, h.next(t, 10*time.Second).Body.RunID)

	// A second manual firing starts a run too, although the first is
	// still running and the policy is skip.
	f2 := scTrigger(t, e, sch.Id)
	require.EqualValues(t, "started", f2.Outcome)
	require.NotNil(t, f2.RunId)
	require.NotEqual(t, *f1.RunId, *f2.RunId)
	require.Equal(t, *f2.RunId, h.next(t, 10*time.Second).Body.RunID)
	require.EqualValues(t, "running", e.run(*f1.RunId).Status)

	d := scGet(t, e, sch.Id)
	require.True(t, d.Paused, "triggering does not resume")
	require.Len(t, d.Fires, 2)
	for _, f := range d.Fires {
		require.True(t, f.Manual)
		require.EqualValues(t, "started", f.Outcome)
	}
	require.Equal(t, []uuid.UUID{*f1.RunId, *f2.RunId}, scRunIDs(t, db, sch.Id))
	h.release()
	require.EqualValues(t, "succeeded", e.waitRun(*f1.RunId, 10*time.Second).Status)
	require.EqualValues(t, "succeeded", e.waitRun(*f2.RunId, 10*time.Second).Status)
}

// TestScheduleTriggerAnswerMatchesHistory: the firing the trigger endpoint
// answers is the one the schedule's history then shows.
func TestScheduleTriggerAnswerMatchesHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createWorkflow(scCallDef("sc-trigger-answer", "http://127.0.0.1:9/unused"))
	sch := scCreate(t, e, client.ScheduleRequest{Name: "answer", Workflow: "sc-trigger-answer", Cron: "@yearly", Paused: scPtr(true)})
	f := scTrigger(t, e, sch.Id)
	d := scGet(t, e, sch.Id)
	require.Len(t, d.Fires, 1)
	got := d.Fires[0]
	require.Equal(t, f.RunId, got.RunId)
	require.False(t, f.FiredAt.IsZero() || f.FiredAt.Year() < 2000, "the answer's fired_at is %s", f.FiredAt.Format(time.RFC3339Nano))
	require.True(t, f.FiredAt.Equal(got.FiredAt), "fired_at: answer %s, history %s", f.FiredAt.Format(time.RFC3339Nano), got.FiredAt.Format(time.RFC3339Nano))
	require.True(t, f.FireTime.Equal(got.FireTime), "fire_time: answer %s, history %s", f.FireTime.Format(time.RFC3339Nano), got.FireTime.Format(time.RFC3339Nano))
}

// scNextDaily is the first hh:mm in loc strictly after t (no DST change
// is near the test's dates in the zones it uses).
func scNextDaily(t time.Time, loc *time.Location, hour, minute int) time.Time {
	l := t.In(loc)
	for d := 0; ; d++ {
		c := time.Date(l.Year(), l.Month(), l.Day()+d, hour, minute, 0, 0, loc)
		if c.After(t) {
			return c.UTC()
		}
	}
}

// TestScheduleUpdateAndDelete: a changed cron expression or time zone
// recomputes the next firing; other changes keep it. A deleted schedule
// is gone, its runs stay.
func TestScheduleUpdateAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createWorkflow(scCallDef("sc-update", "http://127.0.0.1:9/unused"))
	e.createWorkflow(scCallDef("sc-update-2", "http://127.0.0.1:9/unused"))
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)

	// nextOf requires next to be the first hh:mm in loc after the time of
	// the request that computed it.
	nextOf := func(before, after time.Time, next *time.Time, loc *time.Location, hour, minute int) {
		t.Helper()
		require.NotNil(t, next)
		a, b := scNextDaily(before, loc, hour, minute), scNextDaily(after, loc, hour, minute)
		require.True(t, next.Equal(a) || next.Equal(b), "next_fire_at %s, wanted %s", next.UTC(), a)
	}

	before := time.Now()
	sch := scCreate(t, e, client.ScheduleRequest{Name: "nine", Workflow: "sc-update", Cron: "0 9 * * *"})
	nextOf(before, time.Now(), sch.NextFireAt, time.UTC, 9, 0)

	before = time.Now()
	p := scPatch(t, e, sch.Id, client.SchedulePatch{Timezone: scPtr("America/New_York")})
	require.Equal(t, "America/New_York", p.Timezone)
	require.Equal(t, "0 9 * * *", p.Cron)
	nextOf(before, time.Now(), p.NextFireAt, ny, 9, 0)

	before = time.Now()
	p = scPatch(t, e, sch.Id, client.SchedulePatch{Cron: scPtr("30 18 * * *")})
	require.Equal(t, "America/New_York", p.Timezone)
	nextOf(before, time.Now(), p.NextFireAt, ny, 18, 30)
	require.Equal(t, p.NextFireAt.UTC(), scGet(t, e, sch.Id).NextFireTimes[0].UTC())

	// Changes to anything but the calendar keep the next firing.
	skip := client.SchedulePatchOverlapPolicy("skip")
	wf := client.WorkflowNameString("sc-update-2")
	q := scPatch(t, e, sch.Id, client.SchedulePatch{Input: map[string]any{"n": 2}, OverlapPolicy: &skip, CatchupWindow: scPtr("90s"), Workflow: &wf, Version: scPtr(1)})
	require.True(t, q.NextFireAt.Equal(*p.NextFireAt))
	require.Equal(t, map[string]any{"n": 2.0}, q.Input)
	require.EqualValues(t, "skip", q.OverlapPolicy)
	require.Equal(t, "1m30s", q.CatchupWindow)
	require.Equal(t, "sc-update-2", q.Workflow)
	require.Equal(t, scPtr(1), q.Version)
	require.Equal(t, "30 18 * * *", q.Cron)
	require.True(t, q.UpdatedAt.After(p.UpdatedAt))

	// A run it started outlives the schedule.
	f := scTrigger(t, e, sch.Id)
	run := e.run(*f.RunId)
	require.Equal(t, client.WorkflowRef{Name: "sc-update-2", Version: 1}, run.Workflow)

	ctx := context.Background()
	del, err := e.client.DeleteScheduleWithResponse(ctx, sch.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, del.StatusCode(), string(del.Body))
	require.Empty(t, del.Body)

	get, err := e.client.GetScheduleWithResponse(ctx, sch.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, get.StatusCode(), string(get.Body))
	del, err = e.client.DeleteScheduleWithResponse(ctx, sch.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, del.StatusCode(), string(del.Body))
	upd, err := e.client.UpdateScheduleWithResponse(ctx, sch.Id, client.SchedulePatch{Cron: scPtr("@daily")})
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, upd.StatusCode(), string(upd.Body))
	trig, err := e.client.TriggerScheduleWithResponse(ctx, sch.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, trig.StatusCode(), string(trig.Body))
	list, err := e.client.ListSchedulesWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, list.JSON200.Items)

	require.Equal(t, run.Id, e.run(run.Id).Id, "the run stays")
	require.Len(t, scRunsOf(t, e, "sc-update-2"), 1)
}

// TestScheduleInDefinition: a definition's `schedule` creates a schedule
// named after the workflow when the version is posted, a later version
// updates it, and a schedule of that name made through the API blocks it.
func TestScheduleInDefinition(t *testing.T) {
	t.Parallel()
	srv, _ := scEcho(t)
	e := newEnv(t)
	db := assertDB(t, e)
	e.startWorker()
	ctx := context.Background()

	def := func(name, schedule string) string {
		return fmt.Sprintf(`{"name": %q, "steps": [{"name": "work", "type": "call", "url": %q}], "schedule": %s}`, name, srv.URL+"/work", schedule)
	}
	listed := func() []client.Schedule {
		t.Helper()
		res, err := e.client.ListSchedulesWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
		return res.JSON200.Items
	}

	before := time.Now()
	v1 := e.createWorkflow(def("sc-def", `{"cron": "0 6 * * *", "timezone": "Europe/Paris", "input": {"x": 1}, "overlap_policy": "skip", "catchup_window": "5m"}`))
	require.Equal(t, 1, v1.Version)
	items := listed()
	require.Len(t, items, 1)
	s := items[0]
	require.Equal(t, "sc-def", s.Name)
	require.Equal(t, "sc-def", s.Workflow)
	require.EqualValues(t, "definition", s.Source)
	require.Equal(t, "0 6 * * *", s.Cron)
	require.Equal(t, "Europe/Paris", s.Timezone)
	require.Equal(t, map[string]any{"x": 1.0}, s.Input)
	require.EqualValues(t, "skip", s.OverlapPolicy)
	require.Equal(t, "5m0s", s.CatchupWindow)
	require.Nil(t, s.Version, "a definition's schedule runs the latest version")
	require.False(t, s.Paused)
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	require.NotNil(t, s.NextFireAt)
	require.True(t, s.NextFireAt.Equal(scNextDaily(before, paris, 6, 0)) || s.NextFireAt.Equal(scNextDaily(time.Now(), paris, 6, 0)), "next_fire_at %s", s.NextFireAt)

	// A new version updates the same schedule, with the defaults for what
	// it leaves out, and the schedule runs that version with its input.
	v2 := e.createWorkflow(def("sc-def", `{"cron": "@every 1s", "input": {"x": 2}}`))
	require.Equal(t, 2, v2.Version)
	items = listed()
	require.Len(t, items, 1)
	u := items[0]
	require.Equal(t, s.Id, u.Id, "the same schedule")
	require.EqualValues(t, "definition", u.Source)
	require.Equal(t, "@every 1s", u.Cron)
	require.Equal(t, "UTC", u.Timezone)
	require.EqualValues(t, "allow", u.OverlapPolicy)
	require.Equal(t, "0s", u.CatchupWindow)
	require.Equal(t, map[string]any{"x": 2.0}, u.Input)
	require.True(t, u.NextFireAt.Before(time.Now().Add(1100*time.Millisecond)), "next firing recomputed: %s", u.NextFireAt)

	fires := scWaitFires(t, db, u.Id, 10*time.Second, "a firing of the definition's schedule", func(f []scFire) bool { return len(f) >= 1 })
	scPause(t, e, u.Id)
	require.NotNil(t, fires[0].RunID)
	r := e.waitRun(*fires[0].RunID, 10*time.Second)
	require.EqualValues(t, "succeeded", r.Status)
	require.Equal(t, client.WorkflowRef{Name: "sc-def", Version: 2}, r.Workflow)
	require.Equal(t, map[string]any{"x": 2.0}, r.Input)

	// A schedule made through the API under a workflow's name blocks that
	// workflow's declared schedule: its definition is refused whole.
	e.createWorkflow(scCallDef("sc-def-target", srv.URL+"/work"))
	api := scCreate(t, e, client.ScheduleRequest{Name: "sc-def-b", Workflow: "sc-def-target", Cron: "0 12 * * *"})
	res, err := e.client.CreateWorkflowWithBodyWithResponse(ctx, "application/json", strings.NewReader(def("sc-def-b", `{"cron": "0 7 * * *"}`)))
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, res.StatusCode(), string(res.Body))
	require.Contains(t, string(res.Body), `"path":"/schedule"`)
	got, err := e.client.GetWorkflowWithResponse(ctx, "sc-def-b")
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, got.StatusCode(), "the refused definition was not stored: %s", got.Body)
	kept := scGet(t, e, api.Id)
	require.EqualValues(t, "api", kept.Source)
	require.Equal(t, "0 12 * * *", kept.Cron)
	require.Equal(t, "sc-def-target", kept.Workflow)

	// Without a schedule of that name the same definition is accepted.
	del, err := e.client.DeleteScheduleWithResponse(ctx, api.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, del.StatusCode())
	e.createWorkflow(def("sc-def-b", `{"cron": "0 7 * * *"}`))
	names := map[string]client.ScheduleSource{}
	for _, s := range listed() {
		names[s.Name] = s.Source
	}
	require.Equal(t, map[string]client.ScheduleSource{"sc-def": "definition", "sc-def-b": "definition"}, names)
}
