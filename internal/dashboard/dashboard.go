// Package dashboard serves Durable's web dashboard at /: server-rendered
// html/template pages with htmx, kept live by Server-Sent Events fed from
// PostgreSQL's LISTEN/NOTIFY. It calls the same use cases
// ([orchestrator.API]) as the REST API's handlers, in-process, so a page
// and the API can never disagree; it adds no rule of its own beyond the
// rendering. Everything it sends to a browser — templates, scripts,
// styles and the vendored htmx and Cytoscape.js — is embedded: no build
// step, no CDN, and a Content-Security-Policy that allows scripts and
// styles from the dashboard's own origin only.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what a [Dashboard] needs.
type Config struct {
	API *orchestrator.API
	// APIKeyHashes are the SHA-256 hashes of the accepted API keys, the
	// same as the REST API's; with none, the dashboard is open
	// (development mode).
	APIKeyHashes [][sha256.Size]byte
	// SessionKey signs session cookies and CSRF tokens; every API process
	// of a deployment must have the same (cmd/api derives it from the
	// signing secret).
	SessionKey []byte
	Logger     *slog.Logger
}

// Dashboard is the dashboard's HTTP handler.
type Dashboard struct {
	api      *orchestrator.API
	sessions *sessions
	logger   *slog.Logger
	pages    map[string]*template.Template
	hub      *hub
	handler  http.Handler
	// closing ends the live streams: a server shutting down waits for its
	// connections, and a stream would keep its own open.
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns the dashboard. Its pages are live once [Dashboard.Listen]
// runs.
func New(cfg Config) (*Dashboard, error) {
	if len(cfg.SessionKey) < 32 {
		return nil, errors.New("dashboard: the session key must have at least 32 bytes")
	}
	d := &Dashboard{
		api:      cfg.API,
		sessions: &sessions{key: cfg.SessionKey, keys: cfg.APIKeyHashes, now: time.Now},
		logger:   cfg.Logger,
		hub:      newHub(),
		closing:  make(chan struct{}),
	}
	var err error
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}

	r := chi.NewRouter()
	r.Use(securityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		d.renderError(w, r, http.StatusNotFound, "There is no such page.")
	})
	r.Handle("/static/*", http.StripPrefix("/static/", staticFiles(static)))
	r.Get("/login", d.loginPage)
	r.Post("/login", d.login)
	// A callback URL is its own credential: the page that answers it needs
	// no session, like POST /v1/callbacks/{token}.
	r.Get("/callbacks/{token}", d.callbackPage)
	r.Post("/callbacks/{token}", d.answerCallback)

	r.Group(func(r chi.Router) {
		r.Use(d.authenticate)
		r.Post("/logout", d.logout)
		r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/runs", http.StatusSeeOther) })
		r.Get("/workflows", d.workflowsPage)
		r.Get("/workflows/{name}", d.workflowPage)
		r.Post("/workflows/{name}/archive", d.archiveWorkflow(true))
		r.Post("/workflows/{name}/unarchive", d.archiveWorkflow(false))
		r.Get("/runs", d.runsPage)
		r.Get("/runs/live", d.runsLive)
		r.Get("/runs/{id}", d.runPage)
		r.Get("/runs/{id}/live", d.runLive)
		r.Post("/runs/{id}/cancel", d.cancelRun)
		r.Post("/runs/{id}/retry", d.retryRun)
		r.Post("/runs/bulk", d.bulkRuns)
		r.Post("/runs/selected", d.selectedRuns)
		r.Get("/operations/{id}", d.operationPage)
		r.Get("/operations/{id}/progress", d.operationProgress)
		r.Post("/runs/{id}/inputs/{step}", d.answerInput)
		r.Get("/inbox", d.inboxPage)
		r.Get("/schedules", d.schedulesPage)
		r.Get("/schedules/{id}", d.schedulePage)
		r.Post("/schedules/{id}/pause", d.setSchedulePaused(true))
		r.Post("/schedules/{id}/resume", d.setSchedulePaused(false))
		r.Post("/schedules/{id}/trigger", d.triggerSchedule)
		r.Get("/events", d.eventsPage)
	})
	d.handler = r
	return d, nil
}

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

// Listen keeps the open pages live, feeding them the database's
// notifications of runs' status changes, until ctx ends. It holds one
// database connection.
func (d *Dashboard) Listen(ctx context.Context) { d.listen(ctx, d.logger) }

