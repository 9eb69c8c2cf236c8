package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/workflow"
)

type publishedEventJSON struct {
	ID         uuid.UUID `json:"id"`
	Name       string    `json:"name"`
	Key        string    `json:"key"`
	ReceivedAt time.Time `json:"received_at"`
	Duplicate  bool      `json:"duplicate"`
	Resumed    int       `json:"resumed"`
}

func (s *Server) publishEvent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name    string          `json:"name"`
		Key     string          `json:"key"`
		Payload json.RawMessage `json:"payload"`
		ID      string          `json:"id"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	published, err := s.svc.PublishEvent(r.Context(), workflow.Event{Name: req.Name, Key: req.Key, Payload: req.Payload, DedupID: req.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if published.Duplicate {
		status = http.StatusOK
	}
	e := published.Event
	writeJSON(w, status, publishedEventJSON{
		ID: e.ID, Name: e.Name, Key: e.Key, ReceivedAt: e.ReceivedAt.UTC(), Duplicate: published.Duplicate, Resumed: published.Resumed,
	})
}
