package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

func TestStartRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	v2 := b.createWorkflow(t, workflowDef("greet", "http://127.0.0.1:9000/v2"))
	require.Equal(t, 2, v2.Version)

	t.Run("without input", func(t *testing.T) {
		r := b.startRun(t, `{"workflow": "greet"}`)
		require.NotEmpty(t, r.ID)
		require.Equal(t, "greet", r.Workflow.Name)
		require.Equal(t, 2, r.Workflow.Version, "the latest version")
		require.Equal(t, "pending", r.Status)
		require.JSONEq(t, `{}`, string(r.Input), "an absent input is an empty object")
		require.JSONEq(t, `{}`, string(r.Context))
		require.Equal(t, 1, r.Attempt)
		require.Empty(t, r.IdempotencyKey)
		require.Nil(t, r.Error)
		require.Nil(t, r.FinishedAt)
		require.WithinDuration(t, time.Now(), r.CreatedAt, time.Minute)
		require.Equal(t, time.UTC, r.CreatedAt.Location(), "timestamps are UTC")

		got := b.getRun(t, r.ID)
		require.Equal(t, r, got)
	})

	t.Run("pinned version", func(t *testing.T) {
		r := b.startRun(t, `{"workflow": "greet", "version": 1}`)
		require.Equal(t, 1, r.Workflow.Version)
		require.Equal(t, 1, b.getRun(t, r.ID).Workflow.Version)
		// JSON Schema counts 1.0 as the integer 1.
		r = b.startRun(t, `{"workflow": "greet", "version": 1.0}`)
		require.Equal(t, 1, r.Workflow.Version)
	})

	// Any JSON value is an input, and comes back as it was sent.
	for _, input := range []string{
		`{"user_id": 42, "tags": ["a", "b"], "nested": {"deep": [1, {"x": null}]}, "ok": true}`,
		`[1, 2, 3]`,
		`"just a string"`,
		`42`,
		`-0.5`,
		`true`,
		`{}`,
		`[]`,
		`""`,
	} {
		t.Run("input "+input, func(t *testing.T) {
			r := b.startRun(t, `{"workflow": "greet", "input": `+input+`}`)
			require.JSONEq(t, input, string(r.Input))
			require.JSONEq(t, input, string(b.getRun(t, r.ID).Input))
		})
	}
}

func TestStartRunIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	key := "order-42"

	first := b.startRun(t, `{"workflow": "greet", "input": {"user_id": 42, "tags": ["x"]}}`, "Idempotency-Key", key)
	require.Equal(t, key, first.IdempotencyKey)

	// The same request again, spelled differently, is the same run.
	for _, body := range []string{
		`{"workflow": "greet", "input": {"user_id": 42, "tags": ["x"]}}`,
		`{"input":{"tags":["x"],"user_id":42},"workflow":"greet"}`,
		"{\n  \"workflow\" : \"greet\" ,\n  \"input\" : { \"tags\" : [ \"x\" ] , \"user_id\" : 42 }\n}",
	} {
		res := b.do(t, http.MethodPost, "/v1/runs", []byte(body), "Idempotency-Key", key)
		require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
		require.Equal(t, "/v1/runs/"+first.ID, res.header.Get("Location"))
		var again run
		res.decode(t, &again)
		require.Equal(t, first, again)
	}

	// The key with another request is a conflict, and creates nothing.
	for _, body := range []string{
		`{"workflow": "greet", "input": {"user_id": 43, "tags": ["x"]}}`,
		`{"workflow": "greet"}`,
		`{"workflow": "greet", "version": 1, "input": {"user_id": 42, "tags": ["x"]}}`,
	} {
		requireProblem(t, b.do(t, http.MethodPost, "/v1/runs", []byte(body), "Idempotency-Key", key), http.StatusConflict)
	}

	// Another key is another run; no key is a new run every time.
	other := b.startRun(t, `{"workflow": "greet", "input": {"user_id": 42, "tags": ["x"]}}`, "Idempotency-Key", "order-43")
	require.NotEqual(t, first.ID, other.ID)
	third := b.startRun(t, `{"workflow": "greet"}`)
	fourth := b.startRun(t, `{"workflow": "greet"}`)
	require.NotEqual(t, third.ID, fourth.ID)

	require.ElementsMatch(t, []string{first.ID, other.ID, third.ID, fourth.ID}, b.state(t).Runs)
	require.Equal(t, []string{"run_created"}, eventTypes(b.history(t, first.ID)))
}

