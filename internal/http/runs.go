package http

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/workflow"
)

type workflowRefJSON struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

type runJSON struct {
	ID             uuid.UUID       `json:"id"`
	Workflow       workflowRefJSON `json:"workflow"`
	Status         string          `json:"status"`
	Input          json.RawMessage `json:"input"`
	Context        json.RawMessage `json:"context"`
	Output         json.RawMessage `json:"output,omitempty"`
	Error          json.RawMessage `json:"error,omitempty"`
	Attempt        int             `json:"attempt"`
	ParentRunID    *uuid.UUID      `json:"parent_run_id,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Deadline       *time.Time      `json:"deadline,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	StartedAt      *time.Time      `json:"started_at,omitempty"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	WaitingFor     []waitingJSON   `json:"waiting_for,omitempty"`
	Priority       int             `json:"priority"`
	Blocked        *blockedJSON    `json:"blocked,omitempty"`
}

// blockedJSON is why flow control holds a run up.
type blockedJSON struct {
	Reason string     `json:"reason"`
	Key    string     `json:"key"`
	Step   string     `json:"step,omitempty"`
	Since  time.Time  `json:"since"`
	Until  *time.Time `json:"until,omitempty"`
}

func blockedFrom(b *workflow.Blocked) *blockedJSON {
	if b == nil {
		return nil
	}
	return &blockedJSON{Reason: b.Reason, Key: b.Key, Step: b.Step, Since: b.Since.UTC(), Until: utc(b.Until)}
}

// waitingJSON is what a waiting run waits for.
type waitingJSON struct {
	Step        string          `json:"step"`
	Type        string          `json:"type"`
	Deadline    *time.Time      `json:"deadline,omitempty"`
	Events      []eventWaitJSON `json:"events,omitempty"`
	Question    *questionJSON   `json:"question,omitempty"`
	CallbackURL string          `json:"callback_url,omitempty"`
}

type eventWaitJSON struct {
	Event string `json:"event"`
	Key   string `json:"key"`
}

type questionJSON struct {
	Kind    string          `json:"kind"`
	Prompt  string          `json:"prompt,omitempty"`
	Options []string        `json:"options,omitempty"`
	Schema  json.RawMessage `json:"schema,omitempty"`
}

func questionFrom(q *orchestrator.Question) *questionJSON {
	if q == nil {
		return nil
	}
	return &questionJSON{Kind: q.Kind, Prompt: q.Prompt, Options: q.Options, Schema: q.Schema}
}

func runDetailFrom(d orchestrator.RunDetail) runJSON {
	out := runFrom(d.Run)
	for _, w := range d.Waiting {
		wj := waitingJSON{Step: w.Step, Type: w.Type, Deadline: utc(w.Deadline), Question: questionFrom(w.Question), CallbackURL: w.CallbackURL}
		for _, e := range w.Events {
			wj.Events = append(wj.Events, eventWaitJSON{Event: e.EventName, Key: e.EventKey})
		}
		out.WaitingFor = append(out.WaitingFor, wj)
	}
	return out
}

func runFrom(r workflow.Run) runJSON {
	return runJSON{
		ID: r.ID, Workflow: workflowRefJSON{r.Workflow, r.Version}, Status: string(r.Status),
		Input: r.Input, Context: r.Context, Output: r.Output, Error: r.Error, Attempt: r.Attempt,
		ParentRunID: r.ParentRunID, IdempotencyKey: r.IdempotencyKey, Deadline: utc(r.Deadline),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), StartedAt: utc(r.StartedAt), FinishedAt: utc(r.FinishedAt),
		Priority: r.Priority, Blocked: blockedFrom(r.Blocked),
	}
}

