// Package http serves Durable's REST API: chi routes, request validation
// against api/openapi.yaml, authentication, and the translation of service
// results and errors into HTTP answers.
package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/durablehq/durable/internal/metrics"
	"github.com/durablehq/durable/internal/orchestrator"
)

// Config is what a [Server] needs.
type Config struct {
	API *orchestrator.API
	// Spec is the loaded OpenAPI document every request is validated against.
	Spec *openapi3.T
	// Ready reports whether the process can serve requests (for /readyz).
	// Its error message is shown to the caller, so it must hold no secrets.
	Ready func(context.Context) error
	// APIKeyHashes are the SHA-256 hashes of the accepted bearer keys. With
	// none, the API is open (development mode).
	APIKeyHashes [][sha256.Size]byte
	Logger       *slog.Logger
	// Metrics are served at /metrics and count the requests served; nil:
	// the server's own.
	Metrics *metrics.Metrics
	// CallbackPage, when set, answers a callback URL opened in a browser
	// (GET with Accept: text/html) with a page of its own: the dashboard's
	// form for the question.
	CallbackPage func(w http.ResponseWriter, r *http.Request, token string)
}

// Server is the HTTP handler of the API.
type Server struct {
	svc     *orchestrator.API
	ready   func(context.Context) error
	keys    [][sha256.Size]byte
	logger  *slog.Logger
	metrics *metrics.Metrics
	handler http.Handler
	page    func(w http.ResponseWriter, r *http.Request, token string)
}

// bodyLimitDefault bounds request bodies of endpoints with no larger need.
const bodyLimitDefault = 64 << 10

// NewServer returns the API's handler.
func NewServer(cfg Config) *Server {
	s := &Server{svc: cfg.API, ready: cfg.Ready, keys: cfg.APIKeyHashes, logger: cfg.Logger, metrics: cfg.Metrics, page: cfg.CallbackPage}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	validate := newValidator(cfg.Spec, s)
	limits := cfg.API.Limits()

	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.observeRequests, s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such endpoint", nil)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		// RFC 9110 requires a 405 to list the methods the resource allows.
		w.Header().Set("Allow", strings.Join(s.allowedMethods(r), ", "))
		writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "the endpoint does not support "+r.Method, nil)
	})
	r.Get("/healthz", s.health)
	r.Get("/readyz", s.readiness)
	// Metrics hold no run data and their labels are bounded, and
	// Prometheus scrapes without credentials: like the health checks,
	// they are open (see docs/observability.md).
	r.Method(http.MethodGet, "/metrics", s.metrics.Handler())

	r.Route("/v1", func(r chi.Router) {
		// A callback's token is its credential: step endpoints and people
		// holding the URL have no API key.
		r.With(readBody(0), validate).Get("/callbacks/{token}", s.describeCallback)
		r.With(readBody(limits.MaxOutputBytes), validate).Post("/callbacks/{token}", s.completeCallback)

		r = r.With(s.authenticate)
		api := func(method, pattern string, bodyLimit int, h http.HandlerFunc) {
			r.With(readBody(bodyLimit), validate).Method(method, pattern, h)
		}
		api(http.MethodPost, "/workflows", limits.Definition.MaxBytes, s.createWorkflow)
		api(http.MethodGet, "/workflows", 0, s.listWorkflows)
		api(http.MethodGet, "/workflows/{name}", 0, s.getWorkflow)
		api(http.MethodGet, "/workflows/{name}/versions", 0, s.listWorkflowVersions)
		api(http.MethodGet, "/workflows/{name}/versions/{version}", 0, s.getWorkflowVersion)
		api(http.MethodGet, "/workflows/{name}/graph", 0, s.getWorkflowGraph)
		api(http.MethodPost, "/workflows/{name}/archive", 0, s.archiveWorkflow)
		api(http.MethodPost, "/workflows/{name}/unarchive", 0, s.unarchiveWorkflow)

		// A start request is its input plus a little: the input's own limit
		// is checked separately, so that exceeding it names the field.
		api(http.MethodPost, "/runs", limits.MaxInputBytes+bodyLimitDefault, s.startRun)
		api(http.MethodGet, "/runs", 0, s.listRuns)
		api(http.MethodGet, "/runs/{id}", 0, s.getRun)
		api(http.MethodDelete, "/runs/{id}", 0, s.deleteRun)
		api(http.MethodPost, "/runs/{id}/cancel", bodyLimitDefault, s.cancelRun)
		// A retry's edits are an input and a context, each with its own
		// limit, checked separately so that exceeding one names it.
		api(http.MethodPost, "/runs/{id}/retry", limits.MaxInputBytes+limits.MaxContextBytes+bodyLimitDefault, s.retryRun)
		api(http.MethodPost, "/runs/bulk/cancel", bodyLimitDefault, s.bulkCancel)
		api(http.MethodPost, "/runs/bulk/retry", bodyLimitDefault, s.bulkRetry)
		api(http.MethodGet, "/operations", 0, s.listOperations)
		api(http.MethodGet, "/operations/{id}", 0, s.getOperation)
		api(http.MethodPost, "/operations/{id}/cancel", 0, s.cancelOperation)
		api(http.MethodGet, "/runs/{id}/steps", 0, s.listRunSteps)
		api(http.MethodGet, "/runs/{id}/history", 0, s.listRunHistory)
		api(http.MethodGet, "/runs/{id}/graph", 0, s.getRunGraph)
		api(http.MethodPost, "/runs/{id}/inputs/{step}", limits.MaxOutputBytes, s.giveInput)
		api(http.MethodPost, "/events", limits.MaxOutputBytes+bodyLimitDefault, s.publishEvent)

		api(http.MethodPost, "/schedules", limits.MaxInputBytes+bodyLimitDefault, s.createSchedule)
		api(http.MethodGet, "/schedules", 0, s.listSchedules)
		api(http.MethodGet, "/schedules/preview", 0, s.previewSchedule)
		api(http.MethodGet, "/schedules/{id}", 0, s.getSchedule)
		api(http.MethodPatch, "/schedules/{id}", limits.MaxInputBytes+bodyLimitDefault, s.updateSchedule)
		api(http.MethodDelete, "/schedules/{id}", 0, s.deleteSchedule)
		api(http.MethodPost, "/schedules/{id}/pause", 0, s.pauseSchedule)
		api(http.MethodPost, "/schedules/{id}/resume", 0, s.resumeSchedule)
		api(http.MethodPost, "/schedules/{id}/trigger", 0, s.triggerSchedule)
	})
	s.handler = r
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Routes lists every method and pattern the server routes, for the test
// that holds the routes and the OpenAPI document together.
func (s *Server) Routes() ([]string, error) {
	var out []string
	err := chi.Walk(s.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+strings.TrimSuffix(route, "/"))
		return nil
	})
	return out, err
}

