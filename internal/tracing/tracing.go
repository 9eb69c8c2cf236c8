// Package tracing sets up OpenTelemetry traces for a Durable process: an
// OTLP/HTTP exporter when an endpoint is configured, nothing otherwise.
//
// Configuration is OpenTelemetry's own: OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns tracing on, and every other
// OTEL_* variable the SDK knows (headers, timeouts, compression, the
// sampler, the batch processor, resource attributes, OTEL_SERVICE_NAME) is
// read by the SDK itself. Without an endpoint the provider is a no-op one,
// whose spans cost next to nothing and carry their parent's context on.
//
// A run outlives any one process, so its spans are made by whichever
// process sees each of them end, with ids chosen in advance and stored (see
// [WithIDs]); [IDGenerator] is the generator that honours them.
package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Propagator returns the W3C TraceContext propagator: traceparent and
// tracestate, in and out.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Enabled reports whether the environment asks for traces to be exported:
// an OTLP endpoint is set, and neither OTEL_SDK_DISABLED nor
// OTEL_TRACES_EXPORTER=none turns them off.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup returns the tracer provider of the process named service
// ("durable-api", "durable-worker") and the function that flushes the spans
// not exported yet and stops it. getenv decides whether traces are exported
// (see [Enabled]); the exporter and the SDK read the rest of their settings
// from the process's environment. Export failures are logged to logger.
func Setup(ctx context.Context, service string, getenv func(string) string, logger *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	if !Enabled(getenv) {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// The service name comes first so that OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES, detected after it, override it.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("trace resource: %w", err)
	}
	// The SDK reports export failures through the global error handler,
	// which would print them with the log package: they go to the
	// process's structured log instead.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", "error", err)
	}))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(IDGenerator()),
	)
	return tp, tp.Shutdown, nil
}

// chosen is a span's pre-chosen ids, used by the first span started in
// the context that holds them: a span started from the context of that
// span gets ids of its own.
type chosen struct {
	traceID trace.TraceID
	spanID  trace.SpanID
	used    atomic.Bool
}

type chosenKey struct{}

// WithIDs returns a copy of ctx in which the next span started gets spanID
// (and traceID, when it begins a trace rather than continuing its parent's)
// instead of random ids, under a provider that uses [IDGenerator]. It is how
// a span that began in one process, with its id stored, ends in another.
func WithIDs(ctx context.Context, traceID trace.TraceID, spanID trace.SpanID) context.Context {
	return context.WithValue(ctx, chosenKey{}, &chosen{traceID: traceID, spanID: spanID})
}

// IDGenerator returns an ID generator that gives a span the ids [WithIDs]
// chose for it, and random ones otherwise.
func IDGenerator() sdktrace.IDGenerator { return idGenerator{} }

type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if c := take(ctx); c != nil && c.traceID.IsValid() && c.spanID.IsValid() {
		return c.traceID, c.spanID
	}
	return NewTraceID(), NewSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if c := take(ctx); c != nil && c.spanID.IsValid() {
		return c.spanID
	}
	return NewSpanID()
}

func take(ctx context.Context) *chosen {
	c, _ := ctx.Value(chosenKey{}).(*chosen)
	if c == nil || c.used.Swap(true) {
		return nil
	}
	return c
}

// NewTraceID returns a random, valid trace id.
func NewTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

// NewSpanID returns a random, valid span id.
func NewSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
