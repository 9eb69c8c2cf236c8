package http

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/durablehq/durable/internal/fault"
)

// problem is an RFC 9457 problem document.
type problem struct {
	Type     string          `json:"type"`
	Title    string          `json:"title"`
	Status   int             `json:"status"`
	Detail   string          `json:"detail,omitempty"`
	Instance string          `json:"instance,omitempty"`
	Errors   []fault.Problem `json:"errors,omitempty"`
}

// problemType names each kind of problem with a stable URI, so clients can
// tell them apart without parsing messages.
func problemType(slug string) string { return "urn:durable:problem:" + slug }

// loggablePath is the request's path fit for logs and problem documents: a
// callback URL's token is a credential, so its path is shown as its route.
func loggablePath(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/v1/callbacks/") {
		return "/v1/callbacks/{token}"
	}
	return r.URL.Path
}

// writeProblem answers with a problem document.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string, problems []fault.Problem) {
	p := problem{
		Type:     problemType(slug),
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: loggablePath(r),
		Errors:   problems,
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// kindStatus maps each [fault.Kind] to its HTTP status and problem slug:
// the one place where service errors become HTTP answers.
var kindStatus = map[fault.Kind]struct {
	status int
	slug   string
}{
	fault.Malformed:    {http.StatusBadRequest, "malformed"},
	fault.Invalid:      {http.StatusUnprocessableEntity, "invalid"},
	fault.NotFound:     {http.StatusNotFound, "not-found"},
	fault.Conflict:     {http.StatusConflict, "conflict"},
	fault.TooLarge:     {http.StatusRequestEntityTooLarge, "too-large"},
	fault.Gone:         {http.StatusGone, "gone"},
	fault.Unauthorized: {http.StatusUnauthorized, "unauthorized"},
	fault.Unavailable:  {http.StatusServiceUnavailable, "database-unavailable"},
}

// unavailableRetryAfter is the Retry-After, in seconds, of a 503 answered
// while the database cannot be reached: long enough for a restart or a
// failover, short enough that clients retrying do not lose much time.
const unavailableRetryAfter = "5"

// writeError answers with the problem err stands for. Internal errors are
// logged with their detail and shown to the client only as an opaque
// failure.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fault.Error
	if errors.As(err, &fe) {
		if m, ok := kindStatus[fe.Kind]; ok {
			if fe.Kind == fault.Unavailable {
				s.logger.WarnContext(r.Context(), "request failed: the database is unavailable", "method", r.Method, "path", loggablePath(r), "error", err)
				w.Header().Set("Retry-After", unavailableRetryAfter)
			}
			writeProblem(w, r, m.status, m.slug, fe.Message, fe.Problems)
			return
		}
	}
	if ctxErr := r.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		// The client went away; nobody reads the answer.
		writeProblem(w, r, http.StatusServiceUnavailable, "cancelled", "the request was cancelled", nil)
		return
	}
	s.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", loggablePath(r), "error", err)
	writeProblem(w, r, http.StatusInternalServerError, "internal", "an internal error occurred; it has been logged", nil)
}

// writeJSON answers with v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// An encoding error here means the client went away mid-answer.
	_ = enc.Encode(v)
}
