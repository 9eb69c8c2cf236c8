package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file drive the operations on runs end to end: retention,
// deleting a run, archiving a workflow and the history cap. Helpers are
// prefixed "op".

// opTables are the tables that hold a run's rows besides runs itself.
var opTables = []string{"step_executions", "step_attempts", "history_events", "work_items", "waits"}

// opRows counts the rows of a run in runs and in each of opTables.
func opRows(t *testing.T, db *pgxpool.Pool, id uuid.UUID) map[string]int {
	t.Helper()
	out := map[string]int{"runs": dbCount(t, db, `SELECT count(*) FROM runs WHERE id = $1`, id)}
	for _, table := range opTables {
		out[table] = dbCount(t, db, `SELECT count(*) FROM `+table+` WHERE run_id = $1`, id)
	}
	return out
}

// opGone requires that nothing of the run is left.
func opGone(t *testing.T, e *env, db *pgxpool.Pool, id uuid.UUID) {
	t.Helper()
	for table, n := range opRows(t, db, id) {
		require.Zero(t, n, "%s rows of run %s", table, id)
	}
	res, err := e.client.GetRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, res.StatusCode(), string(res.Body))
}

// opExists reports whether the API still shows the run.
func opExists(t *testing.T, e *env, id uuid.UUID) bool {
	t.Helper()
	res, err := e.client.GetRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, res.StatusCode(), string(res.Body))
	return res.StatusCode() == http.StatusOK
}

// opDelete sends DELETE /v1/runs/{id} and returns the status and body.
func opDelete(t *testing.T, e *env, id uuid.UUID) (int, string) {
	t.Helper()
	res, err := e.client.DeleteRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	return res.StatusCode(), string(res.Body)
}

