-- name: RunInsert :one
-- Inserts a run; with an idempotency key already taken it inserts nothing and
-- returns no row, and the caller reads the existing run instead.
INSERT INTO runs (
    id, workflow_name, workflow_version, status, input, context,
    parent_run_id, parent_step_execution_id, depth, idempotency_key, request_hash,
    schedule_id, traceparent, trace_parent_span_id, tracestate, deadline
) VALUES (
    @id, @workflow_name, @workflow_version, 'pending', @input, '{}',
    @parent_run_id, @parent_step_execution_id, @depth, @idempotency_key, @request_hash,
    @schedule_id, @traceparent, @trace_parent_span_id, @tracestate,
    -- The run-level timeout counts from the database's clock, like leases.
    now() + sqlc.narg('timeout_ms')::bigint * interval '1 millisecond'
)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *;

-- name: RunGetByID :one
SELECT * FROM runs WHERE id = @id;

-- name: RunGetByIdempotencyKey :one
SELECT * FROM runs WHERE idempotency_key = @idempotency_key;

-- name: RunList :many
-- Lists run summaries newest first; the large JSON columns are left out.
SELECT id, workflow_name, workflow_version, status, attempt, parent_run_id,
       schedule_id, error, created_at, updated_at, started_at, finished_at
FROM runs
WHERE (sqlc.narg('workflow')::text IS NULL OR workflow_name = sqlc.narg('workflow'))
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (sqlc.narg('parent')::uuid IS NULL OR parent_run_id = sqlc.narg('parent'))
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after'))
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before'))
  AND (sqlc.narg('cursor_created_at')::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg('cursor_created_at'), sqlc.narg('cursor_id')::uuid))
ORDER BY created_at DESC, id DESC
LIMIT @max;

-- name: HistoryEventAppendMany :exec
-- Appends events to the histories of their runs, in the order given. Empty
-- step keys and zero attempts are stored as NULL.
INSERT INTO history_events (run_id, type, step_key, attempt, data)
SELECT (@run_ids::uuid[])[i], (@types::text[])[i], NULLIF((@step_keys::text[])[i], ''),
       NULLIF((@attempts::integer[])[i], 0), (@datas::jsonb[])[i]
FROM generate_series(1, cardinality(@run_ids::uuid[])) AS i
ORDER BY i;

-- name: HistoryEventList :many
SELECT * FROM history_events
WHERE run_id = @run_id AND id > @after
ORDER BY id
LIMIT @max;

-- name: StepExecutionListByRun :many
SELECT * FROM step_executions
WHERE run_id = @run_id
  AND (sqlc.narg('cursor_created_at')::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg('cursor_created_at'), sqlc.narg('cursor_id')::uuid))
ORDER BY created_at, id
LIMIT @max;

-- name: StepAttemptListByExecutions :many
SELECT * FROM step_attempts
WHERE step_execution_id = ANY (@step_execution_ids::uuid[])
ORDER BY step_execution_id, attempt;

-- name: RunGetMany :many
SELECT * FROM runs WHERE id = ANY (@ids::uuid[]);

-- name: RunStart :execrows
-- Marks a run running as its first step starts, or again after a wait.
UPDATE runs
SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now()
WHERE id = @id AND status IN ('pending', 'running', 'waiting');

-- name: RunSetWaiting :execrows
-- Marks a run waiting unless one of its lanes still has a step to start or
-- make (an advance or invoke work item).
UPDATE runs SET status = 'waiting', updated_at = now()
WHERE runs.id = @id AND status IN ('running', 'waiting')
  AND NOT EXISTS (SELECT 1 FROM work_items o WHERE o.run_id = runs.id AND o.kind IN ('advance', 'invoke'));

-- name: RunMergeContext :one
-- Merges a step's context answer into the run's context (top-level keys
-- replaced), returning the result.
UPDATE runs SET context = context || @patch::jsonb, updated_at = now()
WHERE id = @id AND status IN ('running', 'waiting')
RETURNING context;

-- name: RunFinish :one
-- Ends an unfinished run and returns it; a run finished already is left
-- alone, and no row is returned.
UPDATE runs
SET status = @status, output = @output, error = @error, finished_at = now(), updated_at = now()
WHERE id = @id AND status IN ('pending', 'running', 'waiting', 'compensating')
RETURNING *;

-- name: SettingGet :one
SELECT value FROM settings WHERE key = @key;

-- name: SettingInsertIfAbsent :exec
INSERT INTO settings (key, value) VALUES (@key, @value) ON CONFLICT (key) DO NOTHING;

-- name: RunListActiveChildren :many
SELECT id FROM runs
WHERE parent_run_id = @parent_run_id AND status IN ('pending', 'running', 'waiting', 'compensating')
ORDER BY created_at, id;

-- name: RunStartCompensating :execrows
-- Moves a failing run to compensating, keeping the failure as its error.
UPDATE runs SET status = 'compensating', error = @error, updated_at = now()
WHERE id = @id AND status IN ('pending', 'running', 'waiting');
