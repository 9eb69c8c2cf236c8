-- name: WaitInsert :exec
INSERT INTO waits (id, run_id, step_execution_id, kind, event_name, event_key, condition_index, lookback_from, deadline, status)
VALUES (@id, @run_id, @step_execution_id, 'event', @event_name, @event_key, @condition_index,
        now() - sqlc.arg('lookback_ms')::bigint * interval '1 millisecond',
        now() + sqlc.arg('timeout_ms')::bigint * interval '1 millisecond', 'open');

-- name: WaitListByStep :many
SELECT * FROM waits WHERE step_execution_id = @step_execution_id ORDER BY condition_index;

-- name: WaitListByRuns :many
SELECT * FROM waits WHERE run_id = ANY (@run_ids::uuid[]) AND status = 'open' ORDER BY run_id, condition_index;

-- name: WaitListOpenForEvent :many
-- The open waits an event resumes, in a stable order so that concurrent
-- publishers lock runs in the same order.
SELECT * FROM waits
WHERE kind = 'event' AND status = 'open' AND event_name = @event_name AND event_key = @event_key
ORDER BY run_id, id
LIMIT @max;

-- name: WaitResolve :execrows
UPDATE waits SET status = 'resolved', resolution = @resolution, event_id = @event_id, resolved_at = now()
WHERE id = @id AND status = 'open';

-- name: WaitCloseByStep :exec
UPDATE waits SET status = @status, resolved_at = now()
WHERE step_execution_id = @step_execution_id AND status = 'open';

-- name: WaitCloseByRun :exec
UPDATE waits SET status = @status, resolved_at = now()
WHERE run_id = @run_id AND status = 'open';

-- name: WaitListByEvents :many
-- The waits that the events resolved, with their runs' steps.
SELECT w.event_id, w.run_id, e.step_key, w.resolved_at
FROM waits w
JOIN step_executions e ON e.id = w.step_execution_id
WHERE w.event_id = ANY (@event_ids::uuid[])
ORDER BY w.resolved_at, w.id;
