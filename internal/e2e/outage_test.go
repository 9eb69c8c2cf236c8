package e2e_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/internal/postgres/pgtest"
)

// TestResultRecordedAfterDatabaseOutage: a step answers while its worker
// cannot reach PostgreSQL, for longer than the 2.6 s the worker used to try
// for. The worker keeps trying for as long as it holds the step's lease, so
// the result is recorded once the database is back, and the endpoint is
// not asked again.
func TestResultRecordedAfterDatabaseOutage(t *testing.T) {
	t.Parallel()
	const outage = 4 * time.Second
	rec := &recorder{}
	first := make(chan stepCall, 1)
	answer := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		if c.Path == "/slow" && len(callsTo(rec, "/slow")) == 1 {
			first <- c
			select {
			case <-answer:
			case <-r.Context().Done():
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step}})
	}))
	t.Cleanup(srv.Close)

	proxy := pgtest.NewProxy(t)
	// The lease (step timeout + margin, 10 s) outlasts the outage, and a
	// worker that gave up would see the step taken over within the test.
	e := newEnv(t, leanPool, "DURABLE_LEASE_MARGIN=5s")
	e.createWorkflow(fmt.Sprintf(`{"name": "outage", "steps": [
		{"name": "slow", "type": "call", "url": "%[1]s/slow", "timeout": "5s"},
		{"name": "next", "type": "call", "url": "%[1]s/next", "timeout": "5s"}]}`, srv.URL))
	w := e.startWorker("DATABASE_URL=" + proxy.URL(e.dbURL))
	id := e.startRun("outage", map[string]any{})
	waitCall(t, first, 20*time.Second, "the request of slow")

	proxy.Cut()
	close(answer)
	w.waitLog(t, "recording a result failed; trying again until the lease ends", "error")
	time.Sleep(outage)
	proxy.Restore()

	r := e.waitRun(id, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
	require.Len(t, callsTo(rec, "/slow"), 1, "the endpoint was asked again")
	require.Len(t, callsTo(rec, "/next"), 1)
	slow := stepByKey(t, e.steps(id), "slow")
	require.Equal(t, []string{"succeeded"}, attemptStatuses(slow))
	w.waitLog(t, "recorded a result after the database failed", "tries")
}
