package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/api"
)

// The retry, bulk and operations endpoints are served by another branch;
// until it is merged these tests run the commands against a server that
// checks each request against api/openapi.yaml and answers what the
// contract says (its answers are checked against it too). The e2e tests
// cover every other command against the real API.

// specAnswer is what the contract server answers one operation.
type specAnswer struct {
	status int
	body   string
}

// received is one request the contract server accepted.
type received struct {
	Method, Path, Query string
	Body                map[string]any
}

// contractServer answers by operation id, after validating the request
// against the OpenAPI document; a request the document refuses fails the
// test.
type contractServer struct {
	t       *testing.T
	url     string
	mu      sync.Mutex
	got     []received
	answers map[string]specAnswer
}

func newContractServer(t *testing.T, answers map[string]specAnswer) *contractServer {
	t.Helper()
	doc, err := api.Load(context.Background())
	require.NoError(t, err)
	// Match paths on any host: the server listens on a loopback port.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	cs := &contractServer{t: t, answers: answers}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.serve(router, w, r)
	}))
	t.Cleanup(srv.Close)
	cs.url = srv.URL
	return cs
}

func (cs *contractServer) serve(router routers.Router, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	require.NoError(cs.t, err)
	r.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := router.FindRoute(r)
	if err != nil {
		cs.t.Errorf("%s %s is not in the contract: %v", r.Method, r.URL, err)
		http.Error(w, "no route", http.StatusNotFound)
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		cs.t.Errorf("%s %s breaks the contract: %v", r.Method, r.URL, err)
		http.Error(w, "invalid", http.StatusBadRequest)
		return
	}
	rec := received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	if len(body) > 0 {
		require.NoError(cs.t, json.Unmarshal(body, &rec.Body))
	}
	cs.mu.Lock()
	cs.got = append(cs.got, rec)
	cs.mu.Unlock()
	ans, ok := cs.answers[route.Operation.OperationID]
	if !ok {
		cs.t.Errorf("no answer for %s", route.Operation.OperationID)
		http.Error(w, "no answer", http.StatusInternalServerError)
		return
	}
	contentType := "application/json"
	if ans.status >= 400 {
		contentType = "application/problem+json"
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: ans.status, Header: http.Header{"Content-Type": {contentType}},
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes([]byte(ans.body))
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		cs.t.Errorf("the test's answer to %s breaks the contract: %v", route.Operation.OperationID, err)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(ans.status)
	_, _ = io.WriteString(w, ans.body)
}

func (cs *contractServer) requests() []received {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]received(nil), cs.got...)
}

// run runs the command in-process against the server.
func (cs *contractServer) run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string {
			if k == "DURABLE_URL" {
				return cs.url
			}
			return ""
		},
	})
	return code, out.String(), errOut.String()
}

const (
	runID1 = "01a21aaf-0000-7000-8000-000000000001"
	opID1  = "01a21aaf-0000-7000-8000-0000000000aa"
	// retriedRun is a run as POST /v1/runs/{id}/retry answers it.
	retriedRun = `{"id": "` + runID1 + `", "workflow": {"name": "checkout", "version": 3}, "status": "running",
		"attempt": 2, "input": {"order": 1}, "context": {"token": "fresh"},
		"created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T11:00:00Z", "started_at": "2026-12-07T10:00:01Z"}`
	operation = `{"id": "` + opID1 + `", "kind": "retry", "state": "running",
		"filter": {"workflow": "checkout", "status": ["failed", "timed_out"]}, "reason": "incident 42",
		"matched": 120, "done": 40, "skipped": 2, "failed": 1,
		"failures": [{"run_id": "` + runID1 + `", "message": "run of an archived workflow"}],
		"created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:01:00Z"}`
	conflict = `{"type": "urn:durable:problem:conflict", "title": "Conflict", "status": 409,
		"detail": "the run succeeded; only a failed, timed_out, cancelled or compensation_failed run can be retried"}`
)

func TestRunsRetry(t *testing.T) {
	t.Parallel()
	cs := newContractServer(t, map[string]specAnswer{"retryRun": {200, retriedRun}})
	code, out, errOut := cs.run("runs", "retry", runID1, "--context", `{"token": "fresh"}`,
		"--input", `{"coupon": null}`, "--from-step", "charge", "--reason", "rotated the key")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "retried run "+runID1+" (attempt 2); it is running\n", out)
	got := cs.requests()
	require.Len(t, got, 1)
	require.Equal(t, "POST", got[0].Method)
	require.Equal(t, "/v1/runs/"+runID1+"/retry", got[0].Path)
	require.Equal(t, map[string]any{
		"context": map[string]any{"token": "fresh"}, "input": map[string]any{"coupon": nil},
		"from_step": "charge", "reason": "rotated the key",
	}, got[0].Body)

	// Without edits the body is empty of them; -o json is the answer.
	code, out, _ = cs.run("runs", "retry", runID1, "-o", "json")
	require.Equal(t, ExitOK, code)
	require.JSONEq(t, retriedRun, out)
	require.Empty(t, cs.requests()[1].Body)

	// Usage errors send nothing.
	for _, args := range [][]string{
		{"runs", "retry"},
		{"runs", "retry", "nope"},
		{"runs", "retry", runID1, "--input", "{bad"},
		{"runs", "retry", runID1, "--context", "@/no/such/file"},
		{"runs", "retry", runID1, "--interval", "0s"},
	} {
		code, _, errOut := cs.run(args...)
		require.Equal(t, ExitUsage, code, "%v: %s", args, errOut)
	}
	require.Len(t, cs.requests(), 2)
}

