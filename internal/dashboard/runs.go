package dashboard

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/graph"
	"github.com/durablehq/durable/internal/workflow"
)

// runsPageSize is how many runs a page of the list shows.
const runsPageSize = 50

// countBound is where a count by status stops: "10,000+" costs at most
// 10,001 index entries a status, however many runs there are.
const countBound = 10001

// runFilter is the run list's filters, as the page's URL holds them.
type runFilter struct {
	Workflow      string
	Statuses      map[string]bool
	Parent        string
	CreatedAfter  string // the datetime-local inputs' form, in UTC
	CreatedBefore string
	filter        workflow.RunFilter
}

const datetimeLocal = "2006-01-02T15:04"

// parseRunFilter reads the filters of a run list's URL. A malformed one is
// a problem shown on the page, never silently dropped.
func parseRunFilter(q url.Values) (runFilter, []string) {
	rf := runFilter{Workflow: strings.TrimSpace(q.Get("workflow")), Statuses: map[string]bool{}, Parent: q.Get("parent")}
	var problems []string
	rf.filter.Workflow = rf.Workflow
	known := map[string]bool{}
	for _, s := range workflow.RunStatuses {
		known[string(s)] = true
	}
	for _, v := range q["status"] {
		for st := range strings.SplitSeq(v, ",") {
			if st == "" {
				continue
			}
			if !known[st] {
				problems = append(problems, "status: "+st+" is not a run status")
				continue
			}
			if !rf.Statuses[st] {
				rf.Statuses[st] = true
				rf.filter.Statuses = append(rf.filter.Statuses, workflow.RunStatus(st))
			}
		}
	}
	if rf.Parent != "" {
		id, err := uuid.Parse(rf.Parent)
		if err != nil {
			problems = append(problems, "parent: must be a run id (a UUID)")
		} else {
			rf.filter.Parent = &id
		}
	}
	for _, f := range []struct {
		name string
		text *string
		dst  **time.Time
	}{{"created_after", &rf.CreatedAfter, &rf.filter.CreatedAfter}, {"created_before", &rf.CreatedBefore, &rf.filter.CreatedBefore}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t, err = time.Parse(datetimeLocal, v)
		}
		if err != nil {
			problems = append(problems, f.name+": must be a time such as 2026-12-07T10:00 (UTC)")
			continue
		}
		*f.text = t.UTC().Format(datetimeLocal)
		*f.dst = &t
	}
	return rf, problems
}

// query is the filters as URL parameters, for links that keep them.
func (rf runFilter) query() url.Values {
	q := url.Values{}
	if rf.Workflow != "" {
		q.Set("workflow", rf.Workflow)
	}
	for _, s := range workflow.RunStatuses {
		if rf.Statuses[string(s)] {
			q.Add("status", string(s))
		}
	}
	if rf.Parent != "" {
		q.Set("parent", rf.Parent)
	}
	if rf.CreatedAfter != "" {
		q.Set("created_after", rf.CreatedAfter)
	}
	if rf.CreatedBefore != "" {
		q.Set("created_before", rf.CreatedBefore)
	}
	return q
}

// encodeCursor and decodeCursor carry a page's position in its URL: the
// creation time and id of the last run shown.
func encodeCursor(c workflow.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.CreatedAt.UTC().Format(time.RFC3339Nano) + " " + c.ID.String()))
}

func decodeCursor(s string) (*workflow.Cursor, bool) {
	if s == "" {
		return nil, true
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	ts, id, ok := strings.Cut(string(b), " ")
	t, terr := time.Parse(time.RFC3339Nano, ts)
	u, uerr := uuid.Parse(id)
	if !ok || terr != nil || uerr != nil {
		return nil, false
	}
	return &workflow.Cursor{CreatedAt: t, ID: u}, true
}

type statusCount struct {
	Status string
	Label  string
	Link   string
	Active bool
}

type runsData struct {
	Filter runFilter
	// FilterQuery is the filters as URL parameters, for the bulk form's
	// hidden fields.
	FilterQuery url.Values
	Problems    []string
	Counts      []statusCount
	Runs        []workflow.Run
	Next        string // the next page's URL, "" on the last
	First       string // the first page's URL, "" on the first
	Statuses    []workflow.RunStatus
	LiveQuery   string
}

func (d *Dashboard) runsData(ctx context.Context, q url.Values) (runsData, error) {
	rf, problems := parseRunFilter(q)
	data := runsData{Filter: rf, FilterQuery: rf.query(), Problems: problems, Statuses: workflow.RunStatuses, LiveQuery: q.Encode()}
	cursor, ok := decodeCursor(q.Get("cursor"))
	if !ok {
		data.Problems = append(data.Problems, "cursor: not a position in this list; showing the first page")
	}
	if len(data.Problems) > 0 {
		return data, nil
	}
	counts, err := d.api.CountRunsByStatus(ctx, rf.filter, countBound)
	if err != nil {
		return data, err
	}
	for _, s := range workflow.RunStatuses {
		link := rf.query()
		link.Del("status")
		link.Set("status", string(s))
		data.Counts = append(data.Counts, statusCount{
			Status: string(s), Label: countLabel(counts[s], countBound), Link: "/runs?" + link.Encode(), Active: rf.Statuses[string(s)],
		})
	}
	runs, err := d.api.ListRuns(ctx, rf.filter, cursor, runsPageSize+1)
	if err != nil {
		return data, err
	}
	if len(runs) > runsPageSize {
		runs = runs[:runsPageSize]
		next := rf.query()
		last := runs[len(runs)-1]
		next.Set("cursor", encodeCursor(workflow.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}))
		data.Next = "/runs?" + next.Encode()
	}
	if cursor != nil {
		data.First = "/runs?" + rf.query().Encode()
	}
	data.Runs = runs
	return data, nil
}

