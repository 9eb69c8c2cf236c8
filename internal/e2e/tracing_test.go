package e2e_test

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/durablehq/durable/client"
)

// This file tests traces end to end: the trace context step endpoints
// receive, with tracing off and on, and the spans the processes export.
// Its helpers are prefixed "tr".

// traceparentRE is a W3C traceparent of version 00.
var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// trParse splits a traceparent into its trace id and parent id, failing
// the test unless it is valid: the right form, neither id all zeros.
func trParse(t *testing.T, tp string) (traceID, parentID string) {
	t.Helper()
	m := traceparentRE.FindStringSubmatch(tp)
	require.NotNil(t, m, "traceparent %q", tp)
	require.NotEqual(t, "00000000000000000000000000000000", m[1], "traceparent %q", tp)
	require.NotEqual(t, "0000000000000000", m[2], "traceparent %q", tp)
	return m[1], m[2]
}

// trFlaky is a step server whose /flaky step fails with 503 on its first
// attempt of each run; every other request succeeds.
func trFlaky(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	var mu sync.Mutex
	failed := map[uuid.UUID]bool{}
	return stServer(t, func(w http.ResponseWriter, r *http.Request, c stepCall) {
		mu.Lock()
		fail := r.URL.Path == "/flaky" && !failed[c.Body.RunID]
		failed[c.Body.RunID] = failed[c.Body.RunID] || fail
		mu.Unlock()
		if fail {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "not yet"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"ok": true}})
	})
}

// trWorkflow is three call steps, the second of them flaky.
func trWorkflow(name, url string) string {
	return fmt.Sprintf(`{"name": %q, "steps": [
		{"name": "first", "type": "call", "url": "%[2]s/first"},
		{"name": "flaky", "type": "call", "url": "%[2]s/flaky", "retry": {"initial_interval": "10ms", "max_attempts": 3}},
		{"name": "last", "type": "call", "url": "%[2]s/last"}]}`, name, url)
}

// trStart starts a run, with a caller's traceparent and tracestate when
// they are not empty.
func trStart(e *env, workflow, traceparent, tracestate string) uuid.UUID {
	e.t.Helper()
	params := &client.StartRunParams{}
	if traceparent != "" {
		params.Traceparent = &traceparent
	}
	if tracestate != "" {
		params.Tracestate = &tracestate
	}
	res, err := e.client.StartRunWithResponse(e.t.Context(), params, client.StartRunRequest{Workflow: workflow})
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusCreated, res.StatusCode(), string(res.Body))
	return res.JSON201.Id
}

// trCalls groups a step server's calls by run.
func trCalls(rec *recorder) map[uuid.UUID][]stepCall {
	out := map[uuid.UUID][]stepCall{}
	for _, c := range rec.all() {
		out[c.Body.RunID] = append(out[c.Body.RunID], c)
	}
	return out
}

const trCaller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestTraceContextOnStepRequests: with tracing off, every step request of
// a run carries a valid traceparent, all of one run with one trace id, and
// each run its own; a run started with a traceparent (an invalid one is
// ignored) carries the caller's trace id and tracestate on.
func TestTraceContextOnStepRequests(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	srv, rec := trFlaky(t)
	e.createWorkflow(trWorkflow("traced", srv.URL))

	plain := []uuid.UUID{trStart(e, "traced", "", ""), trStart(e, "traced", "", ""), trStart(e, "traced", "garbage", "vendor=x")}
	caller := trStart(e, "traced", trCaller, "vendor=x")
	for _, id := range append(plain, caller) {
		require.Equal(t, client.RunStatus("succeeded"), e.waitRun(id, 30*time.Second).Status)
	}
	calls := trCalls(rec)
	traces := map[string]uuid.UUID{}
	for _, id := range append(plain, caller) {
		require.Len(t, calls[id], 4, "run %s: first, flaky twice, last", id)
		var runTrace string
		for _, c := range calls[id] {
			traceID, _ := trParse(t, c.Header.Get("traceparent"))
			if runTrace == "" {
				runTrace = traceID
			}
			require.Equal(t, runTrace, traceID, "run %s, step %s: one trace id per run", id, c.Body.Step)
		}
		other, seen := traces[runTrace]
		require.False(t, seen, "runs %s and %s share trace %s", id, other, runTrace)
		traces[runTrace] = id
	}
	for _, c := range calls[caller] {
		traceID, _ := trParse(t, c.Header.Get("traceparent"))
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", traceID, "step %s carries the caller's trace id", c.Body.Step)
		require.Equal(t, "vendor=x", c.Header.Get("tracestate"))
	}
	for _, c := range calls[plain[2]] {
		require.Empty(t, c.Header.Get("tracestate"), "no tracestate without a valid traceparent")
	}
}

