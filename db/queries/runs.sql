-- name: RunInsert :one
-- Inserts a run; with an idempotency key already taken it inserts nothing and
-- returns no row, and the caller reads the existing run instead.
INSERT INTO runs (
    id, workflow_name, workflow_version, status, input, context,
    parent_run_id, parent_step_execution_id, depth, idempotency_key, request_hash,
    schedule_id, traceparent, trace_parent_span_id, tracestate, history_cap, priority, deadline
) VALUES (
    @id, @workflow_name, @workflow_version, 'pending', @input, '{}',
    @parent_run_id, @parent_step_execution_id, @depth, @idempotency_key, @request_hash,
    @schedule_id, @traceparent, @trace_parent_span_id, @tracestate, @history_cap, @priority,
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
-- Appends events to the histories of their runs, in the order given, and
-- counts them in their runs' history_count — all but those of steps inside
-- foreach items (see workflow_versions.item_pattern) — so that a run whose
-- history they would take past its cap makes the statement fail (the
-- runs_history_cap constraint). Empty step keys and zero attempts are
-- stored as NULL.
WITH events AS (
    SELECT i, (@run_ids::uuid[])[i] AS run_id, (@types::text[])[i] AS type,
           NULLIF((@step_keys::text[])[i], '') AS step_key, NULLIF((@attempts::integer[])[i], 0) AS attempt,
           (@datas::jsonb[])[i] AS data
    FROM generate_series(1, cardinality(@run_ids::uuid[])) AS i
), appended AS (
    INSERT INTO history_events (run_id, type, step_key, attempt, data)
    SELECT e.run_id, e.type, e.step_key, e.attempt, e.data FROM events e ORDER BY e.i
), counts AS (
    SELECT e.run_id,
           count(*) FILTER (WHERE v.item_pattern IS NULL OR e.step_key IS NULL OR e.step_key !~ v.item_pattern)::integer AS n
    FROM events e
    JOIN runs r ON r.id = e.run_id
    JOIN workflow_versions v ON v.workflow_name = r.workflow_name AND v.version = r.workflow_version
    GROUP BY e.run_id
)
UPDATE runs SET history_count = runs.history_count + counts.n
FROM counts
WHERE runs.id = counts.run_id;

-- name: RunListPastHistoryCap :many
-- Of the runs that events were to be appended to (with HistoryEventAppendMany),
-- those whose history the events would take past its cap: the events
-- counted as HistoryEventAppendMany counts them, but the one that ends a run
-- (ends), for which the last event of a history is kept.
WITH events AS (
    SELECT (@run_ids::uuid[])[i] AS run_id, NULLIF((@step_keys::text[])[i], '') AS step_key, (@ends::boolean[])[i] AS ends
    FROM generate_series(1, cardinality(@run_ids::uuid[])) AS i
)
SELECT r.id FROM runs r
JOIN workflow_versions v ON v.workflow_name = r.workflow_name AND v.version = r.workflow_version
JOIN events e ON e.run_id = r.id
GROUP BY r.id
HAVING r.history_count + count(*) FILTER (WHERE NOT e.ends AND (v.item_pattern IS NULL OR e.step_key IS NULL OR e.step_key !~ v.item_pattern))
       >= r.history_cap;

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
-- Ends an unfinished run and returns it, with the flow-control keys whose
-- places it gave back (its queue entries go too); a run finished already
-- is left alone, and no row is returned.
WITH finished AS (
    UPDATE runs
    SET status = @status, output = @output, error = @error, blocked = NULL, finished_at = now(), updated_at = now()
    WHERE id = @id AND status IN ('queued', 'pending', 'running', 'waiting', 'compensating')
    RETURNING *
), released AS (
    DELETE FROM flow_slots s WHERE s.run_id = (SELECT f.id FROM finished f) RETURNING s.key
), unqueued AS (
    DELETE FROM flow_queue q WHERE q.run_id = (SELECT f.id FROM finished f)
)
SELECT finished.*, ARRAY(SELECT DISTINCT key FROM released)::text[] AS released_keys FROM finished;

-- name: SettingGet :one
SELECT value FROM settings WHERE key = @key;

-- name: SettingInsertIfAbsent :exec
INSERT INTO settings (key, value) VALUES (@key, @value) ON CONFLICT (key) DO NOTHING;

-- name: RunListActiveChildren :many
SELECT id FROM runs
WHERE parent_run_id = @parent_run_id AND status IN ('queued', 'pending', 'running', 'waiting', 'compensating')
ORDER BY created_at, id;

-- name: RunStartCompensating :execrows
-- Moves a failing run to compensating, keeping the failure as its error.
UPDATE runs SET status = 'compensating', error = @error, updated_at = now()
WHERE id = @id AND status IN ('pending', 'running', 'waiting');

-- name: RunDeleteExpired :execrows
-- Deletes up to max finished runs whose retention has passed — their
-- workflow's own, else default_ms — with every row that references them
-- (ON DELETE CASCADE: steps, attempts, history, waits, work; a child run
-- loses its link, a schedule firing its run). Each workflow's runs that
-- finished first go first, by the index on (workflow_name, finished_at).
-- Runs that another transaction holds are skipped, so that workers share
-- the work and wait for no one. A run with a child still going is kept
-- until the child has finished.
DELETE FROM runs
WHERE runs.id = ANY (ARRAY(
    SELECT expired.id FROM workflows w
    CROSS JOIN LATERAL (
        SELECT r.id FROM runs r
        WHERE r.workflow_name = w.name AND r.finished_at IS NOT NULL
          AND r.finished_at < now() - COALESCE(w.retention_ms, sqlc.arg('default_ms')::bigint) * interval '1 millisecond'
          AND r.status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'compensated', 'compensation_failed')
          AND NOT EXISTS (SELECT 1 FROM runs c
                          WHERE c.parent_run_id = r.id AND c.status IN ('queued', 'pending', 'running', 'waiting', 'compensating'))
        ORDER BY r.finished_at
        LIMIT @max
        FOR UPDATE OF r SKIP LOCKED
    ) expired
    LIMIT @max
));

-- name: RunLockToDelete :one
-- Locks a run to delete it, saying whether it has a child still going.
SELECT status, EXISTS (SELECT 1 FROM runs c
                       WHERE c.parent_run_id = runs.id AND c.status IN ('queued', 'pending', 'running', 'waiting', 'compensating'))::boolean AS active_children
FROM runs WHERE runs.id = @id FOR UPDATE;

-- name: RunDelete :execrows
-- Deletes a run with every row that references it (see RunDeleteExpired).
DELETE FROM runs WHERE id = @id;

-- name: RunCountByStatus :many
-- Counts the runs of each status that match the filters, each count
-- stopping at max: a page showing counts costs at most max index entries
-- per status, however many runs there are (see docs/dashboard.md).
SELECT s.status::text AS status,
       (SELECT count(*) FROM (
            SELECT 1 FROM runs
            WHERE runs.status = s.status
              AND (sqlc.narg('workflow')::text IS NULL OR workflow_name = sqlc.narg('workflow'))
              AND (sqlc.narg('parent')::uuid IS NULL OR parent_run_id = sqlc.narg('parent'))
              AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after'))
              AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before'))
            LIMIT @max) AS bounded)::integer AS n
FROM unnest(@statuses::text[]) AS s(status);
