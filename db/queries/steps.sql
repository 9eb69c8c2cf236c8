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
-- The outputs of a run's succeeded steps with the given keys, for
-- expressions that refer to steps.NAME. One index lookup per key: a plan
-- that scanned the run's steps for the keys would grow with every foreach
-- item the run has done.
SELECT s.step_key, s.output
FROM unnest(@keys::text[]) AS k(key),
     LATERAL (SELECT e.step_key, e.output FROM step_executions e
              WHERE e.run_id = @run_id AND e.step_key = k.key AND e.status = 'succeeded'
              LIMIT 1) s;

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

-- name: StepSucceedAndContinue :batchone
-- The hot path of a run, as one statement: the attempt and its step
-- execution succeed, the step's context answer merges into the run's
-- context, the run's next step begins (execution and first attempt), the
-- work item moves on to it under the same lease, and the history records
-- both steps. Each part runs only when the one before it matched — the work
-- item's lease (locked first, as every transition locks it), then the
-- attempt and the execution in progress — so a stale or fenced-off result
-- changes nothing and raises no error: many of these go into one
-- transaction (group commit), and a refused one must not undo the others.
-- The two history events count against the run's history cap (a step in a
-- foreach item never takes this path): when they would leave no room for
-- the event that ends the run (history_count + 2 must stay below
-- history_cap, as the runs_history_cap constraint wants), the statement
-- changes nothing and says so (full), and the general path ends the run at
-- its cap.
-- It returns recorded 1 when the result is recorded — by this statement, or
-- by an earlier sending of the same one whose commit the sender did not
-- hear of (the next execution's id is the sender's own, so its existence
-- proves it) — and 0 when the result was refused.
WITH lease AS (
    SELECT work_items.id, work_items.run_id FROM work_items
    WHERE work_items.id = @work_id AND work_items.lease_token = @lease_token
    FOR UPDATE
), room AS (
    SELECT runs.id FROM runs
    WHERE runs.id = (SELECT run_id FROM lease) AND runs.history_count + 2 < runs.history_cap
), finished_attempt AS (
    UPDATE step_attempts
    SET status = 'succeeded', http_status = sqlc.narg('http_status'), logs = @logs, finished_at = now()
    WHERE step_attempts.step_execution_id = @id AND step_attempts.attempt = @attempt
      AND step_attempts.status IN ('running', 'accepted')
      AND EXISTS (SELECT 1 FROM room)
    RETURNING step_attempts.run_id
), finished_execution AS (
    UPDATE step_executions
    SET status = 'succeeded', output = @output, finished_at = now(), updated_at = now()
    WHERE step_executions.id = @id AND step_executions.attempt = @attempt
      AND step_executions.status IN ('pending', 'running', 'waiting')
      AND EXISTS (SELECT 1 FROM finished_attempt)
    RETURNING step_executions.run_id
), work AS (
    UPDATE work_items
    SET kind = 'invoke', step_execution_id = @next_id, attempt = 1, after_step = NULL,
        visible_at = now() + sqlc.arg('lease_ms')::bigint * interval '1 millisecond'
    WHERE work_items.id = (SELECT id FROM lease) AND EXISTS (SELECT 1 FROM finished_execution)
    RETURNING work_items.id
), merged AS (
    UPDATE runs
    SET context = CASE WHEN sqlc.narg('context_patch')::jsonb IS NULL THEN context ELSE context || sqlc.narg('context_patch')::jsonb END,
        updated_at = CASE WHEN sqlc.narg('context_patch')::jsonb IS NULL THEN updated_at ELSE now() END,
        history_count = history_count + 2
    WHERE runs.id = (SELECT run_id FROM finished_execution)
    RETURNING runs.id
), next_execution AS (
    INSERT INTO step_executions (
        id, run_id, parent_id, step_key, step_name, step_type, status, attempt, webhook_id, input, deadline, started_at
    )
    SELECT @next_id, run_id,
           (SELECT p.id FROM step_executions p WHERE p.run_id = finished_execution.run_id AND p.step_key = sqlc.narg('next_parent_key')),
           @next_key, @next_name, @next_type, 'running', 1, @next_webhook_id, @next_input,
           now() + sqlc.arg('next_timeout_ms')::bigint * interval '1 millisecond', now()
    FROM finished_execution
    RETURNING step_executions.id, step_executions.run_id
), next_attempt AS (
    INSERT INTO step_attempts (step_execution_id, attempt, run_id, status, worker_id, callback_hash)
    SELECT next_execution.id, 1, next_execution.run_id, 'running', @worker_id, @callback_hash FROM next_execution
), history AS (
    INSERT INTO history_events (run_id, type, step_key, attempt, data)
    SELECT finished_execution.run_id, e.type, e.step_key, e.attempt, e.data
    FROM finished_execution,
         (VALUES (1, 'step_succeeded', @step_key::text, @attempt::integer, @succeeded_data::jsonb),
                 (2, 'step_started', @next_key::text, 1, NULL::jsonb)) AS e(ord, type, step_key, attempt, data)
    ORDER BY e.ord
)
SELECT ((SELECT count(*) FROM finished_execution)
        + (SELECT count(*) FROM step_executions WHERE step_executions.id = @next_id))::integer AS recorded,
       (EXISTS (SELECT 1 FROM lease) AND NOT EXISTS (SELECT 1 FROM room))::boolean AS full;

