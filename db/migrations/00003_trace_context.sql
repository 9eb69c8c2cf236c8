-- +goose Up
-- A run's trace context, chosen when the run is created, so that every
-- worker that advances the run continues the same trace (docs/observability.md).
ALTER TABLE runs
    -- traceparent is the run's own span as a W3C traceparent: the trace id
    -- (the caller's, the parent run's, or a new one), the run span's id and
    -- the trace flags. The spans of the run's steps are its children; the
    -- run span itself is emitted, with this id, when the run ends.
    ADD COLUMN traceparent text,
    -- trace_parent_span_id is the span the run's span is a child of, in hex:
    -- the caller's span (the traceparent sent with POST /v1/runs) or the
    -- parent run's call_workflow step. NULL when the run began its trace.
    ADD COLUMN trace_parent_span_id text,
    -- tracestate is the W3C tracestate that came with the caller's
    -- traceparent, passed on with every step request.
    ADD COLUMN tracestate text;

-- +goose Down
ALTER TABLE runs
    DROP COLUMN tracestate,
    DROP COLUMN trace_parent_span_id,
    DROP COLUMN traceparent;