// opChild is the id of the child run a call_workflow step started.
func opChild(t *testing.T, e *env, parent uuid.UUID, step string) uuid.UUID {
	t.Helper()
	s := stStepNamed(t, e.steps(parent), step)
	raw, err := json.Marshal(s.Input)
	require.NoError(t, err)
	var in struct {
		RunID uuid.UUID `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(raw, &in))
	require.NotEqual(t, uuid.Nil, in.RunID, "step %s input: %s", step, raw)
	return in.RunID
}

// TestRetention runs a worker that keeps finished runs for a second: it
// deletes them with everything of theirs, but not runs still going, nor a
// finished run whose child is still going, nor a run whose workflow keeps
// its runs longer.
func TestRetention(t *testing.T) {
	e := newEnv(t)
	worker := e.startWorker("DURABLE_RETENTION=1s")
	db := assertDB(t, e)
	_, url := echoSteps(t)
	gate := newStGate(map[string]any{"output": "released"})
	held, _ := stServer(t, gate.handle)
	e.createWorkflow(fmt.Sprintf(`{"name": "brief", "steps": [
	  {"name": "a", "type": "call", "url": "%[1]s/a"}, {"name": "b", "type": "call", "url": "%[1]s/b"}]}`, url))
	e.createWorkflow(fmt.Sprintf(`{"name": "kept", "retention": "1h", "steps": [{"name": "a", "type": "call", "url": "%s/a"}]}`, url))
	e.createWorkflow(fmt.Sprintf(`{"name": "held", "steps": [{"name": "hold", "type": "call", "url": "%s/hold", "timeout": "60s"}]}`, held.URL))
	e.createWorkflow(`{"name": "parent", "steps": [{"name": "spawn", "type": "call_workflow", "workflow": "held", "wait": false}]}`)

	done := e.startRun("brief", nil)
	kept := e.startRun("kept", nil)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(done, 30*time.Second).Status)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(kept, 30*time.Second).Status)
	require.NotZero(t, opRows(t, db, done)["history_events"])
	running := e.startRun("held", nil)
	gate.await(t, 30*time.Second)
	parent := e.startRun("parent", nil)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(parent, 30*time.Second).Status)
	child := opChild(t, e, parent, "spawn")
	gate.await(t, 30*time.Second)

	scEventually(t, 30*time.Second, "the finished run is deleted", func() bool { return !opExists(t, e, done) })
	opGone(t, e, db, done)
	// A run that finished after the parent and is deleted: retention has
	// looked at the parent since its retention passed, and kept it.
	later := e.startRun("brief", nil)
	e.waitRun(later, 30*time.Second)
	scEventually(t, 30*time.Second, "the later run is deleted", func() bool { return !opExists(t, e, later) })
	require.True(t, opExists(t, e, running), "a running run is kept")
	require.True(t, opExists(t, e, child), "a running child is kept")
	require.True(t, opExists(t, e, parent), "a finished parent is kept while its child is going")
	require.True(t, opExists(t, e, kept), "a workflow's own retention wins")

	gate.open()
	for _, id := range []uuid.UUID{running, child, parent} {
		scEventually(t, 30*time.Second, "the run is deleted once finished", func() bool { return !opExists(t, e, id) })
		opGone(t, e, db, id)
	}
	require.True(t, opExists(t, e, kept))
	require.Equal(t, 1, dbCount(t, db, `SELECT count(*) FROM runs`), "only the run kept for an hour is left")
	deleted := 0
	for _, l := range worker.logsWith("retention: deleted expired runs") {
		deleted += int(l["count"].(float64))
	}
	require.Equal(t, 5, deleted, "the worker logs what it deleted")
}

// TestDeleteRun deletes runs through the API: a run still going is a 409,
// a finished one goes with its steps, attempts, history and waits, and a
// finished parent waits for its children to finish.
func TestDeleteRun(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	db := assertDB(t, e)
	_, url := echoSteps(t)
	gate := newStGate(map[string]any{"output": "released"})
	held, _ := stServer(t, gate.handle)
	e.createWorkflow(fmt.Sprintf(`{"name": "paid", "steps": [
	  {"name": "charge", "type": "call", "url": "%[1]s/charge"},
	  {"name": "settled", "type": "wait_for_event", "event": "payment.settled", "key": "${ input.order }"},
	  {"name": "ship", "type": "call", "url": "%[1]s/ship"}]}`, url))
	e.createWorkflow(fmt.Sprintf(`{"name": "held", "steps": [{"name": "hold", "type": "call", "url": "%s/hold", "timeout": "60s"}]}`, held.URL))
	e.createWorkflow(`{"name": "parent", "steps": [{"name": "spawn", "type": "call_workflow", "workflow": "held", "wait": false}]}`)

	status, body := opDelete(t, e, uuid.New())
	require.Equal(t, http.StatusNotFound, status, body)

	id := e.startRun("paid", map[string]any{"order": "A-1"})
	e.waitRun(id, 30*time.Second, "waiting")
	status, body = opDelete(t, e, id)
	require.Equal(t, http.StatusConflict, status, body)
	require.Contains(t, body, "urn:durable:problem:conflict")
	require.Contains(t, body, "is waiting: only a finished run can be deleted")
	require.Equal(t, client.RunStatus("waiting"), e.run(id).Status, "a refused delete changes nothing")

	res, err := e.client.PublishEventWithResponse(context.Background(), client.PublishEventRequest{Name: "payment.settled", Key: "A-1"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(id, 30*time.Second).Status)
	before := opRows(t, db, id)
	for _, table := range []string{"step_executions", "step_attempts", "history_events", "waits"} {
		require.NotZero(t, before[table], "the finished run has %s rows", table)
	}
	status, body = opDelete(t, e, id)
	require.Equal(t, http.StatusNoContent, status, body)
	opGone(t, e, db, id)
	status, body = opDelete(t, e, id)
	require.Equal(t, http.StatusNotFound, status, body)

	parent := e.startRun("parent", nil)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(parent, 30*time.Second).Status)
	child := opChild(t, e, parent, "spawn")
	gate.await(t, 30*time.Second)
	status, body = opDelete(t, e, parent)
	require.Equal(t, http.StatusConflict, status, body)
	require.Contains(t, body, "has child runs that have not finished")
	gate.open()
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(child, 30*time.Second).Status)
	status, body = opDelete(t, e, parent)
	require.Equal(t, http.StatusNoContent, status, body)
	opGone(t, e, db, parent)
	require.Nil(t, e.run(child).ParentRunId, "the child stays, without its deleted parent")
	status, body = opDelete(t, e, child)
	require.Equal(t, http.StatusNoContent, status, body)
	opGone(t, e, db, child)
}

// TestArchive archives a workflow while one of its runs is in flight: it
// starts no new run — from the API, its schedule or a parent's
// call_workflow step — the run in flight finishes, and unarchived it starts
// runs again.
func TestArchive(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	db := assertDB(t, e)
	ctx := context.Background()
	gate := newStGate(map[string]any{"output": "released"})
	held, _ := stServer(t, gate.handle)
	e.createWorkflow(fmt.Sprintf(`{"name": "arch", "steps": [{"name": "hold", "type": "call", "url": "%s/hold", "timeout": "60s"}]}`, held.URL))
	e.createWorkflow(`{"name": "caller", "steps": [{"name": "call", "type": "call_workflow", "workflow": "arch"}]}`)
	inFlight := e.startRun("arch", nil)
	gate.await(t, 30*time.Second)

	res, err := e.client.ArchiveWorkflowWithResponse(ctx, "arch")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.True(t, res.JSON200.Archived)
	require.NotNil(t, res.JSON200.ArchivedAt)

	start, err := e.client.StartRunWithResponse(ctx, nil, client.StartRunRequest{Workflow: "arch"})
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, start.StatusCode(), string(start.Body))
	require.Contains(t, string(start.Body), `workflow \"arch\" is archived`)

	sch := scCreate(t, e, client.ScheduleRequest{Name: "arch-every-second", Workflow: "arch", Cron: "@every 1s"})
	fires := scWaitFires(t, db, sch.Id, 30*time.Second, "two firings", func(f []scFire) bool { return len(f) >= 2 })
	for _, f := range fires {
		require.Equal(t, "archived", f.Outcome, scDump(fires))
		require.Nil(t, f.RunID)
	}
	require.Empty(t, scRunIDs(t, db, sch.Id), "the schedule started nothing")
	require.Equal(t, client.ScheduleFireOutcome("archived"), scGet(t, e, sch.Id).Fires[0].Outcome, "the API shows the outcome")
	trigger, err := e.client.TriggerScheduleWithResponse(ctx, sch.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, trigger.StatusCode(), string(trigger.Body))

	caller := e.waitRun(e.startRun("caller", nil), 30*time.Second)
	require.Equal(t, client.RunStatus("failed"), caller.Status)
	require.Contains(t, stRunError(t, caller), `workflow \"arch\" is archived`)

	listed, err := e.client.ListWorkflowsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"caller"}, opNames(listed.JSON200.Items), "archived workflows are hidden")
	archived := true
	listed, err = e.client.ListWorkflowsWithResponse(ctx, &client.ListWorkflowsParams{Archived: &archived})
	require.NoError(t, err)
	require.Equal(t, []string{"arch"}, opNames(listed.JSON200.Items))
	got, err := e.client.GetWorkflowWithResponse(ctx, "arch")
	require.NoError(t, err)
	require.True(t, got.JSON200.Archived)

	gate.open()
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(inFlight, 30*time.Second).Status, "a run in flight finishes")

	del, err := e.client.DeleteScheduleWithResponse(ctx, sch.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, del.StatusCode(), string(del.Body))
	unarchived, err := e.client.UnarchiveWorkflowWithResponse(ctx, "arch")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, unarchived.StatusCode(), string(unarchived.Body))
	require.False(t, unarchived.JSON200.Archived)
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(e.startRun("arch", nil), 30*time.Second).Status)
}

