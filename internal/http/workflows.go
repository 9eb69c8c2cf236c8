package http

import (
	"context"
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
	// Archived is the workflow's, shown with each of its versions but in
	// the list of versions.
	Archived   *bool      `json:"archived,omitempty"`
	ArchivedAt *time.Time `json:"archived_at,omitempty"`
}

func workflowVersionFrom(v workflow.WorkflowVersion) workflowVersionJSON {
	archived := v.ArchivedAt != nil
	return workflowVersionJSON{
		Name: v.Name, Version: v.Version, Definition: v.Definition,
		ContentHash: "sha256:" + hex.EncodeToString(v.Hash), CreatedAt: v.CreatedAt.UTC(),
		Archived: &archived, ArchivedAt: utc(v.ArchivedAt),
	}
}

type workflowSummaryJSON struct {
	Name          string     `json:"name"`
	LatestVersion int        `json:"latest_version"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	Archived      bool       `json:"archived"`
	ArchivedAt    *time.Time `json:"archived_at,omitempty"`
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

// listWorkflows lists the workflows that are not archived, or with
// ?archived=true those that are; a cursor belongs to one of the two lists.
func (s *Server) listWorkflows(w http.ResponseWriter, r *http.Request) {
	archived := r.URL.Query().Get("archived") == "true"
	list := "workflows"
	if archived {
		list = "workflows:archived"
	}
	fetch := func(ctx context.Context, after string, limit int) ([]workflow.WorkflowSummary, error) {
		return s.svc.ListWorkflows(ctx, archived, after, limit)
	}
	listByName(s, w, r, list, fetch, func(wf workflow.WorkflowSummary) workflowSummaryJSON {
		return workflowSummaryJSON{
			Name: wf.Name, LatestVersion: wf.LatestVersion, CreatedAt: wf.CreatedAt.UTC(), UpdatedAt: wf.UpdatedAt.UTC(),
			Archived: wf.ArchivedAt != nil, ArchivedAt: utc(wf.ArchivedAt),
		}
	}, func(wf workflowSummaryJSON) string { return wf.Name })
}

func (s *Server) archiveWorkflow(w http.ResponseWriter, r *http.Request) {
	s.setArchived(w, r, true)
}

func (s *Server) unarchiveWorkflow(w http.ResponseWriter, r *http.Request) {
	s.setArchived(w, r, false)
}

// setArchived archives or unarchives a workflow and answers its latest
// version.
func (s *Server) setArchived(w http.ResponseWriter, r *http.Request, archived bool) {
	v, err := s.svc.ArchiveWorkflow(r.Context(), chi.URLParam(r, "name"), archived)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, workflowVersionFrom(v))
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
		out[i].Archived = nil // the workflow's, not the version's: see GET /v1/workflows/{name}
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
