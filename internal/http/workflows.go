package http

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/workflow"
)

type workflowVersionJSON struct {
	Name        string          `json:"name"`
	Version     int             `json:"version"`
	Definition  json.RawMessage `json:"definition,omitempty"`
	ContentHash string          `json:"content_hash"`
	CreatedAt   time.Time       `json:"created_at"`
}

func workflowVersionFrom(v workflow.WorkflowVersion) workflowVersionJSON {
	return workflowVersionJSON{
		Name: v.Name, Version: v.Version, Definition: v.Definition,
		ContentHash: "sha256:" + hex.EncodeToString(v.Hash), CreatedAt: v.CreatedAt.UTC(),
	}
}

type workflowSummaryJSON struct {
	Name          string    `json:"name"`
	LatestVersion int       `json:"latest_version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// page trims a list fetched with limit+1 items to limit, and returns the
// cursor of its last item when there was more.
func page[T any](items []T, limit int, cursorOf func(T) cursor) listJSON[T] {
	out := listJSON[T]{Items: items}
	if len(items) > limit {
		out.Items = items[:limit]
		out.NextCursor = encodeCursor(cursorOf(items[limit-1]))
	}
	return out
}

func (s *Server) createWorkflow(w http.ResponseWriter, r *http.Request) {
	v, created, err := s.svc.CreateWorkflow(r.Context(), requestBody(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/workflows/"+v.Name+"/versions/"+strconv.Itoa(v.Version))
	}
	writeJSON(w, status, workflowVersionFrom(v))
}

func (s *Server) listWorkflows(w http.ResponseWriter, r *http.Request) {
	listByName(s, w, r, "workflows", s.svc.ListWorkflows, func(wf workflow.WorkflowSummary) workflowSummaryJSON {
		return workflowSummaryJSON{Name: wf.Name, LatestVersion: wf.LatestVersion, CreatedAt: wf.CreatedAt.UTC(), UpdatedAt: wf.UpdatedAt.UTC()}
	}, func(wf workflowSummaryJSON) string { return wf.Name })
}

func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	v, err := s.svc.GetWorkflow(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, workflowVersionFrom(v))
}

func (s *Server) listWorkflowVersions(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	c, err := decodeCursor(r, "versions:"+name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	before := 0
	if c != nil {
		before = int(c.Seq)
	}
	limit := pageLimit(r)
	items, err := s.svc.ListWorkflowVersions(r.Context(), name, before, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]workflowVersionJSON, len(items))
	for i, v := range items {
		out[i] = workflowVersionFrom(v)
	}
	writeJSON(w, http.StatusOK, page(out, limit, func(v workflowVersionJSON) cursor {
		return cursor{List: "versions:" + name, Seq: int64(v.Version)}
	}))
}

// parseVersion reads a workflow version number; at names the parameter it
// came from (path:version, query:version) for the problem.
func parseVersion(raw, at string) (int, error) {
	version, err := strconv.Atoi(raw)
	if err != nil || version < 1 {
		return 0, fault.WithProblems(fault.Malformed, "the version is not valid", []fault.Problem{{Path: at, Message: "must be a positive integer"}})
	}
	return version, nil
}

func (s *Server) getWorkflowVersion(w http.ResponseWriter, r *http.Request) {
	version, err := parseVersion(chi.URLParam(r, "version"), "path:version")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.svc.GetWorkflowVersion(r.Context(), chi.URLParam(r, "name"), version)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, workflowVersionFrom(v))
}
