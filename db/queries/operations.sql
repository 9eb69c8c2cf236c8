-- name: StepExecutionListForRetry :many
-- What planning a run's retry needs of each of its step executions.
SELECT step_key, status, COALESCE(lanes_started, 0)::integer AS lanes_started, COALESCE(lanes_total, 0)::integer AS lanes_total
FROM step_executions WHERE run_id = @run_id;

-- name: RunRetry :one
-- Puts a retryable run back to running with its edited input and context,
-- one attempt more and a new deadline, if it is still in the status the
-- retry was planned for and its history has room for the retry's events.
UPDATE runs
SET status = 'running', attempt = attempt + 1, input = @input, context = @context,
    output = NULL, error = NULL, finished_at = NULL, updated_at = now(),
    deadline = CASE WHEN sqlc.arg('timeout_ms')::bigint > 0
                    THEN now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond' END
WHERE id = @id AND status = @expected AND history_count + 2 < history_cap
RETURNING *;

-- name: StepExecutionDeleteByKeys :exec
-- Deletes step executions with everything nested in them (their lanes and
-- steps, attempts, waits, work: ON DELETE CASCADE).
DELETE FROM step_executions WHERE run_id = @run_id AND step_key = ANY (@keys::text[]);

-- name: LaneReopenMany :exec
-- Makes lanes that did not succeed run again.
UPDATE step_executions
SET status = 'running', output = NULL, error = NULL, finished_at = NULL, updated_at = now()
WHERE run_id = @run_id AND step_key = ANY (@keys::text[]) AND step_type = 'lane';

-- name: BlockReopen :one
-- Makes a parallel or foreach step run again for its lanes reopened: its
-- attempt runs again, and only the lanes that succeeded count as ended.
WITH block AS (
    UPDATE step_executions b
    SET status = 'running', output = NULL, error = NULL, finished_at = NULL, updated_at = now(), lanes_failed = 0,
        lanes_ended = (SELECT count(*) FROM step_executions l
                       WHERE l.parent_id = b.id AND l.step_type = 'lane' AND l.status = 'succeeded')
    WHERE b.run_id = @run_id AND b.step_key = @step_key
    RETURNING b.id, b.attempt
), attempt AS (
    UPDATE step_attempts a SET status = 'running', error = NULL, finished_at = NULL
    FROM block WHERE a.step_execution_id = block.id AND a.attempt = block.attempt
)
SELECT id FROM block;

-- name: OperationInsert :one
INSERT INTO operations (id, kind, state, filter, reason, created_by)
VALUES (@id, @kind, 'pending', @filter, @reason, @created_by)
RETURNING *;

-- name: OperationGet :one
SELECT * FROM operations WHERE id = @id;

-- name: OperationList :many
SELECT * FROM operations
WHERE (sqlc.narg('cursor_created_at')::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg('cursor_created_at'), sqlc.narg('cursor_id')::uuid))
ORDER BY created_at DESC, id DESC
LIMIT @max;

-- name: OperationCancel :one
UPDATE operations
SET state = 'cancelled', finished_at = now(), updated_at = now(), lease_owner = NULL, lease_until = NULL
WHERE id = @id AND state IN ('pending', 'running')
RETURNING *;

-- name: OperationClaim :one
-- Leases the oldest operation that is pending, or running with its lease
-- ended (its worker was lost), to owner.
UPDATE operations
SET state = 'running', lease_owner = @owner, updated_at = now(),
    lease_until = now() + sqlc.arg('lease_ms')::bigint * interval '1 millisecond'
WHERE id = (
    SELECT o.id FROM operations o
    WHERE o.state IN ('pending', 'running') AND (o.lease_until IS NULL OR o.lease_until < now())
    ORDER BY o.created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING *;

-- name: OperationLock :one
-- Locks an operation its owner holds, extending the lease; no row when the
-- operation was cancelled or its lease taken over.
UPDATE operations
SET lease_until = now() + sqlc.arg('lease_ms')::bigint * interval '1 millisecond', updated_at = now()
WHERE id = @id AND lease_owner = @owner AND state = 'running'
RETURNING *;

-- name: OperationSetMatched :exec
UPDATE operations SET matched = @matched, updated_at = now() WHERE id = @id;

-- name: OperationProgress :exec
-- Counts a batch and moves the cursor past it, in the batch's transaction.
UPDATE operations
SET done = done + @done, skipped = skipped + @skipped, failed = failed + @failed,
    failures = (SELECT COALESCE(jsonb_agg(f), '[]') FROM (
                  SELECT f FROM jsonb_array_elements(failures || @new_failures::jsonb) f LIMIT 100) x),
    cursor_created_at = sqlc.narg('cursor_created_at'), cursor_id = sqlc.narg('cursor_id'), updated_at = now()
WHERE id = @id;

-- name: OperationFinish :exec
UPDATE operations
SET state = 'succeeded', finished_at = now(), updated_at = now(), lease_owner = NULL, lease_until = NULL
WHERE id = @id AND lease_owner = @owner AND state = 'running';

-- name: RunCountMatching :one
-- How many runs a bulk operation's filter matches among those created
-- before created_before_op.
SELECT count(*) FROM runs
WHERE created_at < @created_before_op
  AND (sqlc.narg('workflow')::text IS NULL OR workflow_name = sqlc.narg('workflow'))
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (sqlc.narg('parent')::uuid IS NULL OR parent_run_id = sqlc.narg('parent'))
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after'))
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before'));

-- name: RunListMatchingBatch :many
-- The next runs a bulk operation's filter matches, after its cursor, in
-- (created_at, id) order.
SELECT id, created_at FROM runs
WHERE created_at < @created_before_op
  AND (sqlc.narg('workflow')::text IS NULL OR workflow_name = sqlc.narg('workflow'))
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (sqlc.narg('parent')::uuid IS NULL OR parent_run_id = sqlc.narg('parent'))
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after'))
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before'))
  AND (sqlc.narg('cursor_created_at')::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg('cursor_created_at'), sqlc.narg('cursor_id')::uuid))
ORDER BY created_at, id
LIMIT @max;
