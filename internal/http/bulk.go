package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/workflow"
)

func (s *Server) retryRun(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Input    json.RawMessage `json:"input"`
		Context  json.RawMessage `json:"context"`
		FromStep string          `json:"from_step"`
		Reason   string          `json:"reason"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	limits := s.svc.Limits()
	var problems []fault.Problem
	if len(req.Input) > limits.MaxInputBytes {
		problems = append(problems, fault.Problem{Path: "/input", Message: "the input patch is larger than the input limit"})
	}
	if len(req.Context) > limits.MaxContextBytes {
		problems = append(problems, fault.Problem{Path: "/context", Message: "the context patch is larger than the context limit"})
	}
	if len(problems) > 0 {
		s.writeError(w, r, fault.WithProblems(fault.TooLarge, "the retry's edits are too large", problems))
		return
	}
	run, err := s.svc.RetryRun(r.Context(), id, orchestrator.RetryRun{
		Input: req.Input, Context: req.Context, FromStep: req.FromStep, Reason: req.Reason, By: caller(r),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runFrom(run))
}

type runFilterJSON struct {
	Workflow string               `json:"workflow,omitempty"`
	Status   []workflow.RunStatus `json:"status,omitempty"`
	// Parent is parsed by filter: the validator checks no uuid format in
	// bodies, and a bad one must name its path.
	Parent        *string    `json:"parent,omitempty"`
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
}

func (f runFilterJSON) filter() (workflow.RunFilter, error) {
	out := workflow.RunFilter{Workflow: f.Workflow, Statuses: f.Status, CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore}
	if f.Parent != nil {
		id, err := uuid.Parse(*f.Parent)
		if err != nil {
			return out, fault.WithProblems(fault.Invalid, "the request body is invalid", []fault.Problem{{Path: "/filter/parent", Message: "must be a UUID"}})
		}
		out.Parent = &id
	}
	return out, nil
}

func filterJSONOf(f workflow.RunFilter) runFilterJSON {
	out := runFilterJSON{Workflow: f.Workflow, Status: f.Statuses, CreatedAfter: utc(f.CreatedAfter), CreatedBefore: utc(f.CreatedBefore)}
	if f.Parent != nil {
		p := f.Parent.String()
		out.Parent = &p
	}
	return out
}

type operationJSON struct {
	ID         uuid.UUID                   `json:"id"`
	Kind       string                      `json:"kind"`
	State      string                      `json:"state"`
	Filter     runFilterJSON               `json:"filter"`
	Reason     string                      `json:"reason,omitempty"`
	Matched    int64                       `json:"matched"`
	Done       int64                       `json:"done"`
	Skipped    int64                       `json:"skipped"`
	Failed     int64                       `json:"failed"`
	Failures   []workflow.OperationFailure `json:"failures"`
	CreatedAt  time.Time                   `json:"created_at"`
	UpdatedAt  time.Time                   `json:"updated_at"`
	FinishedAt *time.Time                  `json:"finished_at,omitempty"`
}

func operationFrom(op workflow.Operation) operationJSON {
	failures := op.Failures
	if failures == nil {
		failures = []workflow.OperationFailure{}
	}
	return operationJSON{
		ID: op.ID, Kind: op.Kind, State: op.State, Filter: filterJSONOf(op.Filter), Reason: op.Reason,
		Matched: op.Matched, Done: op.Done, Skipped: op.Skipped, Failed: op.Failed, Failures: failures,
		CreatedAt: op.CreatedAt.UTC(), UpdatedAt: op.UpdatedAt.UTC(), FinishedAt: utc(op.FinishedAt),
	}
}

func (s *Server) bulkCancel(w http.ResponseWriter, r *http.Request) {
	s.bulk(w, r, workflow.OperationCancel)
}

func (s *Server) bulkRetry(w http.ResponseWriter, r *http.Request) {
	s.bulk(w, r, workflow.OperationRetry)
}

// bulk answers a dry run's count, or creates the operation.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, kind string) {
	var req struct {
		Filter runFilterJSON `json:"filter"`
		DryRun bool          `json:"dry_run"`
		Reason string        `json:"reason"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	filter, err := req.Filter.filter()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := orchestrator.Bulk{Kind: kind, Filter: filter, Reason: req.Reason, By: caller(r)}
	if req.DryRun {
		n, err := s.svc.CountBulk(r.Context(), b)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"dry_run": true, "matched": n})
		return
	}
	op, err := s.svc.CreateOperation(r.Context(), b)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/operations/"+op.ID.String())
	writeJSON(w, http.StatusAccepted, operationFrom(op))
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "operation")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	op, err := s.svc.GetOperation(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, operationFrom(op))
}

func (s *Server) cancelOperation(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "operation")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	op, err := s.svc.CancelOperation(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, operationFrom(op))
}

func (s *Server) listOperations(w http.ResponseWriter, r *http.Request) {
	c, err := decodeCursor(r, "operations")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var oc *workflow.Cursor
	if c != nil {
		t, terr := time.Parse(time.RFC3339Nano, c.Time)
		id, ierr := uuid.Parse(c.ID)
		if terr != nil || ierr != nil {
			s.writeError(w, r, fault.WithProblems(fault.Malformed, "the cursor is not valid", []fault.Problem{{Path: "query:cursor", Message: "not a cursor of this list"}}))
			return
		}
		oc = &workflow.Cursor{CreatedAt: t, ID: id}
	}
	limit := pageLimit(r)
	ops, err := s.svc.ListOperations(r.Context(), oc, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]operationJSON, len(ops))
	for i, op := range ops {
		out[i] = operationFrom(op)
	}
	writeJSON(w, http.StatusOK, page(out, limit, func(op operationJSON) cursor {
		return cursor{List: "operations", Time: op.CreatedAt.Format(time.RFC3339Nano), ID: op.ID.String()}
	}))
}
