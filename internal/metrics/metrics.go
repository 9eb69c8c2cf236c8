// Package metrics holds Durable's Prometheus metrics: what the engine did
// (runs, steps, callbacks, events, schedule firings), the queue (due work
// and its lag, what flow control holds), the HTTP server by route, the database pool, and Go's and
// the process's own. Each process has its own registry, served by
// [Metrics.Handler]; nothing is registered globally.
//
// Labels are bounded: workflow and step names are the user's, so each
// label keeps at most a fixed number of distinct values and counts the
// rest under "_other"; run ids never become labels.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/pgxpoolprometheus"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label bounds: more distinct workflows, or steps of one workflow, than
// these are counted as "_other".
const (
	maxWorkflows        = 500
	maxStepsPerWorkflow = 200
	other               = "_other"
)

// Metrics is one process's metrics.
type Metrics struct {
	reg *prometheus.Registry

	runsStarted   *prometheus.CounterVec
	runsFinished  *prometheus.CounterVec
	steps         *prometheus.CounterVec
	stepDuration  *prometheus.HistogramVec
	callbacks     *prometheus.CounterVec
	events        prometheus.Counter
	scheduleFires *prometheus.CounterVec
	flowHeld      *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	httpInFlight  prometheus.Gauge
	names         names
}

// New returns the metrics of a process, with Go's and the process's own
// collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_runs_started_total", Help: "Runs created, however they were started (API, schedule, parent).",
		}, []string{"workflow"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_runs_finished_total", Help: "Runs that reached a final status.",
		}, []string{"workflow", "status"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_steps_total", Help: "Step outcomes: executions that succeeded or failed, attempts retried, 202 answers accepted.",
		}, []string{"workflow", "step", "outcome"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "durable_step_duration_seconds", Help: "How long each attempt's call to a step endpoint took, until its answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"workflow", "step"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_callbacks_total", Help: "Callbacks received, by what they did (succeeded, failed, heartbeat, input) or why they were refused.",
		}, []string{"outcome"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durable_events_published_total", Help: "Events published (a duplicate id is not counted again).",
		}),
		scheduleFires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_schedule_fires_total", Help: "Schedule firings that started a run.",
		}, []string{"workflow"}),
		flowHeld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_flow_held_total", Help: "Times a step's attempt was held back by flow control, by reason: concurrency (its concurrency limit was full) or throttled (its rate limit had no token); no retry attempt is used.",
		}, []string{"workflow", "step", "reason"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durable_http_requests_total", Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "durable_http_request_duration_seconds", Help: "How long HTTP requests took to serve, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		httpInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "durable_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		names: names{steps: map[string]map[string]struct{}{}},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.runsStarted, m.runsFinished, m.steps, m.stepDuration, m.callbacks, m.events, m.scheduleFires, m.flowHeld,
		m.httpRequests, m.httpDuration, m.httpInFlight,
	)
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Database is what the metrics read of the database: its pool's statistics
// and the queue.
type Database interface {
	Stat() *pgxpool.Stat
	WorkDue(ctx context.Context, max int) (int64, time.Duration, error)
	FlowHeld(ctx context.Context) (queued, concurrency, throttled int64, err error)
}

// WatchDatabase adds the pool's statistics (pgxpool_*) and the queue
// (durable_work_due, durable_work_lag_seconds), read at each scrape until
// ctx ends.
func (m *Metrics) WatchDatabase(ctx context.Context, db Database, logger *slog.Logger) {
	m.reg.MustRegister(pgxpoolprometheus.NewCollector(db, nil), &queue{ctx: ctx, db: db, logger: logger})
}

// RequestServed records an HTTP request served by the route pattern that
// matched it ("" when none did).
func (m *Metrics) RequestServed(method, route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "OTHER" // methods are the client's to choose: bounded
	}
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// RequestStarted counts a request in flight until done is called.
func (m *Metrics) RequestStarted() (done func()) {
	m.httpInFlight.Inc()
	return m.httpInFlight.Dec
}

// RunStarted counts a run created.
func (m *Metrics) RunStarted(workflow string) {
	m.runsStarted.WithLabelValues(m.names.workflow(workflow)).Inc()
}

// RunFinished counts a run that reached its final status.
func (m *Metrics) RunFinished(workflow, status string) {
	m.runsFinished.WithLabelValues(m.names.workflow(workflow), status).Inc()
}

// StepEnded counts a step outcome (orchestrator.StepSucceeded, ...).
func (m *Metrics) StepEnded(workflow, step, outcome string) {
	w, s := m.names.step(workflow, step)
	m.steps.WithLabelValues(w, s, outcome).Inc()
}

// AttemptTook records how long an attempt's call to its endpoint took.
func (m *Metrics) AttemptTook(workflow, step string, d time.Duration) {
	w, s := m.names.step(workflow, step)
	m.stepDuration.WithLabelValues(w, s).Observe(d.Seconds())
}

// CallbackAnswered counts a callback by its outcome.
func (m *Metrics) CallbackAnswered(outcome string) {
	m.callbacks.WithLabelValues(outcome).Inc()
}

// EventPublished counts an event published.
func (m *Metrics) EventPublished() { m.events.Inc() }

// ScheduleFired counts a schedule firing that started a run of workflow.
func (m *Metrics) ScheduleFired(workflow string) {
	m.scheduleFires.WithLabelValues(m.names.workflow(workflow)).Inc()
}

// FlowHeld counts a step's attempt held back by flow control.
func (m *Metrics) FlowHeld(workflow, step, reason string) {
	w, s := m.names.step(workflow, step)
	m.flowHeld.WithLabelValues(w, s, reason).Inc()
}

// names bounds the workflow and step label values: the first ones seen
// are kept, later ones become "_other".
type names struct {
	mu    sync.RWMutex
	steps map[string]map[string]struct{} // workflow → its steps
}

func (n *names) workflow(w string) string {
	w, _ = n.step(w, "")
	return w
}

// step returns the label values for a workflow's step (step "" asks for
// the workflow alone).
func (n *names) step(w, s string) (string, string) {
	n.mu.RLock()
	steps, known := n.steps[w]
	_, stepKnown := steps[s]
	n.mu.RUnlock()
	if known && (s == "" || stepKnown) {
		return w, s
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	steps, known = n.steps[w]
	if !known {
		if len(n.steps) >= maxWorkflows {
			return other, stepOrOther(s)
		}
		steps = map[string]struct{}{}
		n.steps[w] = steps
	}
	if s == "" {
		return w, s
	}
	if _, ok := steps[s]; !ok {
		if len(steps) >= maxStepsPerWorkflow {
			return w, other
		}
		steps[s] = struct{}{}
	}
	return w, s
}

func stepOrOther(s string) string {
	if s == "" {
		return ""
	}
	return other
}
