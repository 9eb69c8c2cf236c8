package http

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
)

type callbackStepJSON struct {
	RunID    uuid.UUID       `json:"run_id"`
	Workflow workflowRefJSON `json:"workflow"`
	Step     string          `json:"step"`
	Type     string          `json:"type"`
	Attempt  int             `json:"attempt"`
	Status   string          `json:"status"`
	Deadline *time.Time      `json:"deadline,omitempty"`
	Question *questionJSON   `json:"question,omitempty"`
}

func callbackStepFrom(c orchestrator.CallbackStep) callbackStepJSON {
	return callbackStepJSON{
		RunID: c.RunID, Workflow: workflowRefJSON{c.Workflow, c.Version}, Step: c.Step, Type: c.Type,
		Attempt: c.Attempt, Status: c.Status, Deadline: utc(c.Deadline), Question: questionFrom(c.Question),
	}
}

func (s *Server) describeCallback(w http.ResponseWriter, r *http.Request) {
	if s.page != nil && prefersHTML(r) {
		s.page(w, r, chi.URLParam(r, "token"))
		return
	}
	step, err := s.svc.DescribeCallback(r.Context(), chi.URLParam(r, "token"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, callbackStepFrom(step))
}

func (s *Server) completeCallback(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status  string          `json:"status"`
		Output  json.RawMessage `json:"output"`
		Context json.RawMessage `json:"context"`
		Logs    json.RawMessage `json:"logs"`
		Error   json.RawMessage `json:"error"`
		Retry   bool            `json:"retry"`
		Value   json.RawMessage `json:"value"`
		By      string          `json:"by"`
		Comment string          `json:"comment"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	step, err := s.svc.CompleteCallback(r.Context(), chi.URLParam(r, "token"), orchestrator.Callback{
		Status: req.Status, Output: req.Output, Context: req.Context, Logs: req.Logs, Error: req.Error, Retry: req.Retry,
		Input: orchestrator.Input{Value: req.Value, By: req.By, Comment: req.Comment},
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, callbackStepFrom(step))
}

func (s *Server) giveInput(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Value   json.RawMessage `json:"value"`
		By      string          `json:"by"`
		Comment string          `json:"comment"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	stepKey := chi.URLParam(r, "step")
	if !utf8.ValidString(stepKey) || strings.ContainsRune(stepKey, 0) {
		s.writeError(w, r, fault.WithProblems(fault.Malformed, "the step is not valid", []fault.Problem{{Path: "path:step", Message: "must be valid UTF-8 text"}}))
		return
	}
	step, err := s.svc.GiveInput(r.Context(), id, stepKey, orchestrator.Input{Value: req.Value, By: req.By, Comment: req.Comment})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, callbackStepFrom(step))
}

// prefersHTML reports whether the request's Accept header ranks text/html
// above application/json: a browser opening a callback URL, not a step
// endpoint or a script (which send no Accept, or */*, and get JSON).
func prefersHTML(r *http.Request) bool {
	htmlQ, jsonQ := -1.0, -1.0
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		media, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(media)) {
		case "text/html":
			htmlQ = max(htmlQ, q)
		case "application/json", "application/problem+json":
			jsonQ = max(jsonQ, q)
		}
	}
	return htmlQ > 0 && htmlQ > jsonQ
}
