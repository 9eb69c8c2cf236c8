package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/workflow"
)

// testCaller is the id the REST API gives the key "test-key": the first 4
// bytes of its SHA-256, in hex.
var testCaller = func() string {
	sum := sha256.Sum256([]byte("test-key"))
	return "key:" + hex.EncodeToString(sum[:4])
}()

// dashTest is a dashboard over a fresh database, logged in.
type dashTest struct {
	api    *orchestrator.API
	url    string
	cookie *http.Cookie
	csrf   string
	client *http.Client
}

func newDashTest(t *testing.T) *dashTest {
	t.Helper()
	db := pgtest.New(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := orchestrator.NewAPI(db, orchestrator.DefaultLimits(), logger)
	d, err := New(Config{
		API: api, APIKeyHashes: [][sha256.Size]byte{sha256.Sum256([]byte("test-key"))},
		SessionKey: []byte(strings.Repeat("s", 32)), Logger: logger,
	})
	require.NoError(t, err)
	ts := httptest.NewServer(d)
	t.Cleanup(ts.Close)
	ss, ok := d.sessions.login("test-key")
	require.True(t, ok)
	return &dashTest{
		api: api, url: ts.URL, csrf: d.sessions.csrfToken(ss),
		cookie: &http.Cookie{Name: sessionCookie, Value: d.sessions.encode(ss)},
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// post sends a form, with the session's CSRF token unless form sets one
// (an empty csrf sends none).
func (dt *dashTest) post(t *testing.T, path string, form url.Values) (int, string, string) {
	t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", dt.csrf)
	} else if form.Get("csrf") == "" {
		form.Del("csrf")
	}
	req, err := http.NewRequest(http.MethodPost, dt.url+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(dt.cookie)
	return dt.send(t, req)
}

func (dt *dashTest) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, dt.url+path, nil)
	require.NoError(t, err)
	req.AddCookie(dt.cookie)
	return dt.send(t, req)
}

func (dt *dashTest) send(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	res, err := dt.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body), res.Header.Get("Location")
}

// cancelledRuns starts n runs of a two-step workflow and cancels them: no
// worker runs here, and a cancelled run is one a retry takes.
func (dt *dashTest) cancelledRuns(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	_, _, err := dt.api.CreateWorkflow(ctx, []byte(`{"name": "greet", "steps": [
		{"name": "hello", "type": "call", "url": "http://127.0.0.1:1/hello"},
		{"name": "bye", "type": "call", "url": "http://127.0.0.1:1/bye"}]}`))
	require.NoError(t, err)
	var ids []uuid.UUID
	for range n {
		run, _, err := dt.api.StartRun(ctx, orchestrator.StartRun{Workflow: "greet", Input: json.RawMessage(`{"a": 1}`)})
		require.NoError(t, err)
		_, err = dt.api.CancelRun(ctx, run.ID, "")
		require.NoError(t, err)
		ids = append(ids, run.ID)
	}
	return ids
}

func (dt *dashTest) run(t *testing.T, id uuid.UUID) workflow.Run {
	t.Helper()
	detail, err := dt.api.GetRun(context.Background(), id)
	require.NoError(t, err)
	return detail.Run
}

