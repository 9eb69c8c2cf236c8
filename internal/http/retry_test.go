package http_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// noOperations checks that a refused request created no operation.
func noOperations(b *testBundle) func(t *testing.T) {
	return func(t *testing.T) {
		res := b.do(t, http.MethodGet, "/v1/operations", nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
		require.JSONEq(t, `{"items": []}`, string(res.body))
	}
}

func TestRetryRunRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	cancelled := b.startRun(t, `{"workflow": "greet", "input": {"a": 1}}`)
	res := b.do(t, http.MethodPost, "/v1/runs/"+cancelled.ID+"/cancel", []byte(`{}`), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	pending := b.startRun(t, `{"workflow": "greet"}`)
	path := "/v1/runs/" + cancelled.ID + "/retry"
	events := len(b.history(t, cancelled.ID))

	refuse(t, b, path, []badRequest{
		{name: "malformed", body: `{"reason": "x"`, status: 400, paths: []string{""}},
		{name: "trailing data", body: `{} junk`, status: 400, paths: []string{""}},
		{name: "invalid UTF-8", body: "{\"reason\": \"\xc3\x28\"}", status: 400},
		{name: "array", body: `[]`, status: 422, paths: []string{""}},
		{name: "unknown field", body: `{"bogus": 1}`, status: 422, paths: []string{"/bogus"}},
		{name: "reason too long", body: `{"reason": ` + oversized(1003) + `}`, status: 422, paths: []string{"/reason"}},
		{name: "reason not a string", body: `{"reason": 5}`, status: 422, paths: []string{"/reason"}},
		{name: "from_step empty", body: `{"from_step": ""}`, status: 422, paths: []string{"/from_step"}},
		{name: "from_step unknown", body: `{"from_step": "nope"}`, status: 422, paths: []string{"/from_step"}},
		{name: "from_step SQL", body: `{"from_step": "'; DROP TABLE runs; --"}`, status: 422, paths: []string{"/from_step"}},
		{name: "context patch leaves no object", body: `{"context": "x"}`, status: 422, paths: []string{"/context"}},
		{name: "NUL in the input", body: `{"input": {"a": "\u0000"}}`, status: 422},
		{name: "input too large", body: `{"input": {"a": ` + oversized(300<<10) + `}}`, statuses: []int{413, 422}},
		{name: "100,000 [ in the input", body: `{"input": ` + deepBalanced + `}`, statuses: tooDeep},
		{name: "text/plain", body: `{}`, headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "bad id", path: "/v1/runs/not-a-uuid/retry", body: `{}`, status: 400, paths: []string{"path:id"}},
		{name: "unknown run", path: "/v1/runs/0193a7c0-0000-7000-8000-000000000000/retry", body: `{}`, status: 404},
		{name: "pending run", path: "/v1/runs/" + pending.ID + "/retry", body: `{}`, status: 409},
	}, func(t *testing.T) {
		r := b.getRun(t, cancelled.ID)
		require.Equal(t, "cancelled", r.Status)
		require.JSONEq(t, `{"a": 1}`, string(r.Input))
		require.Len(t, b.history(t, cancelled.ID), events)
		require.Equal(t, "pending", b.getRun(t, pending.ID).Status)
	})

	// The cancelled run is retried with its edits; a second retry of the
	// running run is refused.
	res = b.do(t, http.MethodPost, path, []byte(`{"input": {"b": 2}, "context": {"k": "v"}, "reason": "try again"}`), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	r := b.getRun(t, cancelled.ID)
	require.Equal(t, "running", r.Status)
	require.JSONEq(t, `{"a": 1, "b": 2}`, string(r.Input))
	require.JSONEq(t, `{"k": "v"}`, string(r.Context))
	types := eventTypes(b.history(t, cancelled.ID))
	require.Equal(t, "run_retried", types[len(types)-1])
	res = b.do(t, http.MethodPost, path, []byte(`{}`), "Content-Type", "application/json")
	require.Equal(t, http.StatusConflict, res.status, "body: %s", truncate(res.body))
}

func TestBulkRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	b.startRun(t, `{"workflow": "greet"}`)
	for _, kind := range []string{"cancel", "retry"} {
		t.Run(kind, func(t *testing.T) {
			refuse(t, b, "/v1/runs/bulk/"+kind, []badRequest{
				{name: "malformed", body: `{"filter": {`, status: 400, paths: []string{""}},
				{name: "empty body", body: "", headers: []string{"Content-Type", "application/json"}, status: 400},
				{name: "no filter", body: `{}`, status: 422, paths: []string{"/filter"}},
				{name: "empty filter", body: `{"filter": {}}`, status: 422, paths: []string{"/filter"}},
				{name: "empty filter dry run", body: `{"filter": {}, "dry_run": true}`, status: 422, paths: []string{"/filter"}},
				{name: "filter null", body: `{"filter": null}`, status: 422, paths: []string{"/filter"}},
				{name: "unknown filter field", body: `{"filter": {"workflow": "greet", "everything": true}}`, status: 422, paths: []string{"/filter/everything"}},
				{name: "unknown field", body: `{"filter": {"workflow": "greet"}, "bogus": 1}`, status: 422, paths: []string{"/bogus"}},
				{name: "bad status", body: `{"filter": {"status": ["done"]}}`, status: 422, paths: []string{"/filter/status/0"}},
				{name: "empty status list", body: `{"filter": {"status": []}}`, status: 422, paths: []string{"/filter/status"}},
				{name: "status not a list", body: `{"filter": {"status": "failed"}}`, status: 422, paths: []string{"/filter/status"}},
				{name: "bad parent", body: `{"filter": {"parent": "x"}}`, status: 422, paths: []string{"/filter/parent"}},
				{name: "bad time", body: `{"filter": {"created_after": "yesterday"}}`, status: 422, paths: []string{"/filter/created_after"}},
				{name: "SQL in the workflow", body: `{"filter": {"workflow": "'; DELETE FROM runs; --"}}`, status: 422, paths: []string{"/filter/workflow"}},
				{name: "dry_run a string", body: `{"filter": {"workflow": "greet"}, "dry_run": "yes"}`, status: 422, paths: []string{"/dry_run"}},
				{name: "reason too long", body: `{"filter": {"workflow": "greet"}, "reason": ` + oversized(1003) + `}`, status: 422, paths: []string{"/reason"}},
				{name: "over 64 KiB", body: `{"filter": {"workflow": "greet"}, "reason": ` + oversized(70<<10) + `}`, status: 413},
				{name: "100,000 [", body: deepOpen, statuses: tooDeep},
				{name: "text/plain", body: `{"filter": {"workflow": "greet"}}`, headers: []string{"Content-Type", "text/plain"}, status: 415},
			}, noOperations(b))
		})
	}

	res := b.do(t, http.MethodPost, "/v1/runs/bulk/cancel", []byte(`{"filter": {"workflow": "greet", "status": ["pending"]}, "dry_run": true}`), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	require.JSONEq(t, `{"dry_run": true, "matched": 1}`, string(res.body))
	noOperations(b)(t)
}

func TestOperationsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/operations/not-a-uuid", 400},
		{http.MethodGet, "/v1/operations/0193a7c0-0000-7000-8000-000000000000", 404},
		{http.MethodPost, "/v1/operations/0193a7c0-0000-7000-8000-000000000000/cancel", 404},
		{http.MethodPost, "/v1/operations/'%3B%20DROP%20TABLE%20operations/cancel", 400},
		{http.MethodGet, "/v1/operations?cursor=garbage", 400},
		{http.MethodGet, "/v1/operations?cursor=" + strings.Repeat("A", 600), 400},
		{http.MethodGet, "/v1/operations?limit=0", 400},
		{http.MethodGet, "/v1/operations?limit=1001", 400},
		{http.MethodDelete, "/v1/operations/0193a7c0-0000-7000-8000-000000000000", 405},
	} {
		res := b.do(t, tt.method, tt.path, nil)
		requireProblem(t, res, tt.status)
	}
	b.requireHealthy(t)
}
