package http_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// badRequest is a request the server must refuse with a problem document,
// quickly, changing nothing and staying healthy.
type badRequest struct {
	name    string
	method  string // POST when empty
	path    string // the test's default path when empty
	body    string
	headers []string
	chunked bool // send the body without a Content-Length
	// status is the answer wanted; any of statuses when several are fine.
	status   int
	statuses []int
	// paths are the problem's error paths, when the request can name them.
	paths []string
	// pathPrefix, when set, must start the path of the first error.
	pathPrefix string
}

// prompt bounds how long refusing any request may take.
const prompt = 5 * time.Second

// refuse sends each bad request to path (unless it names its own) and
// checks that it is refused with a problem, promptly, that the server stays
// healthy, and that the database holds nothing from it. unchanged, when
// given, checks more of what must not have changed.
func refuse(t *testing.T, b *testBundle, path string, tests []badRequest, unchanged func(t *testing.T)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.state(t)
			method, p := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if p == "" {
				p = path
			}
			var rd io.Reader
			if tt.body != "" {
				rd = strings.NewReader(tt.body)
				if tt.chunked {
					// A reader of unknown length makes the client stream the
					// body in chunks, without a Content-Length.
					rd = io.MultiReader(rd)
				}
			}
			req, err := http.NewRequest(method, b.url+p, rd)
			require.NoError(t, err)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			began := time.Now()
			res, err := b.send(req, tt.headers...)
			require.NoError(t, err)
			require.Less(t, time.Since(began), prompt, "the request must be refused promptly")

			status := tt.status
			if len(tt.statuses) > 0 {
				require.Contains(t, tt.statuses, res.status, "body: %s", truncate(res.body))
				status = res.status
			}
			pd := requireProblem(t, res, status, tt.paths...)
			if tt.pathPrefix != "" {
				require.NotEmpty(t, pd.Errors, "body: %s", truncate(res.body))
				require.True(t, strings.HasPrefix(pd.Errors[0].Path, tt.pathPrefix), "error path %q does not start with %q", pd.Errors[0].Path, tt.pathPrefix)
			}

			b.requireHealthy(t)
			require.Equal(t, before, b.state(t), "a refused request must leave nothing behind")
			if unchanged != nil {
				unchanged(t)
			}
		})
	}
}

// Bodies shared by several endpoints.
var (
	deepOpen     = strings.Repeat("[", 100_000)
	deepBalanced = strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	deepObject   = strings.Repeat(`{"a":`, 50_000) + "1" + strings.Repeat("}", 50_000)
	tooDeep      = []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}
)

// oversized returns a JSON string literal of n bytes, quotes included.
func oversized(n int) string { return `"` + strings.Repeat("a", n-2) + `"` }

func TestCreateWorkflowRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow) // refused posts must not touch it either

	step := `{"name": "a", "type": "call", "url": "http://127.0.0.1:9000/a"}`
	def := func(fields string) string { return `{"name": "wf", "steps": [` + step + `]` + fields + `}` }
	refuse(t, b, "/v1/workflows", []badRequest{
		// Not JSON.
		{name: "malformed", body: `{"name": "wf", "steps": [`, status: 400, paths: []string{""}},
		{name: "trailing data", body: def("") + ` junk`, status: 400, paths: []string{""}},
		{name: "two documents", body: def("") + def(""), status: 400, paths: []string{""}},
		{name: "empty", body: "", headers: []string{"Content-Type", "application/json"}, status: 400},
		{name: "only whitespace", body: " \n\t ", status: 400},
		{name: "invalid UTF-8", body: "{\"name\": \"w\xfff\", \"steps\": [" + step + "]}", status: 400},
		{name: "single quotes", body: `{'name': 'wf'}`, status: 400},
		{name: "comments", body: `{"name": "wf", /* hi */ "steps": [` + step + `]}`, status: 400},

		// JSON, but not a definition.
		{name: "null", body: `null`, status: 422, paths: []string{""}},
		{name: "array", body: `[]`, status: 422, paths: []string{""}},
		{name: "string", body: `"wf"`, status: 422, paths: []string{""}},
		{name: "missing fields", body: `{}`, status: 422, paths: []string{"/name", "/steps"}},
		{name: "missing steps", body: `{"name": "wf"}`, status: 422, paths: []string{"/steps"}},
		{name: "wrong types", body: `{"name": 5, "steps": {}}`, status: 422, paths: []string{"/name", "/steps"}},
		{name: "wrong step field type", body: `{"name": "wf", "steps": [{"name": "a", "type": 5}]}`, status: 422, paths: []string{"/steps/0/type"}},
		{name: "unknown field", body: def(`, "bogus": 1`), status: 422, paths: []string{"/bogus"}},
		{name: "unknown step field", body: `{"name": "wf", "steps": [{"name": "a", "type": "call", "url": "http://127.0.0.1:9000/a", "bogus": 1}]}`, status: 422, paths: []string{"/steps/0/bogus"}},
		{name: "duplicate key", body: `{"name": "wf", "name": "wf2", "steps": [` + step + `]}`, status: 422, paths: []string{"/name"}},
		{name: "duplicate branch", body: `{"name": "wf", "steps": [{"name": "fan", "type": "parallel", "branches": [{"name": "a", "steps": [{"name": "nap", "type": "sleep", "duration": "1s"}]}, {"name": "a", "steps": [{"name": "nap2", "type": "sleep", "duration": "1s"}]}]}]}`, status: 422, paths: []string{"/steps/0/branches/1/name"}},
		{name: "foreach concurrency too high", body: `{"name": "wf", "steps": [{"name": "each", "type": "foreach", "items": "${ input.xs }", "mode": "concurrent", "concurrency": 100000, "steps": [{"name": "nap", "type": "sleep", "duration": "1s"}]}]}`, status: 422, paths: []string{"/steps/0/concurrency"}},
		{name: "no steps", body: `{"name": "wf", "steps": []}`, status: 422, paths: []string{"/steps"}},

		// Hostile strings.
		{name: "SQL in the name", body: `{"name": "'; DROP TABLE runs; --", "steps": [` + step + `]}`, status: 422, paths: []string{"/name"}},
		{name: "path in the name", body: `{"name": "../../etc/passwd", "steps": [` + step + `]}`, status: 422, paths: []string{"/name"}},
		{name: "upper case name", body: `{"name": "Greet", "steps": [` + step + `]}`, status: 422, paths: []string{"/name"}},
		{name: "name too long", body: `{"name": "` + strings.Repeat("a", 129) + `", "steps": [` + step + `]}`, status: 422, paths: []string{"/name"}},
		{name: "NUL in a string", body: def(`, "description": "a\u0000b"`), status: 422, paths: []string{"/description"}},
		{name: "NUL in a key", body: `{"name": "wf", "steps": [{"name": "a", "type": "call", "url": "http://127.0.0.1:9000/a", "headers": {"X-\u0000": "v"}}]}`, status: 422, pathPrefix: "/steps/0/headers"},

		// Not JSON as far as the Content-Type says.
		{name: "text/plain", body: def(""), headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "application/xml", body: `<workflow name="wf"/>`, headers: []string{"Content-Type", "application/xml"}, status: 415},
		{name: "no Content-Type", body: def(""), headers: []string{"Content-Type", ""}, status: 415},
		{name: "form", body: `name=wf`, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415},
		{name: "malformed Content-Type", body: def(""), headers: []string{"Content-Type", "application/json; charset"}, status: 415},

		// Too big or too deep.
		{name: "over 1 MiB", body: def(`, "description": ` + oversized(1<<20)), status: 413},
		{name: "over 1 MiB chunked", body: def(`, "description": ` + oversized(1<<20)), chunked: true, status: 413},
		{name: "100,000 [", body: deepOpen, statuses: tooDeep},
		{name: "100,000 balanced [", body: deepBalanced, statuses: tooDeep},
		{name: "100,000 [ in a field", body: def(`, "output": ` + deepBalanced), statuses: tooDeep},
		{name: "50,000 nested objects", body: deepObject, statuses: tooDeep},
		{name: "deeper than 32", body: def(`, "output": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40)), status: 422, pathPrefix: "/output/0/0"},
	}, func(t *testing.T) {
		res := b.do(t, http.MethodGet, "/v1/workflows/greet", nil)
		require.Equal(t, http.StatusOK, res.status)
		var v workflowVersion
		res.decode(t, &v)
		require.Equal(t, 1, v.Version)
	})
}

func TestStartRunRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)

	refuse(t, b, "/v1/runs", []badRequest{
		// Not JSON.
		{name: "malformed", body: `{"workflow": "greet"`, status: 400, paths: []string{""}},
		{name: "trailing data", body: `{"workflow": "greet"} junk`, status: 400, paths: []string{""}},
		{name: "trailing bracket", body: `{"workflow": "greet"}]`, status: 400, paths: []string{""}},
		{name: "two documents", body: `{"workflow": "greet"}{"workflow": "greet"}`, status: 400, paths: []string{""}},
		{name: "empty", body: "", headers: []string{"Content-Type", "application/json"}, status: 400},
		{name: "invalid UTF-8", body: "{\"workflow\": \"greet\", \"input\": \"\xc3\x28\"}", status: 400},
		{name: "NaN", body: `{"workflow": "greet", "input": NaN}`, status: 400},

		// JSON, but not a start request.
		{name: "null", body: `null`, status: 422, paths: []string{""}},
		{name: "array", body: `[{"workflow": "greet"}]`, status: 422, paths: []string{""}},
		{name: "missing workflow", body: `{"input": {}}`, status: 422, paths: []string{"/workflow"}},
		{name: "workflow not a string", body: `{"workflow": 5}`, status: 422, paths: []string{"/workflow"}},
		{name: "version a string", body: `{"workflow": "greet", "version": "1"}`, status: 422, paths: []string{"/version"}},
		{name: "version a fraction", body: `{"workflow": "greet", "version": 1.5}`, status: 422, paths: []string{"/version"}},
		{name: "version 0", body: `{"workflow": "greet", "version": 0}`, status: 422, paths: []string{"/version"}},
		{name: "version negative", body: `{"workflow": "greet", "version": -1}`, status: 422, paths: []string{"/version"}},
		{name: "version over int32", body: `{"workflow": "greet", "version": 2147483648}`, status: 422, paths: []string{"/version"}},
		{name: "version 1e400", body: `{"workflow": "greet", "version": 1e400}`, status: 422, paths: []string{"/version"}},
		{name: "unknown field", body: `{"workflow": "greet", "bogus": 1}`, status: 422, paths: []string{"/bogus"}},
		{name: "unknown fields and a wrong type", body: `{"workflow": 5, "bogus": 1, "Input": {}}`, status: 422, paths: []string{"/Input", "/bogus", "/workflow"}},
		{name: "unknown workflow", body: `{"workflow": "nope"}`, status: 422, paths: []string{"/workflow"}},
		{name: "unknown version", body: `{"workflow": "greet", "version": 9}`, status: 422, paths: []string{"/version"}},
		{name: "largest version", body: `{"workflow": "greet", "version": 2147483647}`, status: 422, paths: []string{"/version"}},

		// Hostile strings.
		{name: "SQL in the workflow", body: `{"workflow": "'; DROP TABLE runs; --"}`, status: 422, paths: []string{"/workflow"}},
		{name: "path in the workflow", body: `{"workflow": "../../etc/passwd"}`, status: 422, paths: []string{"/workflow"}},
		{name: "NUL in the input", body: `{"workflow": "greet", "input": {"a": "x\u0000y"}}`, status: 422},
		{name: "NUL in an input key", body: `{"workflow": "greet", "input": {"\u0000": 1}}`, status: 422},
		{name: "NUL deep in the input", body: `{"workflow": "greet", "input": [[[{"a": ["ok", "\u0000"]}]]]}`, status: 422},
		{name: "Idempotency-Key of 256 characters", body: `{"workflow": "greet"}`, headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, status: 400, paths: []string{"header:Idempotency-Key"}},
		{name: "Idempotency-Key of 10,000 characters", body: `{"workflow": "greet"}`, headers: []string{"Idempotency-Key", strings.Repeat("k", 10_000)}, status: 400, paths: []string{"header:Idempotency-Key"}},
		{name: "Idempotency-Key not ASCII", body: `{"workflow": "greet"}`, headers: []string{"Idempotency-Key", "clé"}, status: 400, paths: []string{"header:Idempotency-Key"}},
		{name: "Idempotency-Key with a tab", body: `{"workflow": "greet"}`, headers: []string{"Idempotency-Key", "a\tb"}, status: 400, paths: []string{"header:Idempotency-Key"}},

		// Not JSON as far as the Content-Type says.
		{name: "text/plain", body: `{"workflow": "greet"}`, headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "application/xml", body: `<run workflow="greet"/>`, headers: []string{"Content-Type", "application/xml"}, status: 415},
		{name: "no Content-Type", body: `{"workflow": "greet"}`, headers: []string{"Content-Type", ""}, status: 415},

		// Too big or too deep.
		{name: "input of 256 KiB and a byte", body: `{"workflow": "greet", "input": ` + oversized(256<<10+1) + `}`, status: 413, paths: []string{"/input"}},
		{name: "input of 300 KiB", body: `{"workflow": "greet", "input": ` + oversized(300<<10) + `}`, status: 413, paths: []string{"/input"}},
		{name: "input of 1 MiB", body: `{"workflow": "greet", "input": ` + oversized(1<<20) + `}`, status: 413},
		{name: "input of 1 MiB chunked", body: `{"workflow": "greet", "input": ` + oversized(1<<20) + `}`, chunked: true, status: 413},
		{name: "100,000 [", body: `{"workflow": "greet", "input": ` + deepOpen + `}`, statuses: tooDeep},
		{name: "100,000 balanced [", body: `{"workflow": "greet", "input": ` + deepBalanced + `}`, statuses: tooDeep},
		{name: "50,000 nested objects", body: `{"workflow": "greet", "input": ` + deepObject + `}`, statuses: tooDeep},
	}, nil)

	// The limit itself is allowed: exactly 256 KiB of input starts a run.
	r := b.startRun(t, `{"workflow": "greet", "input": `+oversized(256<<10)+`}`)
	require.Len(t, b.getRun(t, r.ID).Input, 256<<10)
	// And so is the longest Idempotency-Key.
	key := strings.Repeat("k", 255)
	require.Equal(t, key, b.startRun(t, `{"workflow": "greet"}`, "Idempotency-Key", key).IdempotencyKey)
}

func TestCancelRunRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)

	refuse(t, b, "/v1/runs/"+r.ID+"/cancel", []badRequest{
		{name: "malformed", body: `{"reason": `, status: 400, paths: []string{""}},
		{name: "trailing data", body: `{"reason": "x"} junk`, status: 400, paths: []string{""}},
		{name: "invalid UTF-8", body: "{\"reason\": \"\xff\"}", status: 400},
		{name: "text/plain", body: `{"reason": "x"}`, headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "no Content-Type", body: `{"reason": "x"}`, headers: []string{"Content-Type", ""}, status: 415},
		{name: "over 64 KiB", body: `{"reason": ` + oversized(64<<10) + `}`, status: 413},
		{name: "over 64 KiB chunked", body: `{"reason": ` + oversized(64<<10) + `}`, chunked: true, status: 413},
		{name: "60,000 [", body: strings.Repeat("[", 60_000), statuses: tooDeep},
		{name: "30,000 balanced [", body: strings.Repeat("[", 30_000) + strings.Repeat("]", 30_000), statuses: tooDeep},
	}, func(t *testing.T) {
		got := b.getRun(t, r.ID)
		require.Equal(t, "pending", got.Status, "a refused cancel must not cancel")
		require.Equal(t, []string{"run_created"}, eventTypes(b.history(t, r.ID)))
	})
}

// TestCancelRunInvalidBody sends cancel bodies that are JSON but not a
// CancelRunRequest: they are refused with 422, which the OpenAPI document
// does not list for cancelRun.
func TestCancelRunInvalidBody(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)

	refuse(t, b, "/v1/runs/"+r.ID+"/cancel", []badRequest{
		{name: "null", body: `null`, status: 422, paths: []string{""}},
		{name: "reason not a string", body: `{"reason": 5}`, status: 422, paths: []string{"/reason"}},
		{name: "unknown field", body: `{"bogus": 1}`, status: 422, paths: []string{"/bogus"}},
		{name: "reason too long", body: `{"reason": ` + oversized(1027) + `}`, status: 422, paths: []string{"/reason"}},
		{name: "NUL in the reason", body: `{"reason": "a\u0000b"}`, status: 422},
	}, func(t *testing.T) {
		require.Equal(t, "pending", b.getRun(t, r.ID).Status, "a refused cancel must not cancel")
	})
}

// cursorOf returns the first page's next_cursor of a list of at least two
// items.
func cursorOf(t *testing.T, b *testBundle, path string) string {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	p := getPage[struct{}](t, b, path+sep+"limit=1")
	require.NotNil(t, p.NextCursor, "%s needs two items", path)
	return url.QueryEscape(*p.NextCursor)
}

func forgedCursor(json string) string {
	return url.QueryEscape(base64.RawURLEncoding.EncodeToString([]byte(json)))
}

func TestListRefusesBadQueries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	b.createWorkflow(t, workflowDef("greet", "http://127.0.0.1:9000/v2"))
	b.createWorkflow(t, workflowDef("other", "http://127.0.0.1:9000/o1"))
	b.createWorkflow(t, workflowDef("other", "http://127.0.0.1:9000/o2"))
	r := b.startRun(t, `{"workflow": "greet"}`)
	r2 := b.startRun(t, `{"workflow": "greet"}`)
	runsCursor := cursorOf(t, b, "/v1/runs")
	workflowsCursor := cursorOf(t, b, "/v1/workflows")
	versionsCursor := cursorOf(t, b, "/v1/workflows/other/versions")
	historyCursor := url.QueryEscape(b.historyCursor(t, r2.ID))
	run := "/v1/runs/" + r.ID

	var tests []badRequest
	// Every list takes limit and cursor.
	for _, list := range []string{"/v1/workflows", "/v1/workflows/greet/versions", "/v1/runs", run + "/steps", run + "/history"} {
		for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=100000", "limit=abc", "limit=1.5", "limit="} {
			tests = append(tests, badRequest{path: list + "?" + q, paths: []string{"query:limit"}})
		}
		for _, q := range []string{
			"cursor=garbage!!", "cursor=" + strings.Repeat("A", 513), "cursor=%27%3B%20DROP%20TABLE%20runs%3B%20--",
			"cursor=" + forgedCursor(`{"l":"nope"}`), "cursor=" + forgedCursor(`not json`),
		} {
			tests = append(tests, badRequest{path: list + "?" + q, paths: []string{"query:cursor"}})
		}
	}
	// A cursor belongs to its list.
	for _, c := range []struct{ list, cursor string }{
		{"/v1/workflows", runsCursor},
		{"/v1/workflows", versionsCursor},
		{"/v1/workflows/greet/versions", versionsCursor}, // of "other"
		{"/v1/workflows/other/versions", workflowsCursor},
		{"/v1/runs", workflowsCursor},
		{"/v1/runs", historyCursor},
		{run + "/history", historyCursor}, // of another run
		{run + "/history", runsCursor},
		{run + "/steps", historyCursor},
		{run + "/steps", runsCursor},
	} {
		tests = append(tests, badRequest{path: c.list + "?cursor=" + c.cursor, paths: []string{"query:cursor"}})
	}
	// The runs list's own filters.
	for _, q := range []struct{ query, path string }{
		{"status=bogus", "query:status/0"},
		{"status=pending,bogus", "query:status/1"},
		{"status=PENDING", "query:status/0"},
		{"status=pending%27--", "query:status/0"},
		{"status=", "query:status"},
		{"status=pending,,running", "query:status/1"},
		{"status=" + strings.Repeat("pending,", 10) + "pending", "query:status"},
		{"workflow=%27%3B%20DROP%20TABLE%20runs%3B%20--", "query:workflow"},
		{"workflow=GREET", "query:workflow"},
		{"workflow=" + strings.Repeat("a", 129), "query:workflow"},
		{"parent=nope", "query:parent"},
		{"parent=%27%3B%20DROP%20TABLE%20runs%3B%20--", "query:parent"},
		{"created_after=yesterday", "query:created_after"},
		{"created_after=2026-02-30T00:00:00Z", "query:created_after"},
		{"created_after=2026-01-01", "query:created_after"},
		{"created_before=1700000000", "query:created_before"},
		{"created_before=%27%3B%20DROP%20TABLE%20runs%3B%20--", "query:created_before"},
		{"cursor=" + forgedCursor(`{"l":"runs","t":"'; DROP TABLE runs; --","i":"x"}`), "query:cursor"},
	} {
		tests = append(tests, badRequest{path: "/v1/runs?" + q.query, paths: []string{q.path}})
	}
	for i := range tests {
		tests[i].name = tests[i].path
		tests[i].method = http.MethodGet
		tests[i].status = http.StatusBadRequest
	}
	refuse(t, b, "", tests, nil)
}

func TestPathParamsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)

	var tests []badRequest
	unknown := "0190a4c2-7d3e-7000-8000-000000000000"
	for _, suffix := range []string{"", "/cancel", "/steps", "/history"} {
		method := http.MethodGet
		if suffix == "/cancel" {
			method = http.MethodPost
		}
		for _, id := range []string{"nope", "..%2F..%2Fetc%2Fpasswd", "%27%3B%20DROP%20TABLE%20runs%3B%20--", r.ID[:35], r.ID + "0", "%00"} {
			tests = append(tests, badRequest{method: method, path: "/v1/runs/" + id + suffix, status: 400, paths: []string{"path:id"}})
		}
		tests = append(tests, badRequest{method: method, path: "/v1/runs/" + unknown + suffix, status: 404})
	}
	for _, suffix := range []string{"", "/versions", "/versions/1"} {
		for _, name := range []string{"GREET", "%27%3B%20DROP%20TABLE%20runs%3B%20--", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", strings.Repeat("a", 129), "_greet", "gr%C3%A9et"} {
			tests = append(tests, badRequest{method: http.MethodGet, path: "/v1/workflows/" + name + suffix, status: 400, paths: []string{"path:name"}})
		}
	}
	for _, version := range []string{"0", "-1", "abc", "1.5", "2147483648", "99999999999999999999", "1e3"} {
		tests = append(tests, badRequest{method: http.MethodGet, path: "/v1/workflows/greet/versions/" + version, status: 400, paths: []string{"path:version"}})
	}
	tests = append(tests,
		badRequest{method: http.MethodGet, path: "/v1/workflows/greet/../../../etc/passwd", statuses: []int{400, 404}},
		badRequest{method: http.MethodGet, path: "/v1/runs/../../etc/passwd", statuses: []int{400, 404}},
	)
	for i := range tests {
		tests[i].name = tests[i].method + " " + tests[i].path
	}
	refuse(t, b, "", tests, func(t *testing.T) {
		require.Equal(t, "pending", b.getRun(t, r.ID).Status)
	})
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	run := "/v1/runs/" + r.ID

	for _, tt := range []struct {
		method, path, allow string
	}{
		{http.MethodDelete, "/v1/workflows", "GET, POST"},
		{http.MethodPut, "/v1/workflows/greet", "GET"},
		{http.MethodDelete, "/v1/workflows/greet", "GET"},
		{http.MethodPost, "/v1/workflows/greet/versions", "GET"},
		{http.MethodPatch, "/v1/workflows/greet/versions/1", "GET"},
		{http.MethodPatch, "/v1/runs", "GET, POST"},
		{http.MethodPut, run, "GET, DELETE"},
		{http.MethodGet, "/v1/workflows/greet/archive", "POST"},
		{http.MethodDelete, "/v1/workflows/greet/unarchive", "POST"},
		{http.MethodGet, run + "/cancel", "POST"},
		{http.MethodDelete, run + "/cancel", "POST"},
		{http.MethodPost, run + "/steps", "GET"},
		{http.MethodPost, run + "/history", "GET"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodDelete, "/readyz", "GET"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := b.do(t, tt.method, tt.path, []byte(`{}`))
			requireProblem(t, res, http.StatusMethodNotAllowed)
			require.Equal(t, tt.allow, res.header.Get("Allow"), "a 405 lists the allowed methods")
			b.requireHealthy(t)
		})
	}
	require.Equal(t, "pending", b.getRun(t, r.ID).Status)
	require.Equal(t, map[string]int{"greet": 1}, b.state(t).Versions)
}

func TestUnknownPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	for _, path := range []string{
		"/", "/v1", "/v1/", "/v2/runs", "/nothing", "/v1/nothing", "/v1/runs/" + r.ID + "/bogus",
		"/v1/workflows/greet/versions/1/extra", "/v1/workflows/greet/graph/extra", "/healthz/x", "/metrics.php", "/.env",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(method+" "+path, func(t *testing.T) {
				requireProblem(t, b.do(t, method, path, nil), http.StatusNotFound)
			})
		}
	}
	b.requireHealthy(t)
}

func TestBodyIgnoredWhereNoneIsTaken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	// A GET with a body (of any kind) reads as a GET.
	for _, body := range []string{`{"bogus": 1}`, "not json at all", strings.Repeat("[", 1000)} {
		res := b.do(t, http.MethodGet, "/v1/workflows/greet", []byte(body), "Content-Type", "text/plain")
		require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	}
}
