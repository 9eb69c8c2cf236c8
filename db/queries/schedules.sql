-- name: ScheduleInsert :one
INSERT INTO schedules (
    id, name, workflow_name, workflow_version, cron, timezone, input, overlap_policy,
    catchup_window_ms, paused, next_fire_at, source
) VALUES (
    @id, @name, @workflow_name, sqlc.narg('workflow_version'), @cron, @timezone, @input, @overlap_policy,
    @catchup_window_ms, @paused, @next_fire_at, @source
)
RETURNING *;

-- name: ScheduleUpsertFromDefinition :one
-- Creates or updates the schedule a workflow definition declares. A
-- schedule of that name made through the API is left alone: no row.
INSERT INTO schedules (
    id, name, workflow_name, workflow_version, cron, timezone, input, overlap_policy,
    catchup_window_ms, paused, next_fire_at, source
) VALUES (
    @id, @name, @workflow_name, NULL, @cron, @timezone, @input, @overlap_policy,
    @catchup_window_ms, false, @next_fire_at, 'definition'
)
ON CONFLICT (name) DO UPDATE
SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, input = EXCLUDED.input,
    overlap_policy = EXCLUDED.overlap_policy, catchup_window_ms = EXCLUDED.catchup_window_ms,
    next_fire_at = CASE WHEN schedules.paused THEN schedules.next_fire_at ELSE EXCLUDED.next_fire_at END,
    updated_at = now()
WHERE schedules.source = 'definition'
RETURNING *;

-- name: ScheduleGet :one
SELECT * FROM schedules WHERE id = @id;

-- name: ScheduleGetForUpdate :one
SELECT * FROM schedules WHERE id = @id FOR UPDATE;

-- name: ScheduleList :many
SELECT * FROM schedules
WHERE sqlc.narg('after')::text IS NULL OR name > sqlc.narg('after')
ORDER BY name
LIMIT @max;

-- name: ScheduleUpdate :one
UPDATE schedules
SET workflow_name = @workflow_name, workflow_version = sqlc.narg('workflow_version'), cron = @cron,
    timezone = @timezone, input = @input, overlap_policy = @overlap_policy,
    catchup_window_ms = @catchup_window_ms, paused = @paused, next_fire_at = @next_fire_at,
    buffered_fire_time = CASE WHEN @paused::boolean THEN NULL ELSE buffered_fire_time END,
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: ScheduleDelete :execrows
DELETE FROM schedules WHERE id = @id;

-- name: ScheduleClaimDue :many
-- Locks up to max schedules that have a firing due (or one held back by
-- buffer_one); SKIP LOCKED lets every worker take its own.
SELECT * FROM schedules
WHERE NOT paused AND (next_fire_at <= now() OR buffered_fire_time IS NOT NULL)
ORDER BY next_fire_at
LIMIT @max
FOR UPDATE SKIP LOCKED;

-- name: ScheduleAdvance :exec
UPDATE schedules
SET next_fire_at = @next_fire_at, buffered_fire_time = sqlc.narg('buffered_fire_time'), updated_at = now()
WHERE id = @id;

-- name: ScheduleFireInsert :one
-- Claims a firing's unique (schedule, fire time) key; no row when it was
-- fired already.
INSERT INTO schedule_fires (schedule_id, fire_time, outcome, manual)
VALUES (@schedule_id, @fire_time, @outcome, @manual)
ON CONFLICT (schedule_id, fire_time) DO NOTHING
RETURNING *;

-- name: ScheduleFireSetRun :exec
UPDATE schedule_fires SET run_id = @run_id
WHERE schedule_id = @schedule_id AND fire_time = @fire_time;

-- name: ScheduleFireSetOutcome :exec
UPDATE schedule_fires SET outcome = @outcome
WHERE schedule_id = @schedule_id AND fire_time = @fire_time;

-- name: ScheduleFireList :many
SELECT * FROM schedule_fires WHERE schedule_id = @schedule_id ORDER BY fire_time DESC LIMIT @max;

-- name: RunListActiveBySchedule :many
SELECT id FROM runs
WHERE schedule_id = @schedule_id AND status IN ('queued', 'pending', 'running', 'waiting', 'compensating')
ORDER BY created_at;

-- name: ScheduleDeleteFromDefinition :exec
-- Deletes the schedule a workflow's definition declared, when a version
-- without one is posted.
DELETE FROM schedules WHERE name = @name AND source = 'definition';

-- name: ScheduleFireDeleteOld :execrows
-- Deletes up to max firings older than the newest keep of their schedule,
-- oldest first, but a firing that buffer_one holds back (it starts its run
-- later).
DELETE FROM schedule_fires
WHERE (schedule_id, fire_time) IN (
    SELECT old.schedule_id, old.fire_time FROM schedules s
    CROSS JOIN LATERAL (SELECT f.fire_time FROM schedule_fires f
                        WHERE f.schedule_id = s.id ORDER BY f.fire_time DESC OFFSET @keep LIMIT 1) cutoff
    CROSS JOIN LATERAL (SELECT f.schedule_id, f.fire_time FROM schedule_fires f
                        WHERE f.schedule_id = s.id AND f.fire_time <= cutoff.fire_time
                          AND f.fire_time IS DISTINCT FROM s.buffered_fire_time
                        ORDER BY f.fire_time LIMIT @max) old
    LIMIT @max
);