// TestRetryFormHostile: the run page's retry form refuses bad run ids,
// bad JSON patches, patches the API refuses, unknown steps, oversized
// bodies and missing CSRF tokens — each shown next to its field, the run
// unchanged — then a valid retry with an edited input resumes the run.
func TestRetryFormHostile(t *testing.T) {
	t.Parallel()
	dt := newDashTest(t)
	id := dt.cancelledRuns(t, 1)[0]
	path := "/runs/" + id.String() + "/retry"

	status, body, _ := dt.get(t, "/runs/"+id.String())
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `action="`+path+`"`)
	require.Contains(t, body, `<option value="bye">bye</option>`, "the from-step select lists the top-level steps")

	for _, c := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		shows  string
	}{
		{"bad run id", "/runs/not-a-uuid/retry", url.Values{}, 404, "A run&#39;s id is a UUID."},
		{"SQL in the run id", "/runs/'%3B%20DROP%20TABLE%20runs%3B--/retry", url.Values{}, 404, "UUID"},
		{"unknown run", "/runs/0193a7c0-0000-7000-8000-000000000000/retry", url.Values{}, 404, "not"},
		{"no CSRF token", path, url.Values{"csrf": {""}, "input": {`{"b": 2}`}}, 403, "CSRF"},
		{"a wrong CSRF token", path, url.Values{"csrf": {"forged"}}, 403, "CSRF"},
		{"input not JSON", path, url.Values{"input": {`{"b": `}}, 422, `id="retry-input-error">not valid JSON`},
		{"context not JSON", path, url.Values{"context": {"<script>alert(1)</script>"}}, 422, `id="retry-context-error">not valid JSON`},
		{"context patch leaves no object", path, url.Values{"context": {`"x"`}}, 422, `id="retry-context-error">a run&#39;s context is an object`},
		{"unknown step", path, url.Values{"from_step": {"<b>nope</b>"}}, 422, `id="retry-from-error">`},
		{"reason too long", path, url.Values{"reason": {strings.Repeat("r", 1001)}}, 422, "at most 1,000 characters"},
		{"invalid UTF-8 reason", path, url.Values{"reason": {"\xc3\x28"}}, 422, "at most 1,000 characters"},
		{"oversized body", path, url.Values{"input": {`{"a": "` + strings.Repeat("x", formLimit) + `"}`}}, 413, "too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := dt.post(t, c.path, c.form)
			require.Equal(t, c.status, status, body)
			require.Contains(t, body, c.shows)
			require.NotContains(t, body, "<b>nope</b>", "what was typed is escaped")
			require.NotContains(t, body, "<script>alert(1)</script>")
			r := dt.run(t, id)
			require.Equal(t, workflow.RunCancelled, r.Status)
			require.JSONEq(t, `{"a": 1}`, string(r.Input))
		})
	}

	// What was typed stays in the form refused.
	_, body, _ = dt.post(t, path, url.Values{"input": {`{"b": `}, "reason": {"kept"}})
	require.Contains(t, body, `{&#34;b&#34;: </textarea>`)
	require.Contains(t, body, `value="kept"`)

	status, body, location := dt.post(t, path, url.Values{"input": {`{"b": 2}`}, "context": {`{"k": "v"}`}, "from_step": {"hello"}, "reason": {"edited"}})
	require.Equal(t, http.StatusSeeOther, status, body)
	require.Equal(t, "/runs/"+id.String(), location)
	r := dt.run(t, id)
	require.Equal(t, workflow.RunRunning, r.Status)
	require.JSONEq(t, `{"a": 1, "b": 2}`, string(r.Input))
	require.JSONEq(t, `{"k": "v"}`, string(r.Context))
	history, err := dt.api.ListHistory(context.Background(), id, 0, 100)
	require.NoError(t, err)
	last := history[len(history)-1]
	require.Equal(t, workflow.EventRunRetried, last.Type)
	var retried map[string]any
	require.NoError(t, json.Unmarshal(last.Data, &retried))
	require.Equal(t, testCaller, retried["by"], "the retry is recorded as by the session's API key, as the REST API records it")
	require.Equal(t, "hello", retried["from_step"])
	require.Equal(t, "edited", retried["reason"])

	// A running run has no retry form, and a retry of it is a conflict
	// shown on the page.
	_, body, _ = dt.get(t, "/runs/"+id.String())
	require.NotContains(t, body, `action="`+path+`"`)
	status, body, _ = dt.post(t, path, url.Values{})
	require.Equal(t, http.StatusConflict, status)
	require.Contains(t, body, "cannot be retried")
}