// Close ends the live streams of open pages (browsers reconnect to
// another process, or to this one when it is back). Give it to
// [http.Server.RegisterOnShutdown].
func (d *Dashboard) Close() { d.closeOnce.Do(func() { close(d.closing) }) }

// CallbackPage is the page that answers a callback URL opened in a
// browser (GET /v1/callbacks/{token} with Accept: text/html): the REST
// API hands such requests to it.
func (d *Dashboard) CallbackPage(w http.ResponseWriter, r *http.Request, token string) {
	securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.renderCallback(w, r, token, nil, "")
	})).ServeHTTP(w, r)
}

// contentSecurityPolicy lets a page load scripts, styles, images and
// connections from the dashboard's origin only: no inline script or style
// (the scripts are embedded files), no framing, forms posting only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on the dashboard's own form posts.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// A POST must come from the dashboard's own pages: a browser says
		// where a request comes from, and SameSite=Strict keeps the session
		// cookie off other sites' requests too.
		if r.Method == http.MethodPost && !sameOrigin(r) {
			d := "The request did not come from this dashboard."
			http.Error(w, d, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether a request's Origin (or, without one,
// Sec-Fetch-Site) says it came from this host; a request saying neither
// (not from a browser) passes, its CSRF token is still checked.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

func staticFiles(static fs.FS) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The files change only with the binary.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

type ctxKey struct{}

// authenticate lets requests with a valid session in, and sends the others
// to the login page; it checks the CSRF token of every POST.
func (d *Dashboard) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := d.sessions.fromRequest(w, r)
		if err != nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" && !strings.HasSuffix(r.URL.Path, "/live") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			d.renderError(w, r, http.StatusUnauthorized, "Log in with an API key first.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, formLimit)
			if err := r.ParseForm(); err != nil {
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					d.renderError(w, r, http.StatusRequestEntityTooLarge, "The form is too large.")
					return
				}
				d.renderError(w, r, http.StatusBadRequest, "The form cannot be read.")
				return
			}
			if !d.sessions.checkCSRF(r, ss) {
				d.renderError(w, r, http.StatusForbidden, "The form's CSRF token is missing or not valid: reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ss)))
	})
}

// formLimit bounds a form's body: a JSON input edited in a form fits in
// the API's own input limit and a little more.
const formLimit = 512 << 10

// page is what every page's template gets.
type page struct {
	Title string
	Nav   string
	CSRF  string
	// Open says the dashboard needs no login (development mode).
	Open bool
	Data any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, Open: d.sessions.open(), Data: data}
	if ss, ok := r.Context().Value(ctxKey{}).(session); ok {
		p.CSRF = d.sessions.csrfToken(ss)
	}
	t, ok := d.pages[name]
	if !ok {
		panic("dashboard: no page " + name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		d.logger.ErrorContext(r.Context(), "dashboard: render page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered; it has been logged", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fragment renders one named template of a page, for htmx swaps and live
// updates.
func (d *Dashboard) fragment(name, tmpl string, data any) (string, error) {
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, tmpl, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func (d *Dashboard) renderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	d.render(w, r, status, "error", http.StatusText(status), message)
}

// fail answers with the page of a use case's error: its kind decides the
// status, as in the REST API, and internal errors are logged, never shown.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fault.Error
	if errors.As(err, &fe) {
		status := map[fault.Kind]int{
			fault.Malformed: http.StatusBadRequest, fault.Invalid: http.StatusUnprocessableEntity,
			fault.NotFound: http.StatusNotFound, fault.Conflict: http.StatusConflict,
			fault.TooLarge: http.StatusRequestEntityTooLarge, fault.Gone: http.StatusGone,
			fault.Unauthorized: http.StatusUnauthorized, fault.Unavailable: http.StatusServiceUnavailable,
		}[fe.Kind]
		if status != 0 {
			msg := fe.Message
			for _, p := range fe.Problems {
				msg += "; " + p.Path + ": " + p.Message
			}
			d.renderError(w, r, status, msg)
			return
		}
	}
	d.logger.ErrorContext(r.Context(), "dashboard: request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	d.renderError(w, r, http.StatusInternalServerError, "An internal error occurred; it has been logged.")
}

// back answers an action with a redirect to the page that shows its
// effect (Post/Redirect/Get: reloading does not repeat the action).
func back(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