type runSummaryJSON struct {
	ID          uuid.UUID       `json:"id"`
	Workflow    workflowRefJSON `json:"workflow"`
	Status      string          `json:"status"`
	Error       json.RawMessage `json:"error,omitempty"`
	Attempt     int             `json:"attempt"`
	ParentRunID *uuid.UUID      `json:"parent_run_id,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// decodeBody decodes the request body strictly into v. The validator has
// checked it against the OpenAPI document already, so a failure here is a
// mismatch between the document and the handler.
func decodeBody(r *http.Request, v any) error {
	body := requestBody(r)
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fault.WithProblems(fault.Invalid, "the request body is invalid", []fault.Problem{{Path: "", Message: err.Error()}})
	}
	return nil
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Workflow string `json:"workflow"`
		// Version is a json.Number because JSON Schema counts 1.0 and 1e0
		// as the integer 1; the validator has checked it is an integer in
		// range, which a float64 holds exactly.
		Version  json.Number     `json:"version"`
		Input    json.RawMessage `json:"input"`
		Priority *int            `json:"priority"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	version := 0
	if req.Version != "" {
		f, err := req.Version.Float64()
		if err != nil || f != math.Trunc(f) || f < 1 || f > math.MaxInt32 {
			s.writeError(w, r, fault.WithProblems(fault.Invalid, "the request body is invalid", []fault.Problem{{Path: "/version", Message: "must be a positive integer"}}))
			return
		}
		version = int(f)
	}
	run, created, err := s.svc.StartRun(r.Context(), orchestrator.StartRun{
		Workflow: req.Workflow, Version: version, Input: req.Input,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Priority: req.Priority,
		Parent: orchestrator.TraceParent(r.Context(), r.Header.Get("Traceparent"), strings.Join(r.Header.Values("Tracestate"), ",")),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/runs/"+run.ID.String())
	writeJSON(w, status, runFrom(run))
}

// pathID reads the {id} path parameter, the id of a what. The validator
// has checked it is a UUID; an unknown one is answered by the service with
// 404.
func pathID(r *http.Request, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.Nil, fault.WithProblems(fault.Malformed, "the "+what+" id is not valid", []fault.Problem{{Path: "path:id", Message: "must be a UUID"}})
	}
	return id, nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	run, err := s.svc.GetRun(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runDetailFrom(run))
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f workflow.RunFilter
	var problems []fault.Problem
	f.Workflow = q.Get("workflow")
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			f.Statuses = append(f.Statuses, workflow.RunStatus(st))
		}
	}
	if v := q.Get("parent"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			problems = append(problems, fault.Problem{Path: "query:parent", Message: "must be a UUID"})
		}
		f.Parent = &id
	}
	for name, dst := range map[string]**time.Time{"created_after": &f.CreatedAfter, "created_before": &f.CreatedBefore} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				problems = append(problems, fault.Problem{Path: "query:" + name, Message: "must be an RFC 3339 timestamp"})
			}
			*dst = &t
		}
	}
	c, err := decodeCursor(r, "runs")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var rc *workflow.Cursor
	if c != nil {
		t, terr := time.Parse(time.RFC3339Nano, c.Time)
		id, ierr := uuid.Parse(c.ID)
		if terr != nil || ierr != nil {
			problems = append(problems, fault.Problem{Path: "query:cursor", Message: "not a cursor of this list"})
		}
		rc = &workflow.Cursor{CreatedAt: t, ID: id}
	}
	if len(problems) > 0 {
		s.writeError(w, r, fault.WithProblems(fault.Malformed, "the query is invalid", problems))
		return
	}
	limit := pageLimit(r)
	runs, err := s.svc.ListRuns(r.Context(), f, rc, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]runSummaryJSON, len(runs))
	for i, run := range runs {
		out[i] = runSummaryJSON{
			ID: run.ID, Workflow: workflowRefJSON{run.Workflow, run.Version}, Status: string(run.Status),
			Error: run.Error, Attempt: run.Attempt, ParentRunID: run.ParentRunID,
			CreatedAt: run.CreatedAt.UTC(), UpdatedAt: run.UpdatedAt.UTC(), StartedAt: utc(run.StartedAt), FinishedAt: utc(run.FinishedAt),
		}
	}
	writeJSON(w, http.StatusOK, page(out, limit, func(run runSummaryJSON) cursor {
		return cursor{List: "runs", Time: run.CreatedAt.Format(time.RFC3339Nano), ID: run.ID.String()}
	}))
}