func (d *Dashboard) runsPage(w http.ResponseWriter, r *http.Request) {
	data, err := d.runsData(r.Context(), r.URL.Query())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if len(data.Problems) > 0 {
		status = http.StatusBadRequest
	}
	d.render(w, r, status, "runs", "Runs", data)
}

// runsLive streams the list's counts and rows again whenever a run's
// status changes, at most once a second.
func (d *Dashboard) runsLive(w http.ResponseWriter, r *http.Request) {
	d.serveEvents(w, r, uuid.Nil, "runs", func(ctx context.Context) (string, error) {
		data, err := d.runsData(ctx, r.URL.Query())
		if err != nil {
			return "", err
		}
		return d.fragment("runs", "runs-live", data)
	})
}

// runData is everything the run page shows.
type runData struct {
	Run      workflow.Run
	Waiting  []waitingView
	Steps    []workflow.StepExecution
	History  []workflow.HistoryEvent
	Children []workflow.Run
	Graph    string
	Timeline timeline
	Finished bool
	// Retry is the retry form, nil when the run cannot be retried.
	Retry *retryForm
	CSRF  string
}

// runHistoryShown bounds the history events a run page reads: the
// timeline of a run with more shows its first ones and says so.
const runHistoryShown = 1000

func (d *Dashboard) runData(ctx context.Context, id uuid.UUID, csrf string) (runData, error) {
	detail, err := d.api.GetRun(ctx, id)
	if err != nil {
		return runData{}, err
	}
	data := runData{Run: detail.Run, Finished: finished(detail.Status), CSRF: csrf}
	if data.Retry, err = d.newRetryForm(ctx, detail.Run); err != nil {
		return runData{}, err
	}
	for _, w := range detail.Waiting {
		data.Waiting = append(data.Waiting, newWaitingView(detail.Run, w, csrf, nil))
	}
	if data.Steps, err = d.api.ListSteps(ctx, id, nil, 1000); err != nil {
		return runData{}, err
	}
	if data.History, err = d.api.ListHistory(ctx, id, 0, runHistoryShown); err != nil {
		return runData{}, err
	}
	if data.Children, err = d.api.ListRuns(ctx, workflow.RunFilter{Parent: &id}, nil, 50); err != nil {
		return runData{}, err
	}
	g, err := d.api.RunGraph(ctx, id)
	if err != nil {
		return runData{}, err
	}
	js, err := graph.Cytoscape(g)
	if err != nil {
		return runData{}, err
	}
	data.Graph = string(js)
	data.Timeline = buildTimeline(detail.Run, data.Steps, data.History, time.Now())
	return data, nil
}

func finished(s workflow.RunStatus) bool {
	switch s {
	case workflow.RunPending, workflow.RunRunning, workflow.RunWaiting, workflow.RunCompensating:
		return false
	}
	return true
}

func pathRunID(r *http.Request) (uuid.UUID, bool) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	return id, err == nil
}

func (d *Dashboard) runPage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathRunID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A run's id is a UUID.")
		return
	}
	data, err := d.runData(r.Context(), id, d.csrfOf(r))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "run", "Run "+id.String(), data)
}

// runLive streams the run's live part again whenever its status changes.
func (d *Dashboard) runLive(w http.ResponseWriter, r *http.Request) {
	id, ok := pathRunID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A run's id is a UUID.")
		return
	}
	csrf := d.csrfOf(r)
	d.serveEvents(w, r, id, "run", func(ctx context.Context) (string, error) {
		data, err := d.runData(ctx, id, csrf)
		if err != nil {
			return "", err
		}
		return d.fragment("run", "run-live", data)
	})
}

func (d *Dashboard) csrfOf(r *http.Request) string {
	if ss, ok := r.Context().Value(ctxKey{}).(session); ok {
		return d.sessions.csrfToken(ss)
	}
	return ""
}

func (d *Dashboard) cancelRun(w http.ResponseWriter, r *http.Request) {
	id, ok := pathRunID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A run's id is a UUID.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > 1000 {
		d.renderError(w, r, http.StatusRequestEntityTooLarge, "A reason has at most 1,000 characters.")
		return
	}
	if _, err := d.api.CancelRun(r.Context(), id, reason); err != nil {
		d.fail(w, r, err)
		return
	}
	back(w, r, "/runs/"+id.String())
}