func TestRunsRetryConflict(t *testing.T) {
	t.Parallel()
	cs := newContractServer(t, map[string]specAnswer{"retryRun": {409, conflict}})
	code, _, errOut := cs.run("runs", "retry", runID1)
	require.Equal(t, ExitAPI, code)
	require.Equal(t, "durable: Conflict (409): the run succeeded; only a failed, timed_out, cancelled or compensation_failed run can be retried\n", errOut)
}

func TestRunsBulk(t *testing.T) {
	t.Parallel()
	cs := newContractServer(t, map[string]specAnswer{
		"bulkCancelRuns": {200, `{"dry_run": true, "matched": 7}`},
		"bulkRetryRuns":  {202, operation},
	})
	code, out, errOut := cs.run("runs", "bulk", "cancel", "--workflow", "checkout", "--status", "failed,timed_out",
		"--since", "2026-12-07T00:00:00Z", "--before", "2026-12-07T12:00:00Z", "--parent", runID1, "--dry-run")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "dry run: the filter matches 7 runs; nothing changed\n", out)
	got := cs.requests()
	require.Equal(t, "/v1/runs/bulk/cancel", got[0].Path)
	require.Equal(t, map[string]any{"dry_run": true, "filter": map[string]any{
		"workflow": "checkout", "status": []any{"failed", "timed_out"}, "parent": runID1,
		"created_after": "2026-12-07T00:00:00Z", "created_before": "2026-12-07T12:00:00Z",
	}}, got[0].Body)

	code, out, errOut = cs.run("runs", "bulk", "retry", "--workflow", "checkout", "--reason", "incident 42")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "created operation "+opID1+" (retry, running); follow it with: durable operations show "+opID1+"\n", out)
	got = cs.requests()
	require.Equal(t, "/v1/runs/bulk/retry", got[1].Path)
	require.Equal(t, map[string]any{"reason": "incident 42", "filter": map[string]any{"workflow": "checkout"}}, got[1].Body)

	code, out, _ = cs.run("runs", "bulk", "retry", "--status", "failed", "-o", "yaml")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "kind: retry\n")

	// An empty filter, a bad one, an unknown action: refused before any
	// request.
	for _, args := range [][]string{
		{"runs", "bulk", "cancel"},
		{"runs", "bulk", "retry", "--dry-run"},
		{"runs", "bulk", "retry", "--status", "broken"},
		{"runs", "bulk", "retry", "--since", "last week"},
		{"runs", "bulk", "delete", "--workflow", "x"},
	} {
		code, _, errOut := cs.run(args...)
		require.Equal(t, ExitUsage, code, "%v: %s", args, errOut)
	}
	require.Len(t, cs.requests(), 3)
}

func TestOperations(t *testing.T) {
	t.Parallel()
	list := `{"items": [` + operation + `], "next_cursor": "abc"}`
	cs := newContractServer(t, map[string]specAnswer{
		"listOperations": {200, list},
		"getOperation":   {200, operation},
	})
	code, out, errOut := cs.run("operations", "list", "--limit", "1")
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `^ID\s+KIND\s+STATE\s+MATCHED\s+DONE\s+SKIPPED\s+FAILED\s+CREATED\s+FILTER\n`+
		opID1+`\s+retry\s+running\s+120\s+40\s+2\s+1\s+\S+\s+--workflow checkout --status failed,timed_out\n$`, out)
	require.Equal(t, "more: --cursor abc\n", errOut)
	require.Equal(t, "limit=1", cs.requests()[0].Query)
	code, out, _ = cs.run("operations", "list", "-o", "json", "--cursor", "abc")
	require.Equal(t, ExitOK, code)
	require.JSONEq(t, list, out)
	require.Equal(t, "limit=50&cursor=abc", cs.requests()[1].Query)

	code, out, errOut = cs.run("operations", "show", opID1)
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `(?m)^State:\s+running$`, out)
	require.Regexp(t, `(?m)^Matched:\s+120$`, out)
	require.Regexp(t, `(?m)^Reason:\s+incident 42$`, out)
	require.Regexp(t, `(?m)^`+runID1+`\s+run of an archived workflow$`, out)
	require.Equal(t, "/v1/operations/"+opID1, cs.requests()[2].Path)

	code, _, errOut = cs.run("operations", "show", "nope")
	require.Equal(t, ExitUsage, code, errOut)
	code, _, errOut = cs.run("operations", "list", "--limit", "1001")
	require.Equal(t, ExitUsage, code, errOut)
	require.Len(t, cs.requests(), 3)
}
