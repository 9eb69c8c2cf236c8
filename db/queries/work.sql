-- name: WorkItemInsert :exec
-- Without visible_at the work is due at once, by the database's clock.
INSERT INTO work_items (run_id, step_execution_id, kind, attempt, visible_at)
VALUES (@run_id, sqlc.narg('step_execution_id'), @kind, sqlc.narg('attempt'),
        COALESCE(sqlc.narg('visible_at')::timestamptz, now()));

-- name: WorkItemDeleteByRun :execrows
DELETE FROM work_items WHERE run_id = @run_id;

-- name: WorkNotify :exec
-- Wakes listening workers when the surrounding transaction commits.
SELECT pg_notify('durable_work', @payload::text);
