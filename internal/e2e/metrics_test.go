package e2e_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// scrape reads a process's /metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	require.NoError(t, err)
	return families
}

// metricValue is the value of the counter, gauge or histogram count name
// whose labels include labels (0 when there is none).
func metricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := families[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		matches := true
		for k, v := range labels {
			matches = matches && have[k] == v
		}
		if !matches {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestMetrics runs workflows whose every outcome is known — steps that
// succeed at once, after a retry, after a callback, and a step that fails
// for good — then scrapes the API's and the worker's /metrics and checks
// that each counter moved by exactly what happened. The log lines of each
// run's start and end are checked too.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.startWorker("DURABLE_METRICS_ADDR=127.0.0.1:0")
	workerURL := "http://" + worker.waitLog(t, "metrics listening", "addr")

	var mu sync.Mutex
	flaky := map[uuid.UUID]int{}
	srv, rec := stServer(t, func(w http.ResponseWriter, _ *http.Request, c stepCall) {
		switch c.Path {
		case "/flaky":
			mu.Lock()
			flaky[c.Body.RunID]++
			n := flaky[c.Body.RunID]
			mu.Unlock()
			if n == 1 {
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "not yet"})
				return
			}
		case "/bad":
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "upstream down"})
			return
		case "/async":
			writeJSON(w, http.StatusAccepted, nil)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": "ok"})
	})
	e.createWorkflow(stDef(t, map[string]any{"name": "metered", "steps": []any{
		map[string]any{"name": "first", "type": "call", "url": srv.URL + "/ok"},
		map[string]any{"name": "second", "type": "call", "url": srv.URL + "/flaky", "retry": map[string]any{"max_attempts": 2, "initial_interval": "10ms"}},
		map[string]any{"name": "each", "type": "foreach", "items": "${ [1, 2] }", "mode": "concurrent", "steps": []any{
			map[string]any{"name": "item", "type": "call", "url": srv.URL + "/ok"}}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "broken", "steps": []any{
		map[string]any{"name": "only", "type": "call", "url": srv.URL + "/bad"},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "async", "steps": []any{
		map[string]any{"name": "job", "type": "call", "url": srv.URL + "/async", "callback_timeout": "1h", "retry": map[string]any{"max_attempts": 1}},
	}}))

	const metered = 3
	var ids []uuid.UUID
	for range metered {
		ids = append(ids, e.startRun("metered", map[string]any{}))
	}
	broken := e.startRun("broken", map[string]any{})
	async := e.startRun("async", map[string]any{})
	for _, id := range ids {
		e.waitRun(id, 30*time.Second, "succeeded")
	}
	require.Equal(t, client.RunStatus("failed"), e.waitRun(broken, 30*time.Second, "failed").Status)
	e.waitRun(async, 30*time.Second, "waiting")
	var token string
	for _, c := range rec.all() {
		if c.Path == "/async" {
			token = stToken(t, e, c.Body.CallbackURL)
		}
	}
	require.Equal(t, http.StatusOK, stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "done"}).StatusCode())
	require.Equal(t, http.StatusConflict, stCallback(t, e, token, client.CallbackRequest{Status: status("succeeded"), Output: "again"}).StatusCode())
	require.Equal(t, http.StatusUnauthorized, stCallback(t, e, stAlter(token, len(token)-3), client.CallbackRequest{Status: status("succeeded")}).StatusCode())
	e.waitRun(async, 30*time.Second, "succeeded")
	res, err := e.client.PublishEventWithResponse(context.Background(), client.PublishEventRequest{Name: "nobody", Key: "k", Payload: map[string]any{}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))

	// The worker records the runs' ends after the API answered their
	// last callback: wait until it has counted all of them.
	var w map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		w = scrape(t, workerURL)
		if metricValue(w, "durable_runs_finished_total", nil)+metricValue(scrape(t, e.apiURL), "durable_runs_finished_total", nil) == metered+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := scrape(t, e.apiURL)
	both := func(name string, labels map[string]string) float64 {
		return metricValue(a, name, labels) + metricValue(w, name, labels)
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// Runs started through the API are counted where they were created.
	require.Equal(t, float64(metered), metricValue(a, "durable_runs_started_total", l("workflow", "metered")))
	require.Equal(t, 1.0, metricValue(a, "durable_runs_started_total", l("workflow", "broken")))
	require.Equal(t, float64(metered), both("durable_runs_finished_total", l("workflow", "metered", "status", "succeeded")))
	require.Equal(t, 1.0, both("durable_runs_finished_total", l("workflow", "broken", "status", "failed")))
	require.Equal(t, 1.0, both("durable_runs_finished_total", l("workflow", "async", "status", "succeeded")))

	require.Equal(t, float64(metered), both("durable_steps_total", l("workflow", "metered", "step", "first", "outcome", "succeeded")))
	require.Equal(t, float64(metered), both("durable_steps_total", l("workflow", "metered", "step", "second", "outcome", "retried")))
	require.Equal(t, float64(metered), both("durable_steps_total", l("workflow", "metered", "step", "second", "outcome", "succeeded")))
	require.Equal(t, float64(2*metered), both("durable_steps_total", l("workflow", "metered", "step", "item", "outcome", "succeeded")), "a foreach's steps, not its lanes")
	require.Equal(t, float64(metered), both("durable_steps_total", l("workflow", "metered", "step", "each", "outcome", "succeeded")))
	require.Equal(t, 0.0, both("durable_steps_total", l("workflow", "metered", "outcome", "failed")))
	require.Equal(t, 1.0, both("durable_steps_total", l("workflow", "broken", "step", "only", "outcome", "failed")))
	require.Equal(t, 1.0, both("durable_steps_total", l("workflow", "async", "step", "job", "outcome", "accepted")))
	require.Equal(t, 1.0, both("durable_steps_total", l("workflow", "async", "step", "job", "outcome", "succeeded")))

	// Every attempt's call is timed: one per call to the step server.
	require.Equal(t, float64(metered), metricValue(w, "durable_step_duration_seconds", l("workflow", "metered", "step", "first")))
	require.Equal(t, float64(2*metered), metricValue(w, "durable_step_duration_seconds", l("workflow", "metered", "step", "second")))
	require.Equal(t, float64(len(rec.all())), metricValue(w, "durable_step_duration_seconds", nil))

	require.Equal(t, 1.0, metricValue(a, "durable_callbacks_total", l("outcome", "succeeded")))
	require.Equal(t, 1.0, metricValue(a, "durable_callbacks_total", l("outcome", "conflict")))
	require.Equal(t, 1.0, metricValue(a, "durable_callbacks_total", l("outcome", "rejected")))
	require.Equal(t, 1.0, metricValue(a, "durable_events_published_total", nil))

	// The API counts its requests by route, never by a run's path.
	require.Equal(t, float64(metered+2), metricValue(a, "durable_http_requests_total", l("method", "POST", "route", "/v1/runs", "code", "201")))
	for _, m := range a["durable_http_requests_total"].Metric {
		for _, lb := range m.Label {
			if lb.GetName() == "route" {
				require.NotContains(t, lb.GetValue(), broken.String())
			}
		}
	}
	for _, fam := range []string{"durable_work_due", "durable_work_lag_seconds", "pgxpool_acquire_count", "go_goroutines", "process_resident_memory_bytes"} {
		require.Contains(t, a, fam)
		require.Contains(t, w, fam)
	}
	require.Equal(t, 0.0, metricValue(w, "durable_work_due", nil), "nothing is left to do")

	// One log line per run's start (at the API) and end (at the worker, or
	// the API that applied the last callback), with the run's identity.
	api := e.api
	started := api.logsWith("run started")
	require.Len(t, started, metered+2)
	for _, line := range started {
		require.Equal(t, "api", line["started_by"])
		require.NotEmpty(t, line["run_id"])
		require.NotEmpty(t, line["workflow"])
		require.Equal(t, 1.0, line["version"])
	}
	failed := worker.logsWith("run failed")
	require.Len(t, failed, 1)
	require.Equal(t, broken.String(), failed[0]["run_id"])
	require.Equal(t, "broken", failed[0]["workflow"])
	require.Equal(t, "only", failed[0]["step"])
	require.Equal(t, "step only failed: the step answered 400 Bad Request: upstream down", failed[0]["error"], "the error says what the endpoint answered")
	require.Len(t, append(worker.logsWith("run succeeded"), api.logsWith("run succeeded")...), metered+1)
}
