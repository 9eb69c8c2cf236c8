package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/durablehq/durable/internal/tracing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestEnabled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		require.Equal(t, c.want, tracing.Enabled(env(c.env)), "%v", c.env)
	}
}

// TestSetupWithoutEndpoint: without an endpoint nothing is set up, and
// spans carry their parent's context on.
func TestSetupWithoutEndpoint(t *testing.T) {
	t.Parallel()
	tp, shutdown, err := tracing.Setup(context.Background(), "durable-test", env(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.IsType(t, noop.TracerProvider{}, tp)
	require.NoError(t, shutdown(context.Background()))
}

// TestSetupExports: with an endpoint, spans reach it over OTLP/HTTP by the
// time the shutdown returns.
func TestSetupExports(t *testing.T) {
	var posts atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
			posts.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer receiver.Close()
	// The exporter reads its settings from the environment itself.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	ctx := context.Background()
	tp, shutdown, err := tracing.Setup(ctx, "durable-test", env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.URL}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.IsType(t, &sdktrace.TracerProvider{}, tp)
	_, span := tp.Tracer("test").Start(ctx, "one")
	span.End()
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, shutdown(stop))
	require.Positive(t, posts.Load(), "no spans were exported")
}

// TestIDGenerator: the ids chosen with WithIDs go to the first span started
// in that context, a root or a child, and to no other.
func TestIDGenerator(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithIDGenerator(tracing.IDGenerator()))
	tracer := tp.Tracer("test")
	ctx := context.Background()
	traceID, spanID := tracing.NewTraceID(), tracing.NewSpanID()

	rootCtx, root := tracer.Start(tracing.WithIDs(ctx, traceID, spanID), "root")
	require.Equal(t, traceID, root.SpanContext().TraceID())
	require.Equal(t, spanID, root.SpanContext().SpanID())
	_, child := tracer.Start(rootCtx, "child")
	require.Equal(t, traceID, child.SpanContext().TraceID())
	require.NotEqual(t, spanID, child.SpanContext().SpanID(), "a span started from the chosen span's context gets an id of its own")

	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: tracing.NewSpanID(), TraceFlags: trace.FlagsSampled, Remote: true})
	other := tracing.NewSpanID()
	_, remoteChild := tracer.Start(tracing.WithIDs(trace.ContextWithRemoteSpanContext(ctx, parent), traceID, other), "remote child")
	require.Equal(t, other, remoteChild.SpanContext().SpanID(), "a child of a remote parent gets the chosen span id")
	require.Equal(t, traceID, remoteChild.SpanContext().TraceID())

	_, random := tracer.Start(ctx, "random")
	require.True(t, random.SpanContext().IsValid())
	require.NotEqual(t, traceID, random.SpanContext().TraceID())
}
