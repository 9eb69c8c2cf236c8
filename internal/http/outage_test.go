package http_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/postgres/pgtest"
)

// TestDatabaseOutage: while PostgreSQL cannot be reached, the API answers
// 503 with Retry-After and a problem type that says so (it answered 500
// internal), and a start sent again with its Idempotency-Key once the
// database is back starts exactly one run.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	proxy := pgtest.NewProxy(t)
	db, err := postgres.Open(context.Background(), proxy.URL(pgtest.URL(t)), 0)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	b := setupOver(t, db)
	b.createWorkflow(t, workflowDef("outage", "https://steps.example.com/a"))
	existing := b.startRun(t, `{"workflow": "outage"}`)

	proxy.Cut()
	start := []byte(`{"workflow": "outage", "input": {"n": 1}}`)
	for _, req := range []struct {
		method, path string
		body         []byte
	}{
		{http.MethodPost, "/v1/runs", start},
		{http.MethodGet, "/v1/runs/" + existing.ID, nil},
		{http.MethodGet, "/v1/runs", nil},
		{http.MethodPost, "/v1/runs/" + existing.ID + "/cancel", []byte(`{}`)},
		{http.MethodPost, "/v1/workflows", []byte(workflowDef("outage", "https://steps.example.com/b"))},
		{http.MethodGet, "/v1/workflows/outage", nil},
		{http.MethodPost, "/v1/events", []byte(`{"name": "paid", "key": "1"}`)},
	} {
		res := b.do(t, req.method, req.path, req.body, "Idempotency-Key", "outage-1")
		p := requireProblem(t, res, http.StatusServiceUnavailable)
		require.Equal(t, "urn:durable:problem:database-unavailable", p.Type, "%s %s", req.method, req.path)
		require.Equal(t, "5", res.header.Get("Retry-After"), "%s %s", req.method, req.path)
		require.Contains(t, p.Detail, "the database is unavailable")
	}
	res := b.do(t, http.MethodGet, "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	b.requireHealthy(t)

	proxy.Restore()
	created := b.startRun(t, string(start), "Idempotency-Key", "outage-1")
	res = b.do(t, http.MethodPost, "/v1/runs", start, "Idempotency-Key", "outage-1")
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	var again run
	res.decode(t, &again)
	require.Equal(t, created.ID, again.ID)
	require.Equal(t, "pending", b.getRun(t, existing.ID).Status, "the cancel during the outage changed nothing")
	require.ElementsMatch(t, []string{existing.ID, created.ID}, b.state(t).Runs)
}
