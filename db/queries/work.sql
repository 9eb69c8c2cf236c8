-- name: WorkItemInsert :exec
-- Queues work for a run, due after delay_ms by the database's clock.
INSERT INTO work_items (run_id, kind, step_execution_id, attempt, after_step, visible_at)
VALUES (@run_id, @kind, sqlc.narg('step_execution_id'), sqlc.narg('attempt'), sqlc.narg('after_step'),
        now() + sqlc.arg('delay_ms')::bigint * interval '1 millisecond');

-- name: WorkItemDeleteByRun :execrows
-- Deletes a run's work items, except those another transaction has locked:
-- that transaction holds its item and waits for the run's row, which the
-- caller holds, so waiting for the item would deadlock. Once it has the run,
-- it finds the run or its step ended and drops its item itself.
DELETE FROM work_items
WHERE id IN (SELECT w.id FROM work_items w WHERE w.run_id = @run_id FOR UPDATE SKIP LOCKED);

-- name: WorkItemDeleteByStep :exec
-- Deletes the work items of step executions that ended out of turn (lanes
-- cancelled by a failing sibling), except those locked by another
-- transaction (see WorkItemDeleteByRun).
DELETE FROM work_items
WHERE id IN (SELECT w.id FROM work_items w
             WHERE w.run_id = @run_id AND w.step_execution_id = ANY (@ids::uuid[])
             FOR UPDATE SKIP LOCKED);

-- name: WorkItemDeleteStale :execrows
-- Deletes a leased work item whose step execution has ended: its worker's
-- result came too late (the step's lane was cancelled), and the item has
-- nothing left to do.
DELETE FROM work_items w
WHERE w.id = @id AND w.lease_token = @lease_token
  AND NOT EXISTS (SELECT 1 FROM step_executions e
                  WHERE e.id = w.step_execution_id AND e.status IN ('pending', 'running', 'waiting'));

-- name: WorkNotify :exec
-- Wakes listening workers when the surrounding transaction commits.
SELECT pg_notify('durable_work', @payload::text);

-- name: WorkItemClaim :many
-- Leases up to max due work items to owner for lease_ms. Leased items are
-- invisible until the lease ends, so a dead worker's work reappears by
-- itself; SKIP LOCKED lets any number of workers claim side by side.
UPDATE work_items w
SET lease_owner = @owner,
    lease_token = gen_random_uuid(),
    claims = w.claims + 1,
    visible_at = now() + sqlc.arg('lease_ms')::bigint * interval '1 millisecond'
WHERE w.id IN (
    SELECT d.id FROM work_items d
    WHERE d.visible_at <= now()
    ORDER BY d.visible_at, d.id
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
RETURNING w.*;

-- name: WorkItemContinue :execrows
-- Points a leased work item at its next task and extends the lease, under
-- the lease token: zero rows means the lease was lost (the run was
-- cancelled or timed out, or the lease expired and another worker took it).
UPDATE work_items
SET kind = @kind,
    step_execution_id = sqlc.narg('step_execution_id'),
    attempt = sqlc.narg('attempt'),
    after_step = sqlc.narg('after_step'),
    visible_at = now() + sqlc.arg('lease_ms')::bigint * interval '1 millisecond'
WHERE id = @id AND lease_token = @lease_token;

-- name: WorkItemReschedule :execrows
-- Gives a leased work item up, due again after delay_ms, under the lease
-- token (see WorkItemContinue).
UPDATE work_items
SET kind = @kind,
    step_execution_id = sqlc.narg('step_execution_id'),
    attempt = sqlc.narg('attempt'),
    after_step = sqlc.narg('after_step'),
    visible_at = now() + sqlc.arg('delay_ms')::bigint * interval '1 millisecond',
    lease_owner = NULL,
    lease_token = NULL
WHERE id = @id AND lease_token = @lease_token;

-- name: WorkItemDeleteLeased :execrows
DELETE FROM work_items WHERE id = @id AND lease_token = @lease_token;

-- name: WorkItemLockByRun :many
-- Locks a run's work items. Every transition locks work items before the
-- run row, so transitions, cancellation and timeouts never deadlock.
SELECT * FROM work_items WHERE run_id = @run_id ORDER BY id FOR UPDATE;

-- name: WorkItemUpdateUnleased :execrows
-- Repoints a work item the caller has locked (the API's callback path,
-- which holds no lease): due after delay_ms, lease dropped.
UPDATE work_items
SET kind = @kind,
    step_execution_id = sqlc.narg('step_execution_id'),
    attempt = sqlc.narg('attempt'),
    after_step = sqlc.narg('after_step'),
    visible_at = now() + sqlc.arg('delay_ms')::bigint * interval '1 millisecond',
    lease_owner = NULL,
    lease_token = NULL
WHERE id = @id;

-- name: WorkItemLockLeased :one
-- Locks a work item the caller leases. Every transition starts here, so
-- work items are always locked before the rows of their run.
SELECT id FROM work_items WHERE id = @id AND lease_token = @lease_token FOR UPDATE;

-- name: WorkItemLockMany :exec
-- Locks work items in id order, as cancellation does: a transaction that
-- records several of a run's transitions locks all their items first, so
-- that it and a cancellation never wait for each other.
SELECT id FROM work_items WHERE id = ANY(@ids::bigint[]) ORDER BY id FOR UPDATE;

-- name: WorkItemLockLeasedAndRun :one
-- Locks a work item the caller leases, then its run's row, and returns the
-- run's context as it is now: the transitions of a run with parallel lanes
-- start here, so that they take turns rather than deadlock over the rows
-- the lanes share (the block's counts, the context, the steps a failing
-- lane cancels), and see what the other lanes merged into the context.
WITH leased AS MATERIALIZED (
    SELECT w.id, w.run_id FROM work_items w WHERE w.id = @id AND w.lease_token = @lease_token FOR UPDATE
)
SELECT r.context FROM leased JOIN runs r ON r.id = leased.run_id FOR NO KEY UPDATE OF r;

-- name: WorkItemNextDue :one
-- When the next work item (a timer, a retry, a lease's end) or schedule
-- firing comes due, so that an idle worker sleeps exactly until then (an
-- hour away when nothing is queued).
SELECT LEAST(
    COALESCE((SELECT min(visible_at) FROM work_items), now() + interval '1 hour'),
    COALESCE((SELECT min(next_fire_at) FROM schedules WHERE NOT paused), now() + interval '1 hour')
)::timestamptz AS next_due;

-- name: WorkDue :one
-- How much work is due and unclaimed, counting no further than max, and how
-- long the oldest has been due: both read from the first entries of
-- work_items_visible_idx, so a scrape stays cheap however long the queue.
SELECT (SELECT count(*) FROM (SELECT 1 FROM work_items d WHERE d.visible_at <= now() LIMIT @max::integer) due)::bigint AS due,
       GREATEST(EXTRACT(EPOCH FROM now() - (SELECT min(o.visible_at) FROM work_items o)), 0)::float8 AS lag_seconds;
