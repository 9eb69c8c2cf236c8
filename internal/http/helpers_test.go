package http_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	durablehttp "github.com/durablehq/durable/internal/http"
	"github.com/durablehq/durable/internal/orchestrator"
)

// withAPIKeys makes the server accept only these bearer keys.
func withAPIKeys(keys ...string) setupOption {
	return func(cfg *durablehttp.Config, _ *orchestrator.Limits) {
		for _, k := range keys {
			cfg.APIKeyHashes = append(cfg.APIKeyHashes, sha256.Sum256([]byte(k)))
		}
	}
}

// withReady replaces the readiness check.
func withReady(ready func(context.Context) error) setupOption {
	return func(cfg *durablehttp.Config, _ *orchestrator.Limits) { cfg.Ready = ready }
}

// run is the API's Run.
type run struct {
	ID       string `json:"id"`
	Workflow struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
	} `json:"workflow"`
	Status         string          `json:"status"`
	Input          json.RawMessage `json:"input"`
	Context        json.RawMessage `json:"context"`
	Output         json.RawMessage `json:"output"`
	Error          *runError       `json:"error"`
	Attempt        int             `json:"attempt"`
	ParentRunID    string          `json:"parent_run_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
}

type runError struct {
	Message string `json:"message"`
	Code    string `json:"code"`
}

// runSummary is an item of the runs list.
type runSummary struct {
	ID       string `json:"id"`
	Workflow struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
	} `json:"workflow"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// Input is never part of a summary; it is here to notice if it leaks in.
	Input json.RawMessage `json:"input"`
}

type historyEvent struct {
	ID   int64           `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	Time time.Time       `json:"time"`
}

type workflowSummary struct {
	Name          string `json:"name"`
	LatestVersion int    `json:"latest_version"`
}

// listPage is one page of any list.
type listPage[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// getPage fetches one page of a list.
func getPage[T any](t *testing.T, b *testBundle, path string, headers ...string) listPage[T] {
	t.Helper()
	res := b.do(t, http.MethodGet, path, nil, headers...)
	require.Equal(t, http.StatusOK, res.status, "GET %s: %s", path, truncate(res.body))
	var p listPage[T]
	res.decode(t, &p)
	require.NotNil(t, p.Items, "GET %s: items must be an array: %s", path, truncate(res.body))
	return p
}

// listAll walks every page of a list with the given page size and returns
// the items in order. It checks the pagination contract on the way: every
// page but the last is full and has a next_cursor, the last has none.
func listAll[T any](t *testing.T, b *testBundle, path string, limit int, headers ...string) []T {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []T
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10_000, "GET %s: pagination does not end", path)
		u := path + sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		p := getPage[T](t, b, u, headers...)
		require.LessOrEqual(t, len(p.Items), limit, "GET %s", u)
		all = append(all, p.Items...)
		if p.NextCursor == nil {
			return all
		}
		require.NotEmpty(t, *p.NextCursor, "GET %s: next_cursor must be absent, not empty, on the last page", u)
		require.Len(t, p.Items, limit, "GET %s: a page with a next_cursor must be full", u)
		cursor = *p.NextCursor
	}
}

// dbState is what the API shows of the database: every workflow with the
// number of its versions, and every run.
type dbState struct {
	Versions map[string]int
	Runs     []string
}

// state reads the whole database through the list endpoints, checking that
// each workflow's latest_version counts its listed versions (a version number
// reserved by a failed write would break that).
func (b *testBundle) state(t *testing.T, headers ...string) dbState {
	t.Helper()
	s := dbState{Versions: map[string]int{}, Runs: []string{}}
	for _, wf := range listAll[workflowSummary](t, b, "/v1/workflows", 1000, headers...) {
		versions := listAll[workflowVersion](t, b, "/v1/workflows/"+wf.Name+"/versions", 1000, headers...)
		require.Len(t, versions, wf.LatestVersion, "workflow %s", wf.Name)
		s.Versions[wf.Name] = len(versions)
	}
	for _, r := range listAll[runSummary](t, b, "/v1/runs", 1000, headers...) {
		s.Runs = append(s.Runs, r.ID)
	}
	return s
}

// requireHealthy checks that the server still answers.
func (b *testBundle) requireHealthy(t *testing.T) {
	t.Helper()
	res := b.do(t, http.MethodGet, "/healthz", nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	require.JSONEq(t, `{"status":"ok"}`, string(res.body))
}

// startRun starts a run and requires it to be created.
func (b *testBundle) startRun(t *testing.T, body string, headers ...string) run {
	t.Helper()
	res := b.do(t, http.MethodPost, "/v1/runs", []byte(body), headers...)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	var r run
	res.decode(t, &r)
	require.Equal(t, "/v1/runs/"+r.ID, res.header.Get("Location"))
	return r
}

// getRun reads a run.
func (b *testBundle) getRun(t *testing.T, id string) run {
	t.Helper()
	res := b.do(t, http.MethodGet, "/v1/runs/"+id, nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	var r run
	res.decode(t, &r)
	return r
}

// history reads a run's whole history.
func (b *testBundle) history(t *testing.T, id string) []historyEvent {
	t.Helper()
	return listAll[historyEvent](t, b, "/v1/runs/"+id+"/history", 1000)
}

func eventTypes(events []historyEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// requireProblem checks that res is a problem document with the status and,
// when paths are given, errors at exactly those paths (in any order; a path
// may have several errors).
func requireProblem(t *testing.T, res response, status int, paths ...string) problemDoc {
	t.Helper()
	p := res.problem(t, status)
	if len(paths) > 0 {
		want := append([]string(nil), paths...)
		sort.Strings(want)
		require.Equal(t, want, slices.Compact(p.paths()), "body: %s", truncate(res.body))
	}
	for _, e := range p.Errors {
		require.NotEmpty(t, e.Message, "every error needs a message: %s", truncate(res.body))
	}
	return p
}

// ids returns the ids of runs, in order.
func ids(runs []runSummary) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// workflowDef returns a valid one-step definition of workflow name whose
// step calls url, so that different urls make different versions.
func workflowDef(name, url string) string {
	return `{"name": "` + name + `", "steps": [{"name": "only", "type": "call", "url": "` + url + `"}]}`
}
