-- name: FlowRunEnter :one
-- Gives a new run its places under its workflow's concurrency limits, or
-- queues it (see flow_run_enter in migration 7).
SELECT flow_run_enter(@run_id::uuid, @keys::text[], @limits::integer[], @priority::smallint)::boolean AS entered;

-- name: FlowAdmit :many
-- Begins the queued runs that places freed under keys make room for.
SELECT flow_admit(@keys::text[])::uuid AS run_id;

-- name: FlowStepEnter :one
-- Takes an attempt's places under its step's concurrency limits, or
-- answers the key that is full.
SELECT COALESCE(flow_step_enter(@holder::uuid, @run_id::uuid, @keys::text[], @limits::integer[], @lease_ms::bigint), '')::text AS full_key;

-- name: FlowSlotDeleteByHolder :execrows
-- Gives an attempt's places back once its request has ended.
DELETE FROM flow_slots WHERE holder = @holder AND expires_at IS NOT NULL;

-- name: FlowTake :one
-- Takes a token from a rate limit's bucket, or answers how many
-- milliseconds until one is there.
SELECT flow_take(@key::text, @max_tokens::integer, @period_ms::bigint)::bigint AS wait_ms;

-- name: FlowBucketPause :exec
-- An endpoint answered 429 with Retry-After: its bucket gives no token
-- until then, and starts empty.
INSERT INTO flow_buckets (key, tokens, refilled_at, paused_until)
VALUES (@key, 0, now() + sqlc.arg('pause_ms')::bigint * interval '1 millisecond',
        now() + sqlc.arg('pause_ms')::bigint * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE
SET tokens = 0, refilled_at = EXCLUDED.refilled_at,
    paused_until = GREATEST(flow_buckets.paused_until, EXCLUDED.paused_until);

-- name: FlowDebounce :one
-- Folds a start into the pending run of its debounce key, if there is one
-- that has not begun (see flow_debounce in migration 7).
SELECT COALESCE(flow_debounce(@workflow_name::text, @key::text, @input::jsonb, @period_ms::bigint, @max_wait_ms::bigint),
                '00000000-0000-0000-0000-000000000000')::uuid AS run_id;

-- name: FlowDebounceRecord :exec
-- Records the run later starts with a debounce key may fold into.
INSERT INTO flow_debounce (workflow_name, key, run_id, first_at)
VALUES (@workflow_name, @key, @run_id, now())
ON CONFLICT (workflow_name, key) DO UPDATE SET run_id = EXCLUDED.run_id, first_at = EXCLUDED.first_at;

-- name: RunSetBlocked :exec
-- Says why a run is not moving (NULL: nothing holds it up).
UPDATE runs SET blocked = sqlc.narg('blocked')::jsonb WHERE id = @id;

-- name: FlowStats :one
-- What flow control holds up now, for the metrics: queued runs, and runs
-- whose step waits for a concurrency or a rate limit.
SELECT (SELECT count(*) FROM runs WHERE status = 'queued')::bigint AS queued,
       (SELECT count(*) FROM runs WHERE blocked ->> 'reason' = 'concurrency')::bigint AS concurrency,
       (SELECT count(*) FROM runs WHERE blocked ->> 'reason' = 'throttled')::bigint AS throttled;

-- name: StepExecutionInsertPending :exec
-- Creates a call step's execution that waits for its flow-control limits
-- before its first attempt: pending, at attempt 0, so that the invoke
-- item pointed at it makes attempt 1 when they let it.
INSERT INTO step_executions (id, run_id, parent_id, step_key, step_name, step_type, status, attempt, webhook_id, input, started_at)
SELECT @id, @run_id,
       (SELECT p.id FROM step_executions p WHERE p.run_id = @run_id AND p.step_key = sqlc.narg('parent_key')),
       @step_key, @step_name, 'call', 'pending', 0, @webhook_id, @input, now();
