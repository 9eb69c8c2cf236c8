package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/tracing"
	"github.com/durablehq/durable/internal/workflow"
)

// traceBundle is an API and a worker over one database, both tracing into
// one in-memory exporter, and a step server that records the traceparent
// of every request.
type traceBundle struct {
	api      *API
	spans    *tracetest.InMemoryExporter
	mu       sync.Mutex
	requests []stepTrace
	stepsURL string
}

// stepTrace is what a step request carried.
type stepTrace struct {
	path, traceparent, tracestate string
	attempt                       int
}

func (b *traceBundle) seen() []stepTrace {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]stepTrace(nil), b.requests...)
}

// setupTracing starts the bundle; answer answers the step server's n-th
// request (from 1) to path.
func setupTracing(t *testing.T, answer func(path string, n int) int) *traceBundle {
	t.Helper()
	b := &traceBundle{spans: tracetest.NewInMemoryExporter()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(b.spans), sdktrace.WithIDGenerator(tracing.IDGenerator()))
	counts := map[string]int{}
	steps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Attempt int `json:"attempt"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		b.mu.Lock()
		b.requests = append(b.requests, stepTrace{path: r.URL.Path, traceparent: r.Header.Get("traceparent"), tracestate: r.Header.Get("tracestate"), attempt: body.Attempt})
		counts[r.URL.Path]++
		n := counts[r.URL.Path]
		b.mu.Unlock()
		status := answer(r.URL.Path, n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = io.WriteString(w, `{"output": {"ok": true}}`)
		}
	}))
	t.Cleanup(steps.Close)
	b.stepsURL = steps.URL

	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	secrets, err := signing.ParseSecrets(secret)
	require.NoError(t, err)
	db := pgtest.New(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.api = NewAPI(db, DefaultLimits(), logger, WithSigning(secrets, "http://127.0.0.1:1"), WithTracerProvider(tp))
	client, err := httpstep.New(httpstep.Config{Secrets: secrets, AllowHosts: []string{"127.0.0.0/8"}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- NewWorker(db, DefaultLimits(), logger, WorkerConfig{
			Client: client, Concurrency: 4, PollInterval: 50 * time.Millisecond, ShutdownGrace: time.Second,
		}, WithSigning(secrets, "http://127.0.0.1:1"), WithWorkerID("trace-test"), WithTracerProvider(tp)).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		client.Close()
	})
	return b
}

// waitEnded waits for a run to end and returns it.
func (b *traceBundle) waitEnded(t *testing.T, id uuid.UUID) workflow.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := b.api.GetRun(context.Background(), id)
		require.NoError(t, err)
		if r.Status.Terminal() {
			return r.Run
		}
		require.True(t, time.Now().Before(deadline), "run %s is still %s", id, r.Status)
		time.Sleep(20 * time.Millisecond)
	}
}

// span finds the one ended span named name in run's trace, waiting a little
// for it: a run's span is emitted once its last transaction committed.
func (b *traceBundle) span(t *testing.T, traceID trace.TraceID, name string) tracetest.SpanStub {
	t.Helper()
	found := b.named(t, traceID, name, 1)
	return found[0]
}

// named waits for n ended spans named name in the trace and returns them
// in the order they ended.
func (b *traceBundle) named(t *testing.T, traceID trace.TraceID, name string, n int) []tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	require.Eventually(t, func() bool {
		found = nil
		for _, s := range b.spans.GetSpans() {
			if s.Name == name && s.SpanContext.TraceID() == traceID {
				found = append(found, s)
			}
		}
		return len(found) >= n
	}, 10*time.Second, 10*time.Millisecond, "no %d spans %q", n, name)
	require.Len(t, found, n, "spans %q", name)
	return found
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestTraceOfARun follows a run started with a caller's traceparent: a
// step that fails once and is retried, a child run, and a last step. Every
// span is in the caller's trace: the run's, a child of the caller's span,
// with the id stored with the run; each step's, a child of the run's; each
// attempt's, a client span and a child of its step's, and the parent that
// its request's traceparent names. The child run's span is a child of the
// parent's call_workflow step.
func TestTraceOfARun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupTracing(t, func(path string, n int) int {
		if path == "/flaky" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	for _, def := range []string{
		fmt.Sprintf(`{"name": "kid", "steps": [{"name": "c", "type": "call", "url": "%s/kid"}]}`, b.stepsURL),
		fmt.Sprintf(`{"name": "traced", "steps": [
			{"name": "flaky", "type": "call", "url": "%[1]s/flaky", "retry": {"initial_interval": "10ms"}},
			{"name": "child", "type": "call_workflow", "workflow": "kid"},
			{"name": "last", "type": "call", "url": "%[1]s/last"}]}`, b.stepsURL),
	} {
		_, _, err := b.api.CreateWorkflow(ctx, []byte(def))
		require.NoError(t, err)
	}
	caller := TraceParent(ctx, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x")
	require.True(t, caller.IsValid())
	started, _, err := b.api.StartRun(ctx, StartRun{Workflow: "traced", Parent: caller})
	require.NoError(t, err)
	run := b.waitEnded(t, started.ID)
	require.Equal(t, workflow.RunSucceeded, run.Status)
	traceID := caller.TraceID()
	stored := runSpan(run)
	require.Equal(t, traceID, stored.TraceID(), "the run joined the caller's trace")
	require.Equal(t, caller.SpanID().String(), run.Trace.ParentSpanID)
	require.Equal(t, "vendor=x", run.Trace.Tracestate)

	runSpan := b.span(t, traceID, "run traced")
	require.Equal(t, stored.SpanID(), runSpan.SpanContext.SpanID(), "the run's span has the id stored with the run")
	require.Equal(t, caller.SpanID(), runSpan.Parent.SpanID(), "the run's span is a child of the caller's")
	require.True(t, runSpan.StartTime.Equal(run.CreatedAt), "the run's span begins when the run was created")
	a := attrs(runSpan)
	require.Equal(t, run.ID.String(), a[attrRunID].AsString())
	require.Equal(t, "traced", a[attrWorkflow].AsString())
	require.EqualValues(t, run.Version, a[attrWorkflowVersion].AsInt64())
	require.Equal(t, "succeeded", a[attrOutcome].AsString())
	require.Equal(t, codes.Unset, runSpan.Status.Code)

	execs, err := b.api.ListSteps(ctx, run.ID, nil, 100)
	require.NoError(t, err)
	execByKey := map[string]workflow.StepExecution{}
	for _, e := range execs {
		execByKey[e.Key] = e
	}
	for _, key := range []string{"flaky", "child", "last"} {
		s := b.span(t, traceID, "step "+key)
		require.Equal(t, stepSpanID(execByKey[key].ID), s.SpanContext.SpanID(), "step %s", key)
		require.Equal(t, stored.SpanID(), s.Parent.SpanID(), "step %s is a child of the run", key)
		require.Equal(t, key, attrs(s)[attrStep].AsString())
		require.Equal(t, "succeeded", attrs(s)[attrOutcome].AsString())
	}
	require.EqualValues(t, 2, attrs(b.span(t, traceID, "step flaky"))[attrAttempt].AsInt64())

	flaky := b.named(t, traceID, "attempt flaky", 2)
	stepOfFlaky := b.span(t, traceID, "step flaky").SpanContext.SpanID()
	for i, s := range flaky {
		require.Equal(t, trace.SpanKindClient, s.SpanKind)
		require.Equal(t, stepOfFlaky, s.Parent.SpanID(), "the attempt is a child of its step")
		require.EqualValues(t, i+1, attrs(s)[attrAttempt].AsInt64())
		require.Equal(t, "POST", attrs(s)["http.request.method"].AsString())
		require.Equal(t, "127.0.0.1", attrs(s)["server.address"].AsString())
	}
	require.EqualValues(t, 503, attrs(flaky[0])[attrHTTPStatus].AsInt64())
	require.Equal(t, "retryable", attrs(flaky[0])[attrOutcome].AsString())
	require.Equal(t, codes.Error, flaky[0].Status.Code)
	require.EqualValues(t, 200, attrs(flaky[1])[attrHTTPStatus].AsInt64())
	require.Equal(t, "succeeded", attrs(flaky[1])[attrOutcome].AsString())

	// The child run continues the trace under the call_workflow step.
	kid := b.span(t, traceID, "run kid")
	require.Equal(t, stepSpanID(execByKey["child"].ID), kid.Parent.SpanID())
	kidStep := b.span(t, traceID, "step c")
	require.Equal(t, kid.SpanContext.SpanID(), kidStep.Parent.SpanID())

	// Every request named its attempt's span as its parent, in the
	// caller's trace, with the caller's trace state.
	attempts := map[string]tracetest.SpanStub{}
	for _, name := range []string{"attempt flaky", "attempt last", "attempt c"} {
		for _, s := range b.spans.GetSpans() {
			if s.Name == name {
				attempts[s.SpanContext.SpanID().String()] = s
			}
		}
	}
	seen := b.seen()
	require.Len(t, seen, 4)
	for _, r := range seen {
		sc := TraceParent(ctx, r.traceparent, r.tracestate)
		require.True(t, sc.IsValid(), "request to %s: traceparent %q", r.path, r.traceparent)
		require.Equal(t, traceID, sc.TraceID(), "request to %s", r.path)
		require.Equal(t, "vendor=x", r.tracestate, "request to %s", r.path)
		s, ok := attempts[sc.SpanID().String()]
		require.True(t, ok, "request to %s names no attempt span as its parent", r.path)
		require.EqualValues(t, r.attempt, attrs(s)[attrAttempt].AsInt64())
	}
	require.NotEqual(t, seen[0].traceparent, seen[1].traceparent, "a retry has a parent of its own")
}

// TestTraceOfAFailedRun: a run that fails without a caller begins a trace
// of its own; its step's span and its own carry the error, and the
// compensation of the step that succeeded is a client span too, a child of
// that step's span.
func TestTraceOfAFailedRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupTracing(t, func(path string, _ int) int {
		if path == "/broken" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	_, _, err := b.api.CreateWorkflow(ctx, []byte(fmt.Sprintf(`{"name": "saga", "steps": [
		{"name": "book", "type": "call", "url": "%[1]s/book", "compensate": {"url": "%[1]s/unbook"}},
		{"name": "broken", "type": "call", "url": "%[1]s/broken"}]}`, b.stepsURL)))
	require.NoError(t, err)
	started, _, err := b.api.StartRun(ctx, StartRun{Workflow: "saga", Parent: TraceParent(ctx, "not a traceparent", "")})
	require.NoError(t, err)
	run := b.waitEnded(t, started.ID)
	require.Equal(t, workflow.RunCompensated, run.Status)
	require.Empty(t, run.Trace.ParentSpanID, "an invalid traceparent is ignored")
	traceID := runSpan(run).TraceID()
	require.True(t, traceID.IsValid())

	r := b.span(t, traceID, "run saga")
	require.False(t, r.Parent.IsValid(), "the run began its trace")
	require.Equal(t, codes.Error, r.Status.Code)
	require.Equal(t, "compensated", attrs(r)[attrOutcome].AsString())

	broken := b.span(t, traceID, "step broken")
	require.Equal(t, codes.Error, broken.Status.Code)
	require.Equal(t, "failed", attrs(broken)[attrOutcome].AsString())
	require.Contains(t, broken.Status.Description, "400")

	comp := b.span(t, traceID, "compensate book")
	require.Equal(t, trace.SpanKindClient, comp.SpanKind)
	require.Equal(t, b.span(t, traceID, "step book").SpanContext.SpanID(), comp.Parent.SpanID())
	require.True(t, attrs(comp)[attrCompensation].AsBool())
	for _, req := range b.seen() {
		require.Equal(t, traceID, TraceParent(ctx, req.traceparent, "").TraceID(), "request to %s", req.path)
	}
}

// TestTraceParentIgnoresInvalid: what is not a W3C traceparent starts no
// trace and is never an error.
func TestTraceParentIgnoresInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, v := range []string{
		"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	} {
		require.False(t, TraceParent(ctx, v, "a=b").IsValid(), "%q", v)
	}
	tc := newRunTrace(TraceParent(ctx, "garbage", ""))
	sc := TraceParent(ctx, tc.Traceparent, "")
	require.True(t, sc.IsValid())
	require.True(t, sc.IsSampled())
	require.Empty(t, tc.ParentSpanID)

	// An unsampled caller's runs are not sampled either.
	tc = newRunTrace(TraceParent(ctx, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", ""))
	sc = TraceParent(ctx, tc.Traceparent, "")
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String())
	require.False(t, sc.IsSampled())
	require.Equal(t, "00f067aa0ba902b7", tc.ParentSpanID)

	// What a run stores reads back as the propagator reads it.
	tc = newRunTrace(TraceParent(ctx, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1,b=2"))
	require.True(t, runSpan(workflow.Run{Trace: tc}).Equal(TraceParent(ctx, tc.Traceparent, tc.Tracestate).WithRemote(true)))
	require.Equal(t, "a=1,b=2", runSpan(workflow.Run{Trace: tc}).TraceState().String())
	require.False(t, runSpan(workflow.Run{}).IsValid(), "a run from before trace contexts has none")
}

// BenchmarkStepTracing is what tracing adds to one step of a run in the
// worker: an attempt's span and trace context, and the step's span, with
// tracing off (the no-op provider) and on (the SDK's batch processor,
// blocking rather than dropping, and the OTLP/HTTP exporter, sending to a
// receiver that discards). Run with -cpu 1, every op includes its share of
// exporting.
func BenchmarkStepTracing(b *testing.B) {
	ctx := context.Background()
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			s := &core{tracer: defaultTracer()}
			if on {
				receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/x-protobuf")
				}))
				defer receiver.Close()
				exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(receiver.URL))
				require.NoError(b, err)
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBlocking()), sdktrace.WithIDGenerator(tracing.IDGenerator()))
				defer func() { require.NoError(b, tp.Shutdown(ctx)) }()
				WithTracerProvider(tp)(s)
			}
			run := workflow.Run{ID: uuid.Must(uuid.NewV7()), Workflow: "bench", Version: 1, Trace: newRunTrace(trace.SpanContext{})}
			started := time.Now()
			for b.Loop() {
				execID := uuid.Must(uuid.NewV7())
				span := s.startAttemptSpan(ctx, stepSpan(run, execID), attemptOf{
					run: run, name: "charge", key: "charge", number: 1, url: "http://127.0.0.1:9000/step/charge",
				})
				var req httpstep.Request
				carryTrace(span, &req)
				endAttemptSpan(span, httpstep.Result{Outcome: httpstep.Succeeded, HTTPStatus: 200})
				s.stepDone(ctx, finishedStep{run: run, execID: execID, key: "charge", name: "charge", started: started, attempts: 1, outcome: "succeeded"})()
			}
		})
	}
}