func opNames(items []client.WorkflowSummary) []string {
	var out []string
	for _, w := range items {
		out = append(out, w.Name)
	}
	return out
}

// opCapped checks a run that its history cap ended: failed with code
// history_limit, its history at most the cap and ending with run_failed,
// every step it began ended, and every step that succeeded recorded in the
// history. It returns the run's steps.
func opCapped(t *testing.T, e *env, db *pgxpool.Pool, id uuid.UUID, limit int) []client.StepExecution {
	t.Helper()
	run := e.waitRun(id, time.Minute)
	require.Equal(t, client.RunStatus("failed"), run.Status)
	require.NotNil(t, run.Error)
	require.Equal(t, "history_limit", *run.Error.Code)
	require.Contains(t, run.Error.Message, fmt.Sprintf("cap of %d events (DURABLE_MAX_HISTORY_EVENTS)", limit))
	history := e.history(id)
	require.LessOrEqual(t, len(history), limit)
	require.GreaterOrEqual(t, len(history), limit-2, "the run went on until its history was (nearly) full")
	require.Equal(t, "run_failed", history[len(history)-1].Type)
	require.Equal(t, len(history), dbCount(t, db, `SELECT history_count FROM runs WHERE id = $1`, id))
	succeededEvents := map[string]bool{}
	for _, h := range history {
		if h.Type == "step_succeeded" && h.Step != nil {
			succeededEvents[*h.Step] = true
		}
	}
	steps := e.steps(id)
	for _, s := range steps {
		require.Contains(t, []client.StepExecutionStatus{"succeeded", "cancelled"}, s.Status, "step %s", s.Key)
		if s.Status == "succeeded" {
			require.True(t, succeededEvents[s.Key], "step %s succeeded: its history says so", s.Key)
		}
	}
	require.Zero(t, dbCount(t, db, `SELECT count(*) FROM work_items WHERE run_id = $1`, id), "nothing is left to do")
	t.Logf("run %s stopped at %d history events, after %d step executions", id, len(history), len(steps))
	return steps
}