// TestBulkHostile: a bulk action over the list's filters shows its
// dry-run count first and creates the operation only once confirmed; an
// empty or malformed filter, an unknown kind and a missing CSRF token are
// refused with their message, and create nothing.
func TestBulkHostile(t *testing.T) {
	t.Parallel()
	dt := newDashTest(t)
	dt.cancelledRuns(t, 3)
	ctx := context.Background()
	noOperation := func(t *testing.T) {
		ops, err := dt.api.ListOperations(ctx, nil, 10)
		require.NoError(t, err)
		require.Empty(t, ops)
	}

	for _, c := range []struct {
		name   string
		form   url.Values
		status int
		shows  string
	}{
		{"no kind", url.Values{"workflow": {"greet"}}, 400, "cancel or retry"},
		{"unknown kind", url.Values{"kind": {"delete"}, "workflow": {"greet"}}, 400, "cancel or retry"},
		{"empty filter", url.Values{"kind": {"cancel"}}, 422, "the filter is empty"},
		{"empty filter, confirmed", url.Values{"kind": {"cancel"}, "confirm": {"1"}}, 422, "the filter is empty"},
		{"unknown status", url.Values{"kind": {"retry"}, "status": {"'; DROP TABLE runs; --"}}, 400, "is not a run status"},
		{"bad parent", url.Values{"kind": {"retry"}, "parent": {"../../etc"}}, 400, "must be a run id"},
		{"bad time", url.Values{"kind": {"retry"}, "created_after": {"yesterday"}}, 400, "must be a time"},
		{"reason too long", url.Values{"kind": {"retry"}, "workflow": {"greet"}, "reason": {strings.Repeat("r", 1001)}}, 400, "at most 1,000"},
		{"no CSRF token", url.Values{"csrf": {""}, "kind": {"retry"}, "workflow": {"greet"}, "confirm": {"1"}}, 403, "CSRF"},
		{"oversized body", url.Values{"kind": {"retry"}, "workflow": {strings.Repeat("w", formLimit)}}, 413, "too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := dt.post(t, "/runs/bulk", c.form)
			require.Equal(t, c.status, status, body)
			require.Contains(t, body, c.shows)
			noOperation(t)
		})
	}

	// The dry run counts; only the confirmation creates the operation.
	filter := url.Values{"kind": {"retry"}, "workflow": {"greet"}, "status": {"cancelled"}, "reason": {"again"}}
	status, body, _ := dt.post(t, "/runs/bulk", filter)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "This will retry 3 runs")
	require.Contains(t, body, `name="confirm"`)
	noOperation(t)
	filter.Set("confirm", "1")
	status, _, location := dt.post(t, "/runs/bulk", filter)
	require.Equal(t, http.StatusSeeOther, status)
	ops, err := dt.api.ListOperations(ctx, nil, 10)
	require.NoError(t, err)
	require.Len(t, ops, 1)
	op := ops[0]
	require.Equal(t, "/operations/"+op.ID.String(), location)
	require.Equal(t, workflow.OperationRetry, op.Kind)
	require.Equal(t, "greet", op.Filter.Workflow)
	require.Equal(t, []workflow.RunStatus{workflow.RunCancelled}, op.Filter.Statuses)
	require.Equal(t, "again", op.Reason)
	require.Equal(t, testCaller, op.CreatedBy)

	status, body, _ = dt.get(t, location)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `hx-get="/operations/`+op.ID.String()+`/progress"`, "a pending operation's progress is polled")
	status, body, _ = dt.get(t, location+"/progress")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `id="op-state"`)
	for _, bad := range []string{"/operations/not-a-uuid", "/operations/0193a7c0-0000-7000-8000-000000000000", "/operations/not-a-uuid/progress"} {
		status, _, _ := dt.get(t, bad)
		require.Equal(t, http.StatusNotFound, status, bad)
	}
}

// TestSelectedRunsHostile: the runs ticked on a page are cancelled or
// retried each; none, too many, a bad id or a missing CSRF token are
// refused before any run changes, and a run that cannot be is reported.
func TestSelectedRunsHostile(t *testing.T) {
	t.Parallel()
	dt := newDashTest(t)
	ids := dt.cancelledRuns(t, 2)
	many := url.Values{"kind": {"retry"}}
	for range runsPageSize + 1 {
		many.Add("run", ids[0].String())
	}
	for _, c := range []struct {
		name   string
		form   url.Values
		status int
	}{
		{"no kind", url.Values{"run": {ids[0].String()}}, 400},
		{"no run", url.Values{"kind": {"retry"}}, 400},
		{"too many runs", many, 400},
		{"a bad id among good ones", url.Values{"kind": {"retry"}, "run": {ids[0].String(), "<script>"}}, 400},
		{"no CSRF token", url.Values{"csrf": {""}, "kind": {"retry"}, "run": {ids[0].String()}}, 403},
		{"reason too long", url.Values{"kind": {"retry"}, "run": {ids[0].String()}, "reason": {strings.Repeat("r", 1001)}}, 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := dt.post(t, "/runs/selected", c.form)
			require.Equal(t, c.status, status, body)
			require.NotContains(t, body, "<script>")
			for _, id := range ids {
				require.Equal(t, workflow.RunCancelled, dt.run(t, id).Status)
			}
		})
	}

	form := url.Values{"kind": {"retry"}, "run": {ids[0].String(), ids[1].String()}}
	status, body, _ := dt.post(t, "/runs/selected", form)
	require.Equal(t, http.StatusOK, status, body)
	for _, id := range ids {
		require.Equal(t, workflow.RunRunning, dt.run(t, id).Status)
	}
	// Again: both are running now, and each says why it was not retried;
	// cancelling them works.
	status, body, _ = dt.post(t, "/runs/selected", form)
	require.Equal(t, http.StatusMultiStatus, status)
	require.Equal(t, 2, strings.Count(body, "cannot be retried"), body)
	form.Set("kind", "cancel")
	status, _, _ = dt.post(t, "/runs/selected", form)
	require.Equal(t, http.StatusOK, status)
	for _, id := range ids {
		require.Equal(t, workflow.RunCancelled, dt.run(t, id).Status)
	}
}
