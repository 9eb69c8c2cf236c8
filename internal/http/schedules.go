package http

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/workflow"
)

type scheduleJSON struct {
	ID            uuid.UUID       `json:"id"`
	Name          string          `json:"name"`
	Workflow      string          `json:"workflow"`
	Version       int             `json:"version,omitempty"`
	Cron          string          `json:"cron"`
	Timezone      string          `json:"timezone"`
	Input         json.RawMessage `json:"input"`
	OverlapPolicy string          `json:"overlap_policy"`
	CatchupWindow string          `json:"catchup_window"`
	Paused        bool            `json:"paused"`
	Source        string          `json:"source"`
	NextFireAt    *time.Time      `json:"next_fire_at,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

type scheduleFireJSON struct {
	FireTime time.Time  `json:"fire_time"`
	RunID    *uuid.UUID `json:"run_id,omitempty"`
	Outcome  string     `json:"outcome"`
	Manual   bool       `json:"manual"`
	FiredAt  time.Time  `json:"fired_at"`
}

type scheduleDetailJSON struct {
	scheduleJSON
	Fires         []scheduleFireJSON `json:"fires"`
	NextFireTimes []time.Time        `json:"next_fire_times"`
}

func scheduleFrom(s workflow.Schedule) scheduleJSON {
	out := scheduleJSON{
		ID: s.ID, Name: s.Name, Workflow: s.Workflow, Version: s.Version, Cron: s.Cron, Timezone: s.Timezone,
		Input: s.Input, OverlapPolicy: s.OverlapPolicy, CatchupWindow: s.CatchupWindow.String(), Paused: s.Paused,
		Source: s.Source, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
	if !s.Paused {
		out.NextFireAt = utc(s.NextFireAt)
	}
	return out
}

func fireFrom(f workflow.ScheduleFire) scheduleFireJSON {
	return scheduleFireJSON{FireTime: f.FireTime.UTC(), RunID: f.RunID, Outcome: f.Outcome, Manual: f.Manual, FiredAt: f.FiredAt.UTC()}
}

// scheduleRequest is the body of a schedule's creation or change.
type scheduleRequest struct {
	Name          string          `json:"name"`
	Workflow      *string         `json:"workflow"`
	Version       *int            `json:"version"`
	Cron          *string         `json:"cron"`
	Timezone      *string         `json:"timezone"`
	Input         json.RawMessage `json:"input"`
	OverlapPolicy *string         `json:"overlap_policy"`
	CatchupWindow *string         `json:"catchup_window"`
	Paused        bool            `json:"paused"`
}

// catchupWindow parses the catch-up window, a Go duration of zero or more.
func (r scheduleRequest) catchupWindow() (*time.Duration, error) {
	if r.CatchupWindow == nil {
		return nil, nil
	}
	d, err := time.ParseDuration(*r.CatchupWindow)
	if err != nil || d < 0 {
		return nil, fault.WithProblems(fault.Invalid, "the catch-up window is invalid", []fault.Problem{{Path: "/catchup_window", Message: `must be a duration such as "10m" or "0s"`}})
	}
	return &d, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	var req scheduleRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	window, err := req.catchupWindow()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sch, err := s.svc.CreateSchedule(r.Context(), orchestrator.ScheduleSpec{
		Name: req.Name, Workflow: deref(req.Workflow), Version: deref(req.Version), Cron: deref(req.Cron),
		Timezone: deref(req.Timezone), Input: req.Input, OverlapPolicy: deref(req.OverlapPolicy),
		CatchupWindow: deref(window), Paused: req.Paused,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/schedules/"+sch.ID.String())
	writeJSON(w, http.StatusCreated, scheduleFrom(sch))
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	listByName(s, w, r, "schedules", s.svc.ListSchedules, scheduleFrom, func(sch scheduleJSON) string { return sch.Name })
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "schedule")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.svc.GetSchedule(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := scheduleDetailJSON{scheduleJSON: scheduleFrom(d.Schedule), Fires: make([]scheduleFireJSON, len(d.Fires)), NextFireTimes: make([]time.Time, len(d.Next))}
	for i, f := range d.Fires {
		out.Fires[i] = fireFrom(f)
	}
	for i, t := range d.Next {
		out.NextFireTimes[i] = t.UTC()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "schedule")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req scheduleRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	window, err := req.catchupWindow()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sch, err := s.svc.UpdateSchedule(r.Context(), id, orchestrator.SchedulePatch{
		Workflow: req.Workflow, Version: req.Version, Cron: req.Cron, Timezone: req.Timezone, Input: req.Input,
		OverlapPolicy: req.OverlapPolicy, CatchupWindow: window,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, scheduleFrom(sch))
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "schedule")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.DeleteSchedule(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pauseSchedule(w http.ResponseWriter, r *http.Request)  { s.setPaused(w, r, true) }
func (s *Server) resumeSchedule(w http.ResponseWriter, r *http.Request) { s.setPaused(w, r, false) }

func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	id, err := pathID(r, "schedule")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sch, err := s.svc.SetSchedulePaused(r.Context(), id, paused)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, scheduleFrom(sch))
}

func (s *Server) triggerSchedule(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "schedule")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fire, err := s.svc.TriggerSchedule(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, fireFrom(fire))
}

func (s *Server) previewSchedule(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from := time.Now()
	if v := q.Get("from"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.writeError(w, r, fault.WithProblems(fault.Malformed, "the query is invalid", []fault.Problem{{Path: "query:from", Message: "must be an RFC 3339 timestamp"}}))
			return
		}
		from = t
	}
	count := 10
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, fault.WithProblems(fault.Malformed, "the query is invalid", []fault.Problem{{Path: "query:count", Message: "must be 1 to 1000"}}))
			return
		}
		count = n
	}
	times, err := s.svc.PreviewSchedule(q.Get("cron"), q.Get("timezone"), from, count)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Items []time.Time `json:"items"`
	}{Items: make([]time.Time, len(times))}
	for i, t := range times {
		out.Items[i] = t.UTC()
	}
	writeJSON(w, http.StatusOK, out)
}