// TestStartRunIdempotencyConcurrently sends one keyed request from many
// clients at once: exactly one run is created, and every client gets it.
func TestStartRunIdempotencyConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	const n = 20

	start := func(key string, body func(i int) string) (statuses []int, runIDs []string) {
		statuses, runIDs = make([]int, n), make([]string, n)
		errs := make([]error, n)
		var ready, wg sync.WaitGroup
		ready.Add(1)
		for i := range n {
			wg.Go(func() {
				ready.Wait()
				res, err := b.try(http.MethodPost, "/v1/runs", []byte(body(i)), "Idempotency-Key", key)
				if err != nil {
					errs[i] = err
					return
				}
				statuses[i] = res.status
				if res.status < 300 {
					var r run
					errs[i] = json.Unmarshal(res.body, &r)
					runIDs[i] = r.ID
				}
			})
		}
		ready.Done()
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		return statuses, runIDs
	}

	t.Run("same request", func(t *testing.T) {
		statuses, runIDs := start("same", func(int) string { return `{"workflow": "greet", "input": {"n": 1}}` })
		created := 0
		for i, s := range statuses {
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, s)
			require.Equal(t, runIDs[0], runIDs[i], "every client gets the same run")
			if s == http.StatusCreated {
				created++
			}
		}
		require.Equal(t, 1, created, "exactly one request creates the run: %v", statuses)
		runs := getPage[runSummary](t, b, "/v1/runs?workflow=greet").Items
		require.Equal(t, []string{runIDs[0]}, ids(runs))
		require.Equal(t, []string{"run_created"}, eventTypes(b.history(t, runIDs[0])))
	})

	t.Run("different requests", func(t *testing.T) {
		statuses, runIDs := start("contested", func(i int) string { return fmt.Sprintf(`{"workflow": "greet", "input": {"n": %d}}`, i%2) })
		created, winner := 0, ""
		for i, s := range statuses {
			switch s {
			case http.StatusCreated:
				created++
				winner = runIDs[i]
			case http.StatusOK, http.StatusConflict:
			default:
				t.Fatalf("unexpected status %d", s)
			}
		}
		require.Equal(t, 1, created, "exactly one request creates the run: %v", statuses)
		for i, s := range statuses {
			if s == http.StatusOK {
				require.Equal(t, winner, runIDs[i])
			}
		}
		require.Len(t, b.state(t).Runs, 2, "one run per key")
	})
}

func TestListRunsFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, workflowDef("alpha", "http://127.0.0.1:9000/a"))
	b.createWorkflow(t, workflowDef("beta", "http://127.0.0.1:9000/b"))

	// Oldest first: alpha, beta, alpha, alpha, beta, alpha.
	var started []run
	for _, wf := range []string{"alpha", "beta", "alpha", "alpha", "beta", "alpha"} {
		started = append(started, b.startRun(t, `{"workflow": "`+wf+`", "input": {"secret": "not in summaries"}}`))
	}
	cancelled := map[string]bool{started[2].ID: true, started[4].ID: true}
	for id := range cancelled {
		require.Equal(t, http.StatusOK, b.do(t, http.MethodPost, "/v1/runs/"+id+"/cancel", nil).status)
	}

	all := listAll[runSummary](t, b, "/v1/runs", 1000)
	require.Len(t, all, len(started))
	for i, r := range all {
		require.Equal(t, started[len(started)-1-i].ID, r.ID, "newest first")
		require.Nil(t, r.Input, "summaries leave the input out")
		if i > 0 {
			require.False(t, r.CreatedAt.After(all[i-1].CreatedAt), "newest first")
		}
	}
	// where selects the expected runs from all, keeping the order.
	where := func(keep func(r runSummary) bool) []string {
		out := []string{}
		for _, r := range all {
			if keep(r) {
				out = append(out, r.ID)
			}
		}
		return out
	}
	mid := all[3].CreatedAt // the third oldest
	at := url.QueryEscape(mid.Format(time.RFC3339Nano))

	tests := []struct {
		query string
		want  []string
	}{
		{"", where(func(runSummary) bool { return true })},
		{"workflow=alpha", where(func(r runSummary) bool { return r.Workflow.Name == "alpha" })},
		{"workflow=beta", where(func(r runSummary) bool { return r.Workflow.Name == "beta" })},
		{"workflow=gamma", []string{}},
		{"status=pending", where(func(r runSummary) bool { return !cancelled[r.ID] })},
		{"status=cancelled", where(func(r runSummary) bool { return cancelled[r.ID] })},
		{"status=pending,cancelled", where(func(runSummary) bool { return true })},
		{"status=running,waiting,succeeded", []string{}},
		{"status=cancelled&workflow=alpha", []string{started[2].ID}},
		{"parent=" + started[0].ID, []string{}},
		{"parent=00000000-0000-0000-0000-000000000000", []string{}},
		{"created_after=" + at, where(func(r runSummary) bool { return !r.CreatedAt.Before(mid) })},
		{"created_before=" + at, where(func(r runSummary) bool { return r.CreatedAt.Before(mid) })},
		{"created_after=" + at + "&created_before=" + at, []string{}},
		{"created_after=" + at + "&workflow=alpha&status=pending", where(func(r runSummary) bool {
			return !r.CreatedAt.Before(mid) && r.Workflow.Name == "alpha" && !cancelled[r.ID]
		})},
		{"created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00%2B02:00", where(func(runSummary) bool { return true })},
		{"created_after=2999-01-01T00:00:00Z", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			for _, limit := range []int{1, 2, 1000} {
				path := "/v1/runs"
				if tt.query != "" {
					path += "?" + tt.query
				}
				require.Equal(t, tt.want, ids(listAll[runSummary](t, b, path, limit)), "limit=%d", limit)
			}
		})
	}
}

func TestCancelRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)

	for _, tt := range []struct {
		name, body, reason string
	}{
		{"with a reason", `{"reason": "the customer changed their mind"}`, "the customer changed their mind"},
		{"without a body", "", ""},
		{"with an empty object", `{}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := b.startRun(t, `{"workflow": "greet"}`)
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			res := b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/cancel", body)
			require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
			var c run
			res.decode(t, &c)
			require.Equal(t, r.ID, c.ID)
			require.Equal(t, "cancelled", c.Status)
			require.NotNil(t, c.FinishedAt)
			require.NotNil(t, c.Error)
			require.Equal(t, "cancelled", c.Error.Code)
			require.Contains(t, c.Error.Message, tt.reason)
			require.Equal(t, c, b.getRun(t, r.ID))

			// A finished run cannot be cancelled again, and nothing changes.
			requireProblem(t, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/cancel", body), http.StatusConflict)
			require.Equal(t, c, b.getRun(t, r.ID))

			events := b.history(t, r.ID)
			require.Equal(t, []string{"run_created", "run_cancelled"}, eventTypes(events))
			var data struct {
				Reason string `json:"reason"`
			}
			require.NoError(t, json.Unmarshal(events[1].Data, &data))
			require.Equal(t, tt.reason, data.Reason)
		})
	}
}

// TestCancelRunConcurrently cancels one run from many clients at once:
// exactly one succeeds, and the history records one cancellation.
func TestCancelRunConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	const n = 10
	statuses := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := b.try(http.MethodPost, "/v1/runs/"+r.ID+"/cancel", []byte(`{"reason": "race"}`))
			statuses[i], errs[i] = res.status, err
		})
	}
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		require.NoError(t, errs[i])
		require.Contains(t, []int{http.StatusOK, http.StatusConflict}, s)
		if s == http.StatusOK {
			ok++
		}
	}
	require.Equal(t, 1, ok, "exactly one cancel succeeds: %v", statuses)
	require.Equal(t, []string{"run_created", "run_cancelled"}, eventTypes(b.history(t, r.ID)))
}

func TestListRunSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)

	for _, query := range []string{"", "?limit=1", "?limit=1000"} {
		res := b.do(t, http.MethodGet, "/v1/runs/"+r.ID+"/steps"+query, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
		require.JSONEq(t, `{"items": []}`, string(res.body), "a fresh run has no steps, and items is an array")
	}
	// A cursor of another list is refused.
	historyCursor := b.historyCursor(t, r.ID)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/runs/"+r.ID+"/steps?cursor="+url.QueryEscape(historyCursor), nil), http.StatusBadRequest, "query:cursor")
}

// historyCursor cancels a run (so that it has two events) and returns the
// next_cursor of its first history page of one event.
func (b *testBundle) historyCursor(t *testing.T, id string) string {
	t.Helper()
	if len(b.history(t, id)) < 2 {
		require.Equal(t, http.StatusOK, b.do(t, http.MethodPost, "/v1/runs/"+id+"/cancel", nil).status)
	}
	p := getPage[historyEvent](t, b, "/v1/runs/"+id+"/history?limit=1")
	require.NotNil(t, p.NextCursor)
	return *p.NextCursor
}

func TestListRunHistoryPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`, "Idempotency-Key", "history-1")
	other := b.startRun(t, `{"workflow": "greet"}`)

	// A fresh run's history is its creation.
	events := b.history(t, r.ID)
	require.Equal(t, []string{"run_created"}, eventTypes(events))
	var created struct {
		Workflow       string `json:"workflow"`
		Version        int    `json:"version"`
		IdempotencyKey string `json:"idempotency_key"`
	}
	require.NoError(t, json.Unmarshal(events[0].Data, &created))
	require.Equal(t, "greet", created.Workflow)
	require.Equal(t, 1, created.Version)
	require.Equal(t, "history-1", created.IdempotencyKey)

	require.Equal(t, http.StatusOK, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/cancel", []byte(`{"reason": "enough"}`)).status)
	for _, limit := range []int{1, 2, 3} {
		events := listAll[historyEvent](t, b, "/v1/runs/"+r.ID+"/history", limit)
		require.Equal(t, []string{"run_created", "run_cancelled"}, eventTypes(events), "limit=%d", limit)
		require.Less(t, events[0].ID, events[1].ID, "ids increase")
		require.False(t, events[1].Time.Before(events[0].Time))
	}
	require.Equal(t, []string{"run_created"}, eventTypes(b.history(t, other.ID)), "each run has its own history")

	// A cursor belongs to its own run's history.
	cursor := b.historyCursor(t, r.ID)
	second := getPage[historyEvent](t, b, "/v1/runs/"+r.ID+"/history?limit=1&cursor="+url.QueryEscape(cursor))
	require.Equal(t, []string{"run_cancelled"}, eventTypes(second.Items))
	require.Nil(t, second.NextCursor)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/runs/"+other.ID+"/history?cursor="+url.QueryEscape(cursor), nil), http.StatusBadRequest, "query:cursor")
}

// TestStartRunTraceContext: a traceparent (and tracestate) on a start puts
// the run in the caller's trace, kept with the run; one that is not valid
// is ignored, never refused, and the run begins a trace of its own.
func TestStartRunTraceContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	stored := func(id string) workflow.TraceContext {
		r, err := b.db.GetRun(t.Context(), uuid.MustParse(id))
		require.NoError(t, err)
		return r.Trace
	}
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tc := stored(b.startRun(t, `{"workflow": "greet"}`, "traceparent", caller, "tracestate", "vendor=x").ID)
	require.Regexp(t, `^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$`, tc.Traceparent)
	require.NotContains(t, tc.Traceparent, "00f067aa0ba902b7", "the run's span is a span of its own")
	require.Equal(t, "00f067aa0ba902b7", tc.ParentSpanID)
	require.Equal(t, "vendor=x", tc.Tracestate)

	for _, bad := range []string{"garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"} {
		tc := stored(b.startRun(t, `{"workflow": "greet"}`, "traceparent", bad, "tracestate", "vendor=x").ID)
		require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`, tc.Traceparent, "traceparent %q", bad)
		require.NotContains(t, tc.Traceparent, "4bf92f3577b34da6a3ce929d0e0e4736")
		require.Empty(t, tc.ParentSpanID, "traceparent %q", bad)
		require.Empty(t, tc.Tracestate, "traceparent %q", bad)
	}
	// Without one, every run begins a trace of its own.
	one, two := stored(b.startRun(t, `{"workflow": "greet"}`).ID), stored(b.startRun(t, `{"workflow": "greet"}`).ID)
	require.NotEqual(t, one.Traceparent[3:35], two.Traceparent[3:35])
}
