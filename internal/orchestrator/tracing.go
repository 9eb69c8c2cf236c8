package orchestrator

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/tracing"
	"github.com/durablehq/durable/internal/workflow"
)

// A run lives longer than any process that advances it, so none of its
// spans can be held open from start to end. Each is emitted, whole, by the
// process that sees it end, with ids every process can know:
//
//   - the run's span has the trace id and span id chosen when the run was
//     created and stored with it (workflow.TraceContext); it is emitted when
//     the run ends, starting at the run's creation;
//   - a step's span is a child of the run's, with a span id derived from
//     the step execution's id; it is emitted when the step ends, starting at
//     the execution's creation;
//   - an attempt's span is a client span, a child of its step's, made by the
//     worker around the step request, and it is the parent that the
//     request's traceparent names.
//
// docs/observability.md describes the result.

// Span attributes of Durable's own.
const (
	attrRunID           = attribute.Key("durable.run_id")
	attrWorkflow        = attribute.Key("durable.workflow")
	attrWorkflowVersion = attribute.Key("durable.workflow_version")
	attrStep            = attribute.Key("durable.step")
	attrAttempt         = attribute.Key("durable.attempt")
	attrOutcome         = attribute.Key("durable.outcome")
	attrCompensation    = attribute.Key("durable.compensation")
	attrHTTPStatus      = attribute.Key("http.response.status_code")
)

// tracerName is the instrumentation scope of Durable's spans.
const tracerName = "github.com/durablehq/durable"

// WithTracerProvider gives the service the provider of the spans of runs,
// steps and attempts. Without it, spans are made by a no-op provider: step
// requests still carry their run's trace context, and nothing is recorded.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *core) { s.tracer = tp.Tracer(tracerName) }
}

func defaultTracer() trace.Tracer { return noop.NewTracerProvider().Tracer(tracerName) }

// newRunTrace chooses the trace context of a new run: its span is a child
// of parent when parent is valid (a caller's span, a parent run's step), in
// parent's trace, with its flags and trace state; otherwise it begins a
// trace of its own, sampled, so that a sampler in the tracing pipeline
// decides on whole runs by their trace id.
func newRunTrace(parent trace.SpanContext) workflow.TraceContext {
	if !parent.IsValid() {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tracing.NewTraceID(), SpanID: tracing.NewSpanID(), TraceFlags: trace.FlagsSampled})
		return workflow.TraceContext{Traceparent: traceparent(sc)}
	}
	return workflow.TraceContext{
		Traceparent:  traceparent(parent.WithSpanID(tracing.NewSpanID())),
		ParentSpanID: parent.SpanID().String(),
		Tracestate:   parent.TraceState().String(),
	}
}

// traceparent is sc as a W3C traceparent header value.
func traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// TraceParent reads the W3C traceparent and tracestate of a request's
// headers: the span a run started by it is a child of. A missing or
// invalid traceparent gives an invalid span context: the run begins a
// trace of its own.
func TraceParent(ctx context.Context, traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	carrier := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		carrier["tracestate"] = tracestate
	}
	return trace.SpanContextFromContext(tracing.Propagator().Extract(ctx, carrier))
}

// runSpan is the span context of run's span, invalid for a run created
// before runs had a trace context. It reads the traceparent that
// [newRunTrace] wrote, of a fixed form, without the propagator's map and
// context: it is read for every attempt and every step's end.
func runSpan(run workflow.Run) trace.SpanContext {
	tp := run.Trace.Traceparent
	if len(tp) != len("00-")+32+1+16+1+2 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return trace.SpanContext{}
	}
	traceID, terr := trace.TraceIDFromHex(tp[3:35])
	spanID, serr := trace.SpanIDFromHex(tp[36:52])
	flags, ferr := strconv.ParseUint(tp[53:], 16, 8)
	if terr != nil || serr != nil || ferr != nil {
		return trace.SpanContext{}
	}
	var state trace.TraceState
	if run.Trace.Tracestate != "" {
		// Stored as the propagator accepted it: it parses again.
		state, _ = trace.ParseTraceState(run.Trace.Tracestate)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.TraceFlags(flags), TraceState: state, Remote: true,
	})
}

// stepSpanID is the span id of a step execution's span: the random end of
// its UUIDv7, which any process can compute. Its first byte holds the
// UUID's variant bits, so it is never zero.
func stepSpanID(execID uuid.UUID) trace.SpanID {
	var id trace.SpanID
	copy(id[:], execID[8:])
	return id
}

// stepSpan is the span context of a step execution's span.
func stepSpan(run workflow.Run, execID uuid.UUID) trace.SpanContext {
	sc := runSpan(run)
	if !sc.IsValid() {
		return sc
	}
	return sc.WithSpanID(stepSpanID(execID))
}

// runAttributes returns the attributes every span of run has, in a slice
// with room for more: the SDK grows a span's attributes on every call that
// sets some, so each span's are set in one.
func runAttributes(run workflow.Run, more int) []attribute.KeyValue {
	return append(make([]attribute.KeyValue, 0, 3+more),
		attrRunID.String(run.ID.String()), attrWorkflow.String(run.Workflow), attrWorkflowVersion.Int(run.Version))
}

// errorMessage is the "message" of a step or run error, or the error itself.
func errorMessage(errJSON json.RawMessage) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(errJSON, &e) == nil && e.Message != "" {
		return e.Message
	}
	return string(errJSON)
}

// attemptOf names an attempt's span: the attempt at step key (of the step
// named name) of run, number number, a compensation's or the step's own,
// with the method and URL of its request.
type attemptOf struct {
	run          workflow.Run
	name, key    string
	number       int
	compensation bool
	method, url  string
}