// trReceiver is an OTLP/HTTP receiver that keeps the spans it is sent,
// with the service.name of their resource.
type trReceiver struct {
	mu    sync.Mutex
	spans []trSpan
}

type trSpan struct {
	service string
	*tracepb.Span
}

func (r *trReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var export coltracepb.ExportTraceServiceRequest
	if err != nil || proto.Unmarshal(body, &export) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, kv := range rs.Resource.GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, trSpan{service, s})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// byID waits until the spans with the given hex ids have arrived and
// returns them by id.
func (r *trReceiver) byID(t *testing.T, ids ...string) map[string]trSpan {
	t.Helper()
	var found map[string]trSpan
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		found = map[string]trSpan{}
		for _, s := range r.spans {
			found[hex.EncodeToString(s.SpanId)] = s
		}
		for _, id := range ids {
			if _, ok := found[id]; !ok {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "spans %v were not all exported", ids)
	return found
}

// named waits for the span named name in trace traceID.
func (r *trReceiver) named(t *testing.T, traceID, name string) trSpan {
	t.Helper()
	var found trSpan
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.spans {
			if s.Name == name && hex.EncodeToString(s.TraceId) == traceID {
				found = s
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "no span %q in trace %s was exported", name, traceID)
	return found
}

func trAttr(s trSpan, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if v, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
				return fmt.Sprint(v.IntValue)
			}
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// TestTracesExported: with an OTLP endpoint, the worker exports a client
// span for every attempt, and each step request names its attempt's span
// as its parent — a retry has a parent of its own, in the same trace, the
// caller's. The run's span, a child of the caller's span, is the parent of
// every step's span, and every attempt's is a child of its step's.
func TestTracesExported(t *testing.T) {
	t.Parallel()
	receiver := &trReceiver{}
	otlp := httptest.NewServer(receiver)
	t.Cleanup(otlp.Close)
	e := newEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+otlp.URL, "OTEL_BSP_SCHEDULE_DELAY=50")
	e.startWorker()
	srv, rec := trFlaky(t)
	e.createWorkflow(trWorkflow("exported", srv.URL))

	id := trStart(e, "exported", trCaller, "")
	require.Equal(t, client.RunStatus("succeeded"), e.waitRun(id, 30*time.Second).Status)
	calls := trCalls(rec)[id]
	require.Len(t, calls, 4)
	var parents []string
	for _, c := range calls {
		traceID, parent := trParse(t, c.Header.Get("traceparent"))
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", traceID)
		parents = append(parents, parent)
	}
	require.Equal(t, "flaky", calls[1].Body.Step)
	require.Equal(t, "flaky", calls[2].Body.Step)
	require.NotEqual(t, parents[1], parents[2], "each attempt is a span of its own")

	spans := receiver.byID(t, parents...)
	runSpan := receiver.named(t, "4bf92f3577b34da6a3ce929d0e0e4736", "run exported")
	require.Equal(t, "00f067aa0ba902b7", hex.EncodeToString(runSpan.ParentSpanId), "the run's span is a child of the caller's")
	require.Equal(t, id.String(), trAttr(runSpan, "durable.run_id"))
	require.Equal(t, "succeeded", trAttr(runSpan, "durable.outcome"))
	for i, c := range calls {
		attempt := spans[parents[i]]
		require.Equal(t, "attempt "+c.Body.Step, attempt.Name)
		require.Equal(t, "durable-worker", attempt.service)
		require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, attempt.Kind)
		require.Equal(t, fmt.Sprint(c.Body.Attempt), trAttr(attempt, "durable.attempt"))
		require.Equal(t, c.Body.Step, trAttr(attempt, "durable.step"))
		step := receiver.named(t, "4bf92f3577b34da6a3ce929d0e0e4736", "step "+c.Body.Step)
		require.Equal(t, step.SpanId, attempt.ParentSpanId, "attempt %d of %s is a child of its step", c.Body.Attempt, c.Body.Step)
		require.Equal(t, runSpan.SpanId, step.ParentSpanId, "step %s is a child of the run", c.Body.Step)
	}
	require.Equal(t, "503", trAttr(spans[parents[1]], "http.response.status_code"))
	require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, spans[parents[1]].Status.GetCode())
	require.Equal(t, "200", trAttr(spans[parents[2]], "http.response.status_code"))
}