// allowedMethods lists the methods routed for r's path.
func (s *Server) allowedMethods(r *http.Request) []string {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if s.handler.(chi.Routes).Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}

// authenticate requires a valid bearer key when keys are configured.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.keys) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		// The scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="durable"`)
			writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "an API key is required: Authorization: Bearer <key>", nil)
			return
		}
		sum := sha256.Sum256([]byte(token))
		match := 0
		for _, k := range s.keys {
			match |= subtle.ConstantTimeCompare(sum[:], k[:])
		}
		if match != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="durable", error="invalid_token"`)
			writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "the API key is not valid", nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, orchestrator.KeyID(sum))))
	})
}

// callerKey is the context key of the id of the API key a request came
// with.
type callerKey struct{}

// caller is who sent a request: its API key's id, or "anonymous" when the
// API runs without keys.
func caller(r *http.Request) string {
	if id, ok := r.Context().Value(callerKey{}).(string); ok {
		return id
	}
	return orchestrator.Anonymous
}

// recoverer turns a panic in a handler into a logged 500 instead of a
// dropped connection.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", loggablePath(r), "panic", v)
				writeProblem(w, r, http.StatusInternalServerError, "internal", "an internal error occurred; it has been logged", nil)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// observeRequests counts every request by the route that served it, logs
// it at debug level, and failures at warn.
func (s *Server) observeRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := s.metrics.RequestStarted()
		defer done()
		began := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		s.metrics.RequestServed(r.Method, chi.RouteContext(r.Context()).RoutePattern(), ww.Status(), time.Since(began))
		level := slog.LevelDebug
		if ww.Status() >= 500 {
			level = slog.LevelWarn
		}
		s.logger.Log(r.Context(), level, "http request", "method", r.Method, "path", loggablePath(r),
			"status", ww.Status(), "bytes", ww.BytesWritten(), "request_id", middleware.GetReqID(r.Context()))
	})
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(r.Context()); err != nil {
		s.logger.WarnContext(r.Context(), "not ready", "error", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "not ready: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
