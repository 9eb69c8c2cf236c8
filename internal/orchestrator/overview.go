package orchestrator

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// CountRunsByStatus counts the runs of each status matching f's filters
// but its statuses, each count stopping at max, so that showing counts
// costs the same with a thousand runs as with millions.
func (s *API) CountRunsByStatus(ctx context.Context, f workflow.RunFilter, max int) (map[workflow.RunStatus]int, error) {
	return s.db.CountRunsByStatus(ctx, f, workflow.RunStatuses, max)
}

// InboxItem is a step waiting for a person, with its run.
type InboxItem struct {
	Run  workflow.Run
	Wait WaitingStep
}

// Inbox lists up to limit steps waiting for a person, those of the oldest
// waiting runs first, each with its question and callback URL.
func (s *API) Inbox(ctx context.Context, limit int) ([]InboxItem, error) {
	steps, err := s.db.StepsWaitingForInput(ctx, limit)
	if err != nil {
		return nil, err
	}
	details := make(map[uuid.UUID]RunDetail)
	out := make([]InboxItem, 0, len(steps))
	for _, st := range steps {
		d, ok := details[st.RunID]
		if !ok {
			if d, err = s.GetRun(ctx, st.RunID); err != nil {
				return nil, err
			}
			details[st.RunID] = d
		}
		for _, w := range d.Waiting {
			if w.Step == st.StepKey && w.Question != nil {
				out = append(out, InboxItem{Run: d.Run, Wait: w})
			}
		}
	}
	return out, nil
}

// EventResumes is a received event and the waits it resolved.
type EventResumes struct {
	workflow.Event
	Resumed []postgres.ResumedWait
}

// RecentEvents lists the limit events received last, newest first, each
// with the waits it resolved.
func (s *API) RecentEvents(ctx context.Context, limit int) ([]EventResumes, error) {
	events, err := s.db.RecentEvents(ctx, limit)
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	waits, err := s.db.WaitsResumedBy(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]EventResumes, len(events))
	for i, e := range events {
		out[i].Event = e
		for _, w := range waits {
			if w.EventID == e.ID {
				out[i].Resumed = append(out[i].Resumed, w)
			}
		}
	}
	return out, nil
}

// WatchRunStatuses calls changed with a run's id whenever its status
// changes (the runs_status_notify trigger's notifications), and with
// uuid.Nil whenever changes may have been missed, until ctx ends. It holds
// one database connection.
func (s *API) WatchRunStatuses(ctx context.Context, changed func(uuid.UUID), logger *slog.Logger) {
	s.db.ListenPayloads(ctx, "durable_runs", func(payload string) {
		id, err := uuid.Parse(payload)
		if err != nil {
			id = uuid.Nil
		}
		changed(id)
	}, logger)
}