// TestHistoryCap runs under a cap of 30 history events: a loop and a
// sequence of steps (the hot path) that would pass it fail clearly, with
// nothing lost, and a foreach of 100 items, whose items' events are not
// counted, succeeds.
func TestHistoryCap(t *testing.T) {
	const limit = 30
	e := newEnv(t, fmt.Sprintf("DURABLE_MAX_HISTORY_EVENTS=%d", limit))
	worker := e.startWorker()
	db := assertDB(t, e)
	rec, url := echoSteps(t)
	e.createWorkflow(fmt.Sprintf(`{"name": "spin", "steps": [
	  {"name": "poll", "type": "loop", "while": "${ true }", "max_iterations": 1000, "steps": [
	    {"name": "tick", "type": "call", "url": "%s/tick"}]}]}`, url))
	var calls []string
	for i := range 40 {
		calls = append(calls, fmt.Sprintf(`{"name": "s%d", "type": "call", "url": "%s/s%d"}`, i, url, i))
	}
	e.createWorkflow(`{"name": "long", "steps": [` + strings.Join(calls, ",") + `]}`)
	e.createWorkflow(fmt.Sprintf(`{"name": "wide", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": 10, "steps": [
	    {"name": "one", "type": "call", "url": "%s/one", "input": "${ index }"}]}]}`, url))

	spin := e.startRun("spin", nil)
	steps := opCapped(t, e, db, spin, limit)
	ticks := 0
	for _, s := range steps {
		if s.Name == "tick" && s.Status == "succeeded" {
			ticks++
		}
	}
	require.Greater(t, ticks, 5)
	long := e.startRun("long", nil)
	steps = opCapped(t, e, db, long, limit)
	require.Less(t, len(steps), 40, "the sequence stopped at the cap")
	for _, c := range rec.all() {
		if c.Body.RunID != long {
			continue
		}
		// A step whose endpoint was called is recorded: succeeded, or
		// cancelled when recording its success would have passed the cap.
		stStepNamed(t, steps, c.Body.Step)
	}

	xs := make([]int, 100)
	wide := e.startRun("wide", map[string]any{"xs": xs})
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(wide, time.Minute).Status)
	events := dbCount(t, db, `SELECT count(*) FROM history_events WHERE run_id = $1`, wide)
	counted := dbCount(t, db, `SELECT history_count FROM runs WHERE id = $1`, wide)
	require.Greater(t, events, 300, "each item's events are written")
	require.Less(t, counted, limit, "and not counted")
	require.Empty(t, scErrorLogs(worker), "ending runs at their cap is no error of the worker's")
}