-- name: StepStart :batchone
-- Starts a run's next step, as one statement: the work item moves on to the
-- new step execution under the caller's lease, the run is marked running
-- (when mark_running), and the execution and its first attempt are created.
-- The step is started when this statement created its execution, or when
-- it existed already: an earlier sending of the same statement was
-- committed without its sender hearing of it (the execution's id is the
-- sender's own). Neither means the lease was lost and nothing changed. The
-- history of what it created is the caller's to write, with the rest of
-- its transaction's.
WITH work AS (
    UPDATE work_items
    SET kind = 'invoke', step_execution_id = @id, attempt = 1, after_step = NULL,
        visible_at = now() + sqlc.arg('lease_ms')::bigint * interval '1 millisecond'
    WHERE work_items.id = @work_id AND lease_token = @lease_token
    RETURNING work_items.run_id
), running AS (
    UPDATE runs
    SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now()
    WHERE runs.id = (SELECT run_id FROM work) AND @mark_running::boolean
      AND runs.status IN ('pending', 'running', 'waiting')
    RETURNING runs.id
), execution AS (
    INSERT INTO step_executions (
        id, run_id, parent_id, step_key, step_name, step_type, status, attempt, webhook_id, input, deadline, started_at
    )
    SELECT @id, run_id,
           (SELECT p.id FROM step_executions p WHERE p.run_id = work.run_id AND p.step_key = sqlc.narg('parent_key')),
           @step_key, @step_name, @step_type, 'running', 1, @webhook_id, @input,
           now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond', now()
    FROM work
    ON CONFLICT (id) DO NOTHING
    RETURNING step_executions.id, step_executions.run_id
), first_attempt AS (
    INSERT INTO step_attempts (step_execution_id, attempt, run_id, status, worker_id, callback_hash)
    SELECT execution.id, 1, execution.run_id, 'running', @worker_id, @callback_hash FROM execution
)
SELECT EXISTS (SELECT 1 FROM execution) AS created,
       EXISTS (SELECT 1 FROM step_executions WHERE step_executions.id = @id) AS existed;

-- name: StepStartWait :one
-- Starts a waiting step (sleep, wait_for_event, wait_for_input), as one
-- statement: the work item becomes the wait's timer, due at wake_at (a
-- sleep's wake time) or after wait_ms, its
-- lease dropped; the run is waiting unless another of its lanes has work to
-- do; the execution is created waiting until
-- then, with a first attempt whose callback hash lets a person answer
-- through the callback URL. It returns the deadline, or no row when the
-- lease was lost.
WITH work AS (
    UPDATE work_items
    SET kind = @kind, step_execution_id = @id, attempt = 1, after_step = NULL,
        visible_at = COALESCE(sqlc.narg('wake_at')::timestamptz, now() + sqlc.arg('wait_ms')::bigint * interval '1 millisecond'),
        lease_owner = NULL, lease_token = NULL
    WHERE work_items.id = @work_id AND work_items.lease_token = @lease_token
    RETURNING work_items.run_id
), waiting AS (
    UPDATE runs
    SET status = 'waiting', started_at = COALESCE(started_at, now()), updated_at = now()
    WHERE runs.id = (SELECT run_id FROM work) AND runs.status IN ('pending', 'running', 'waiting')
      AND NOT EXISTS (SELECT 1 FROM work_items o
                      WHERE o.run_id = runs.id AND o.id <> @work_id AND o.kind IN ('advance', 'invoke'))
    RETURNING runs.id
), execution AS (
    INSERT INTO step_executions (
        id, run_id, parent_id, step_key, step_name, step_type, status, attempt, webhook_id, input, deadline, started_at
    )
    SELECT @id, run_id,
           (SELECT p.id FROM step_executions p WHERE p.run_id = work.run_id AND p.step_key = sqlc.narg('parent_key')),
           @step_key, @step_name, @step_type, 'waiting', 1, @webhook_id, @input,
           COALESCE(sqlc.narg('wake_at')::timestamptz, now() + sqlc.arg('wait_ms')::bigint * interval '1 millisecond'), now()
    FROM work
    RETURNING step_executions.id, step_executions.run_id, step_executions.deadline
), first_attempt AS (
    INSERT INTO step_attempts (step_execution_id, attempt, run_id, status, worker_id, callback_hash)
    SELECT execution.id, 1, execution.run_id, 'accepted', @worker_id, @callback_hash FROM execution
)
SELECT deadline::timestamptz FROM execution;

-- name: StepExecutionGetByKey :one
SELECT * FROM step_executions WHERE run_id = @run_id AND step_key = @step_key;

-- name: StepExecutionListWaiting :many
SELECT * FROM step_executions WHERE run_id = @run_id AND status = 'waiting' ORDER BY created_at, id;

-- name: StepExecutionNextToCompensate :one
-- The run's most recently finished step execution that succeeded and has a
-- compensation (names lists the steps that have one): compensations run in
-- reverse order of completion.
SELECT id, step_name FROM step_executions
WHERE run_id = @run_id AND status = 'succeeded' AND step_name = ANY (@names::text[])
ORDER BY finished_at DESC, id DESC
LIMIT 1;

-- name: StepExecutionPrepareCompensation :one
-- Notes that attempt is being prepared for a succeeded step's compensation
-- and returns how many compensation attempts were lost with their worker:
-- preparing the attempt prepared last time means it was.
UPDATE step_executions
SET compensation_lost = compensation_lost + (compensation_attempt = @attempt::integer)::integer,
    compensation_attempt = @attempt::integer
WHERE id = @id AND status = 'succeeded'
RETURNING compensation_lost;

-- name: StepExecutionSetCompensation :execrows
-- Records the outcome of a succeeded step's compensation.
UPDATE step_executions
SET status = @status, error = sqlc.narg('error'), updated_at = now()
WHERE id = @id AND status = 'succeeded';

-- name: StepExecutionListWaitingForInput :many
-- The wait_for_input steps that wait for a person, oldest run first: read
-- from the waiting runs (runs_status_created_idx), not from an index on
-- step_executions' status, which would cost every step update its HOT.
SELECT e.run_id, e.step_key, e.created_at
FROM runs r
JOIN step_executions e ON e.run_id = r.id
WHERE r.status = 'waiting' AND e.status = 'waiting' AND e.step_type = 'wait_for_input'
ORDER BY r.created_at, r.id, e.step_key
LIMIT @max;