// startAttemptSpan starts the client span of an attempt, a child of the
// span parent.
func (s *core) startAttemptSpan(ctx context.Context, parent trace.SpanContext, at attemptOf) trace.Span {
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	name := "attempt " + at.name
	if at.compensation {
		name = "compensate " + at.name
	}
	_, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		attrs := append(runAttributes(at.run, 8), attrStep.String(at.key), attrAttempt.Int(at.number))
		if at.compensation {
			attrs = append(attrs, attrCompensation.Bool(true))
		}
		span.SetAttributes(httpAttributes(attrs, at.method, at.url)...)
	}
	return span
}

// carryTrace sets the trace context a step request carries: its attempt
// span's, or, when nothing records, the parent's that span kept.
func carryTrace(span trace.Span, req *httpstep.Request) {
	if sc := span.SpanContext(); sc.IsValid() {
		req.Traceparent, req.Tracestate = traceparent(sc), sc.TraceState().String()
	}
}

// httpAttributes appends to attrs the OpenTelemetry HTTP client
// attributes of a step request. Never the URL's path or query: they may
// carry secrets.
func httpAttributes(attrs []attribute.KeyValue, method, rawURL string) []attribute.KeyValue {
	if method == "" {
		method = "POST"
	}
	attrs = append(attrs, attribute.String("http.request.method", method))
	u, err := url.Parse(rawURL)
	if err != nil {
		return attrs
	}
	attrs = append(attrs, attribute.String("url.scheme", u.Scheme), attribute.String("server.address", u.Hostname()))
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	return attrs
}

// endAttemptSpan ends an attempt's span with what the endpoint answered.
func endAttemptSpan(span trace.Span, res httpstep.Result) {
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 1, 3)
		attrs[0] = attrOutcome.String(res.Outcome.String())
		if res.HTTPStatus > 0 {
			attrs = append(attrs, attrHTTPStatus.Int(res.HTTPStatus))
		}
		if res.Outcome == httpstep.Retryable || res.Outcome == httpstep.Permanent {
			if res.HTTPStatus > 0 {
				attrs = append(attrs, attribute.String("error.type", strconv.Itoa(res.HTTPStatus)))
			}
			span.SetStatus(codes.Error, errorMessage(res.Error))
		}
		span.SetAttributes(attrs...)
	}
	span.End()
}

// finishedStep is a step execution that ended, for its span.
type finishedStep struct {
	run      workflow.Run
	execID   uuid.UUID
	key      string
	name     string
	started  time.Time
	attempts int
	outcome  string          // the execution's final status
	err      json.RawMessage // its error, when it failed
}

// stepDone returns the function that tells of a step execution that ended
// now: the observer counts it, and its span is emitted.
func (s *core) stepDone(ctx context.Context, f finishedStep) func() {
	ended := time.Now()
	return func() {
		s.obs.StepEnded(f.run.Workflow, f.name, observedOutcome(f.outcome))
		run := runSpan(f.run)
		if !run.IsValid() || f.started.IsZero() {
			return
		}
		ctx := tracing.WithIDs(trace.ContextWithRemoteSpanContext(ctx, run), run.TraceID(), stepSpanID(f.execID))
		_, span := s.tracer.Start(ctx, "step "+f.name, trace.WithTimestamp(f.started))
		if span.IsRecording() {
			span.SetAttributes(append(runAttributes(f.run, 3), attrStep.String(f.key), attrAttempt.Int(f.attempts), attrOutcome.String(f.outcome))...)
			if f.outcome != "succeeded" {
				span.SetStatus(codes.Error, errorMessage(f.err))
			}
		}
		span.End(trace.WithTimestamp(ended))
	}
}

// stepEnded tells, once tx commits, that a's step execution ended with
// outcome (and stepErr): see [core.stepDone].
func (s *core) stepEnded(ctx context.Context, tx *postgres.Tx, a *attempt, outcome string, stepErr json.RawMessage) {
	tx.AfterCommit(s.stepDone(ctx, finishedStep{
		run: a.state.Run, execID: a.execID, key: a.key, name: a.step.Name, started: a.started,
		attempts: a.number, outcome: outcome, err: stepErr,
	}))
}

// endRunSpan emits, once tx commits, the span of run, which has just ended
// (as FinishRun returned it): from its creation to its end, with the span
// id chosen when it was created, a child of the span it was started in.
func (s *core) endRunSpan(ctx context.Context, tx *postgres.Tx, run workflow.Run) {
	tx.AfterCommit(func() {
		sc := runSpan(run)
		if !sc.IsValid() {
			return
		}
		opts := []trace.SpanStartOption{trace.WithTimestamp(run.CreatedAt)}
		if parent, err := trace.SpanIDFromHex(run.Trace.ParentSpanID); err == nil {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc.WithSpanID(parent))
		} else {
			opts = append(opts, trace.WithNewRoot())
		}
		ctx := tracing.WithIDs(ctx, sc.TraceID(), sc.SpanID())
		_, span := s.tracer.Start(ctx, "run "+run.Workflow, opts...)
		if span.IsRecording() {
			span.SetAttributes(append(runAttributes(run, 1), attrOutcome.String(string(run.Status)))...)
			if run.Status != workflow.RunSucceeded {
				span.SetStatus(codes.Error, errorMessage(run.Error))
			}
		}
		ended := time.Now()
		if run.FinishedAt != nil {
			ended = *run.FinishedAt
		}
		span.End(trace.WithTimestamp(ended))
	})
}
