-- name: StepExecutionInsert :exec
-- Creates a running step execution together with its first attempt.
WITH execution AS (
    INSERT INTO step_executions (
        id, run_id, parent_id, step_key, step_name, step_type, status, attempt,
        webhook_id, input, deadline, started_at
    ) VALUES (
        @id, @run_id, sqlc.narg('parent_id'), @step_key, @step_name, @step_type, 'running', 1,
        @webhook_id, @input, now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond', now()
    )
    RETURNING id, run_id
)
INSERT INTO step_attempts (step_execution_id, attempt, run_id, status, worker_id, callback_hash)
SELECT id, 1, run_id, 'running', @worker_id, @callback_hash FROM execution;

-- name: StepExecutionGet :one
SELECT * FROM step_executions WHERE id = @id;

-- name: StepExecutionStartAttempt :execrows
-- Starts attempt number attempt of a step execution whose previous attempt
-- failed, timed out or was abandoned.
UPDATE step_executions
SET status = 'running', attempt = @attempt, updated_at = now(),
    deadline = now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond'
WHERE id = @id AND attempt = @previous_attempt AND status IN ('pending', 'running', 'waiting');

-- name: StepFinish :one
-- Records how a step's attempt ended and, in the same statement, the step
-- execution's final outcome, both fenced to the attempt in progress. It
-- returns how many of the two rows it changed: 2, or the attempt was stale.
WITH attempt AS (
    UPDATE step_attempts
    SET status = @attempt_status, http_status = sqlc.narg('http_status'), error = @error, logs = @logs,
        finished_at = now()
    WHERE step_execution_id = @id AND step_attempts.attempt = @attempt AND status IN ('running', 'accepted')
    RETURNING 1
), execution AS (
    UPDATE step_executions
    SET status = @status, output = @output, error = @error, finished_at = now(), updated_at = now()
    WHERE step_executions.id = @id AND step_executions.attempt = @attempt AND status IN ('pending', 'running', 'waiting')
    RETURNING 1
)
SELECT ((SELECT count(*) FROM attempt) + (SELECT count(*) FROM execution))::integer AS changed;

-- name: StepExecutionFinish :execrows
-- Records a step execution's final outcome, fenced to its current attempt.
UPDATE step_executions
SET status = @status, output = @output, error = @error,
    finished_at = now(), updated_at = now()
WHERE id = @id AND attempt = @attempt AND status IN ('pending', 'running', 'waiting');

-- name: StepExecutionAbandon :one
-- Records that the engine cut an attempt short: the execution waits for its
-- next attempt, and the abandoned count grows.
UPDATE step_executions
SET status = 'pending', abandoned = abandoned + 1, updated_at = now()
WHERE id = @id AND attempt = @attempt AND status IN ('running', 'waiting')
RETURNING abandoned;

-- name: StepExecutionRetryLater :execrows
UPDATE step_executions
SET status = 'pending', error = @error, updated_at = now()
WHERE id = @id AND attempt = @attempt AND status IN ('running', 'waiting');

-- name: StepExecutionPark :one
-- Parks a step whose endpoint answered 202 until its callback or deadline.
UPDATE step_executions
SET status = 'waiting', updated_at = now(),
    deadline = now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond'
WHERE id = @id AND attempt = @attempt AND status = 'running'
RETURNING deadline;

-- name: StepExecutionExtendDeadline :one
UPDATE step_executions
SET deadline = now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond', updated_at = now()
WHERE id = @id AND attempt = @attempt AND status IN ('running', 'waiting')
RETURNING deadline;

-- name: StepExecutionCancelByRun :exec
UPDATE step_executions
SET status = @status, finished_at = now(), updated_at = now()
WHERE run_id = @run_id AND status IN ('pending', 'running', 'waiting');

-- name: StepOutputsByRun :many
-- The outputs of a run's succeeded steps with the given names, for
-- expressions that refer to steps.NAME.
SELECT step_name, output FROM step_executions
WHERE run_id = @run_id AND status = 'succeeded' AND step_name = ANY (@names::text[]);

-- name: StepAttemptInsert :exec
INSERT INTO step_attempts (step_execution_id, attempt, run_id, status, worker_id, callback_hash)
VALUES (@step_execution_id, @attempt, @run_id, 'running', @worker_id, @callback_hash);

-- name: StepAttemptGet :one
SELECT * FROM step_attempts WHERE step_execution_id = @step_execution_id AND attempt = @attempt;

-- name: StepAttemptFinish :execrows
-- Records how an attempt ended, fenced to an attempt still in progress.
UPDATE step_attempts
SET status = @status, http_status = sqlc.narg('http_status'), error = @error, logs = @logs,
    finished_at = now()
WHERE step_execution_id = @step_execution_id AND attempt = @attempt
  AND status IN ('running', 'accepted');

-- name: StepAttemptCancelByRun :exec
UPDATE step_attempts
SET status = 'cancelled', finished_at = now()
WHERE run_id = @run_id AND status IN ('running', 'accepted');

-- name: StepExecutionLock :one
-- Locks a step execution and says whether its deadline has passed, by the
-- database's clock.
SELECT sqlc.embed(step_executions), (deadline IS NOT NULL AND deadline <= now())::boolean AS expired
FROM step_executions WHERE id = @id FOR UPDATE;