func (s *Server) deleteRun(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.DeleteRun(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	run, err := s.svc.CancelRun(r.Context(), id, req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runFrom(run))
}

type stepAttemptJSON struct {
	Attempt    int             `json:"attempt"`
	Status     string          `json:"status"`
	Worker     string          `json:"worker,omitempty"`
	HTTPStatus *int            `json:"http_status,omitempty"`
	Error      json.RawMessage `json:"error,omitempty"`
	Logs       json.RawMessage `json:"logs,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	DurationMS *int64          `json:"duration_ms,omitempty"`
}

type stepExecutionJSON struct {
	ID         uuid.UUID         `json:"id"`
	Key        string            `json:"key"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Status     string            `json:"status"`
	Attempt    int               `json:"attempt"`
	Input      json.RawMessage   `json:"input,omitempty"`
	Output     json.RawMessage   `json:"output,omitempty"`
	Error      json.RawMessage   `json:"error,omitempty"`
	Deadline   *time.Time        `json:"deadline,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Attempts   []stepAttemptJSON `json:"attempts"`
}

func (s *Server) listRunSteps(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := decodeCursor(r, "steps:"+id.String())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var sc *workflow.Cursor
	if c != nil {
		t, terr := time.Parse(time.RFC3339Nano, c.Time)
		sid, ierr := uuid.Parse(c.ID)
		if terr != nil || ierr != nil {
			s.writeError(w, r, fault.WithProblems(fault.Malformed, "the cursor is not valid", []fault.Problem{{Path: "query:cursor", Message: "not a cursor of this list"}}))
			return
		}
		sc = &workflow.Cursor{CreatedAt: t, ID: sid}
	}
	limit := pageLimit(r)
	steps, err := s.svc.ListSteps(r.Context(), id, sc, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]stepExecutionJSON, len(steps))
	for i, st := range steps {
		sj := stepExecutionJSON{
			ID: st.ID, Key: st.Key, Name: st.Name, Type: st.Type, Status: st.Status, Attempt: st.Attempt,
			Input: st.Input, Output: st.Output, Error: st.Error, Deadline: utc(st.Deadline),
			CreatedAt: st.CreatedAt.UTC(), StartedAt: utc(st.StartedAt), FinishedAt: utc(st.FinishedAt),
			Attempts: make([]stepAttemptJSON, len(st.Attempts)),
		}
		for j, a := range st.Attempts {
			aj := stepAttemptJSON{
				Attempt: a.Attempt, Status: a.Status, Worker: a.WorkerID, HTTPStatus: a.HTTPStatus,
				Error: a.Error, Logs: a.Logs, StartedAt: a.StartedAt.UTC(), FinishedAt: utc(a.FinishedAt),
			}
			if a.FinishedAt != nil {
				d := a.FinishedAt.Sub(a.StartedAt).Milliseconds()
				aj.DurationMS = &d
			}
			sj.Attempts[j] = aj
		}
		out[i] = sj
	}
	writeJSON(w, http.StatusOK, page(out, limit, func(st stepExecutionJSON) cursor {
		return cursor{List: "steps:" + id.String(), Time: st.CreatedAt.Format(time.RFC3339Nano), ID: st.ID.String()}
	}))
}

type historyEventJSON struct {
	ID      int64           `json:"id"`
	Type    string          `json:"type"`
	Step    string          `json:"step,omitempty"`
	Attempt *int            `json:"attempt,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Time    time.Time       `json:"time"`
}

func (s *Server) listRunHistory(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := decodeCursor(r, "history:"+id.String())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var after int64
	if c != nil {
		after = c.Seq
	}
	limit := pageLimit(r)
	events, err := s.svc.ListHistory(r.Context(), id, after, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]historyEventJSON, len(events))
	for i, e := range events {
		out[i] = historyEventJSON{ID: e.ID, Type: e.Type, Step: e.StepKey, Attempt: e.Attempt, Data: e.Data, Time: e.Time.UTC()}
	}
	writeJSON(w, http.StatusOK, page(out, limit, func(e historyEventJSON) cursor {
		return cursor{List: "history:" + id.String(), Seq: e.ID}
	}))
}
