package dashboard

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/graph"
	"github.com/durablehq/durable/internal/workflow"
)

type workflowsData struct {
	Archived  bool
	Workflows []workflow.WorkflowSummary
}

func (d *Dashboard) workflowsPage(w http.ResponseWriter, r *http.Request) {
	archived := r.URL.Query().Get("archived") == "true"
	wfs, err := d.api.ListWorkflows(r.Context(), archived, r.URL.Query().Get("after"), 200)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "workflows", "Workflows", workflowsData{Archived: archived, Workflows: wfs})
}

type workflowData struct {
	Version  workflow.WorkflowVersion
	Versions []workflow.WorkflowVersion
	Graph    string
	Latest   bool
}

func (d *Dashboard) workflowPage(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	var data workflowData
	var err error
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			d.renderError(w, r, http.StatusBadRequest, "version: must be a positive number.")
			return
		}
	}
	if version == 0 {
		data.Version, err = d.api.GetWorkflow(r.Context(), name)
	} else {
		data.Version, err = d.api.GetWorkflowVersion(r.Context(), name, version)
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if data.Versions, err = d.api.ListWorkflowVersions(r.Context(), name, 0, 100); err != nil {
		d.fail(w, r, err)
		return
	}
	data.Latest = len(data.Versions) > 0 && data.Versions[0].Version == data.Version.Version
	g, err := d.api.WorkflowGraph(r.Context(), name, data.Version.Version)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	js, err := graph.Cytoscape(g)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data.Graph = string(js)
	d.render(w, r, http.StatusOK, "workflow", "Workflow "+name, data)
}

func (d *Dashboard) archiveWorkflow(archived bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if _, err := d.api.ArchiveWorkflow(r.Context(), name, archived); err != nil {
			d.fail(w, r, err)
			return
		}
		back(w, r, "/workflows/"+name)
	}
}

func (d *Dashboard) schedulesPage(w http.ResponseWriter, r *http.Request) {
	schedules, err := d.api.ListSchedules(r.Context(), "", 200)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "schedules", "Schedules", schedules)
}

func scheduleID(r *http.Request) (uuid.UUID, bool) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	return id, err == nil
}

func (d *Dashboard) schedulePage(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A schedule's id is a UUID.")
		return
	}
	detail, err := d.api.GetSchedule(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "schedule", "Schedule "+detail.Name, detail)
}

func (d *Dashboard) setSchedulePaused(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := scheduleID(r)
		if !ok {
			d.renderError(w, r, http.StatusNotFound, "A schedule's id is a UUID.")
			return
		}
		if _, err := d.api.SetSchedulePaused(r.Context(), id, paused); err != nil {
			d.fail(w, r, err)
			return
		}
		back(w, r, "/schedules/"+id.String())
	}
}

func (d *Dashboard) triggerSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A schedule's id is a UUID.")
		return
	}
	if _, err := d.api.TriggerSchedule(r.Context(), id); err != nil {
		d.fail(w, r, err)
		return
	}
	back(w, r, "/schedules/"+id.String())
}

func (d *Dashboard) eventsPage(w http.ResponseWriter, r *http.Request) {
	events, err := d.api.RecentEvents(r.Context(), 100)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "events", "Events", events)
}
