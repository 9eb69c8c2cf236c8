-- name: BlockSetLanes :execrows
-- Records how many lanes a parallel or foreach step has and writes a
-- foreach's items to block_items, one row each, for its lanes to open with.
WITH block AS (
    UPDATE step_executions SET lanes_total = @total, updated_at = now()
    WHERE id = @id AND status = 'running'
    RETURNING id, input
), items AS (
    INSERT INTO block_items (block_id, idx, item)
    SELECT block.id, o.i - 1, o.item
    FROM block, jsonb_array_elements(block.input -> 'items') WITH ORDINALITY AS o(item, i)
)
SELECT 1 FROM block;

-- name: LaneOpen :many
-- Opens up to n more lanes of a running block (never more than it has): for
-- each, a lane execution (its item and index as input, inside foreach) and
-- the work item that starts its first step — except the first lane when
-- the caller starts it with a work item of its own (keep_first). Lanes open
-- in index order, so a lane's index is the count of lanes opened before it.
-- names are the branch names of a parallel step; a foreach's lanes are named
-- by index. A foreach lane takes its item out of block_items; the block's
-- input is read only for a foreach that began without them (started by a
-- worker of an earlier version), never for every lane: the whole list would
-- be unpacked each time.
WITH block AS (
    UPDATE step_executions b
    SET lanes_started = LEAST(b.lanes_total, o.lanes_started + @n::integer), updated_at = now()
    FROM (SELECT x.id, x.lanes_started FROM step_executions x WHERE x.id = @block_id FOR UPDATE) o
    WHERE b.id = @block_id AND b.id = o.id AND b.status = 'running' AND b.lanes_started < b.lanes_total
    RETURNING b.id, b.run_id, b.step_key, b.step_name, b.step_type, o.lanes_started AS first, b.lanes_started AS upto
), item AS (
    DELETE FROM block_items i USING block
    WHERE i.block_id = block.id AND i.idx >= block.first AND i.idx < block.upto
    RETURNING i.idx, i.item
), lane AS (
    INSERT INTO step_executions (
        id, run_id, parent_id, step_key, step_name, step_type, status, attempt, webhook_id, input, lane_index, started_at
    )
    SELECT l.id, block.run_id, block.id,
           block.step_key || '[' || COALESCE((@names::text[])[l.i + 1], l.i::text) || ']',
           block.step_name, 'lane', 'running', 1, 'msg_' || l.id::text,
           CASE WHEN block.step_type = 'foreach'
                THEN jsonb_build_object('item', COALESCE(item.item, (SELECT x.input -> 'items' -> l.i FROM step_executions x WHERE x.id = block.id)),
                                        'index', l.i) END,
           l.i, now()
    FROM block, (SELECT gen_random_uuid() AS id, i FROM block, generate_series(block.first, block.upto - 1) AS i) l
         LEFT JOIN item ON item.idx = l.i
    RETURNING step_executions.run_id, step_executions.step_key, step_executions.lane_index, step_executions.input
), work AS (
    INSERT INTO work_items (run_id, kind, after_step)
    SELECT lane.run_id, 'advance', lane.step_key FROM lane, block
    WHERE NOT (@keep_first::boolean AND lane.lane_index = block.first)
    ORDER BY lane.lane_index
    RETURNING work_items.id, work_items.after_step
)
SELECT lane.step_key, lane.input, work.id AS work_id
FROM lane LEFT JOIN work ON work.after_step = lane.step_key
ORDER BY lane.lane_index;

-- name: LaneEnd :one
-- Ends a running lane (succeeded or failed) and counts it at its block,
-- returning the block's counts; no row when the lane had ended already
-- (a failing sibling cancelled it).
WITH lane AS (
    UPDATE step_executions
    SET status = @status, output = sqlc.narg('output'), error = sqlc.narg('error'), finished_at = now(), updated_at = now()
    WHERE step_executions.run_id = @run_id AND step_executions.step_key = @lane_key
      AND step_executions.step_type = 'lane' AND step_executions.status = 'running'
    RETURNING parent_id
)
UPDATE step_executions b
SET lanes_ended = b.lanes_ended + 1,
    lanes_failed = b.lanes_failed + (@status::text <> 'succeeded')::integer,
    updated_at = now()
WHERE b.id = (SELECT lane.parent_id FROM lane)
RETURNING b.id, b.status, b.attempt, b.lanes_total, b.lanes_started, b.lanes_ended, b.lanes_failed;

-- name: LaneStepSucceed :batchone
-- The success of a lane's last step, as one statement: what LaneEnd and
-- LaneOpen do after StepFinish, under the locks a lane's transition takes
-- (WorkItemLockLeasedAndRun). It locks the work item by its lease and then
-- the run's row, records the attempt's and the execution's success (fenced
-- to the attempt in progress), ends the lane with the step's output and
-- counts it at its block, and — when the block is a running foreach with
-- items left — opens its next item, whose first step the caller starts with
-- the work item it holds. Each part runs only when the one before it
-- matched, so a refused result changes nothing: leased is false when the
-- lease was lost, finished false when the attempt was over; lane_ended is
-- false when the lane had ended already (a failing sibling cancelled it).
-- It returns the run's context as it is now, the block's counts after the
-- lane ended, and the lane it opened, if any. A batch of these, of one
-- run's lanes, goes in one round trip: none raises an error when refused.
WITH lease AS MATERIALIZED (
    SELECT w.id, w.run_id FROM work_items w WHERE w.id = @work_id AND w.lease_token = @lease_token FOR UPDATE
), run AS MATERIALIZED (
    SELECT r.id, r.context FROM lease JOIN runs r ON r.id = lease.run_id FOR NO KEY UPDATE OF r
), attempt AS (
    UPDATE step_attempts
    SET status = 'succeeded', http_status = sqlc.narg('http_status'), error = NULL, logs = @logs, finished_at = now()
    WHERE step_attempts.step_execution_id = @id AND step_attempts.attempt = @attempt
      AND step_attempts.status IN ('running', 'accepted') AND EXISTS (SELECT 1 FROM run)
    RETURNING 1
), execution AS (
    UPDATE step_executions
    SET status = 'succeeded', output = @output, error = NULL, finished_at = now(), updated_at = now()
    WHERE step_executions.id = @id AND step_executions.attempt = @attempt
      AND step_executions.status IN ('pending', 'running', 'waiting') AND EXISTS (SELECT 1 FROM attempt)
    RETURNING step_executions.run_id
), lane AS (
    UPDATE step_executions l
    SET status = 'succeeded', output = @output, error = NULL, finished_at = now(), updated_at = now()
    WHERE l.run_id = (SELECT run_id FROM execution) AND l.step_key = @lane_key
      AND l.step_type = 'lane' AND l.status = 'running'
    RETURNING l.parent_id
), block AS (
    UPDATE step_executions b
    SET lanes_ended = b.lanes_ended + 1,
        lanes_started = b.lanes_started + o.opens::integer,
        updated_at = now()
    FROM (SELECT x.id, x.lanes_started AS first,
                 (x.step_type = 'foreach' AND x.status = 'running' AND x.lanes_started < x.lanes_total) AS opens
          FROM step_executions x WHERE x.id = (SELECT parent_id FROM lane) FOR UPDATE) o
    WHERE b.id = o.id
    RETURNING b.id, b.run_id, b.step_key, b.step_name, b.status, b.attempt,
              b.lanes_total, b.lanes_started, b.lanes_ended, b.lanes_failed, o.first, o.opens
), item AS (
    DELETE FROM block_items i USING block
    WHERE block.opens AND i.block_id = block.id AND i.idx = block.first
    RETURNING i.item
), next_lane AS (
    INSERT INTO step_executions (
        id, run_id, parent_id, step_key, step_name, step_type, status, attempt, webhook_id, input, lane_index, started_at
    )
    SELECT l.id, block.run_id, block.id, block.step_key || '[' || block.first || ']', block.step_name, 'lane', 'running', 1,
           'msg_' || l.id::text,
           jsonb_build_object('item', COALESCE((SELECT item.item FROM item),
                                               (SELECT x.input -> 'items' -> block.first FROM step_executions x WHERE x.id = block.id)),
                              'index', block.first),
           block.first, now()
    FROM block, (SELECT gen_random_uuid() AS id) l
    WHERE block.opens
    RETURNING step_executions.step_key, step_executions.input
)
SELECT EXISTS (SELECT 1 FROM run) AS leased,
       (SELECT run.context FROM run) AS context,
       EXISTS (SELECT 1 FROM execution) AS finished,
       EXISTS (SELECT 1 FROM lane) AS lane_ended,
       block.id AS block_id, block.status AS block_status, block.attempt AS block_attempt,
       block.lanes_total, block.lanes_started, block.lanes_ended, block.lanes_failed,
       next_lane.step_key AS opened_key, next_lane.input AS opened_input
FROM (SELECT 1) one
LEFT JOIN block ON true
LEFT JOIN next_lane ON true;

-- name: LaneStatus :one
-- The status of a lane: steps of a lane that is no longer running are not
-- started.
SELECT status FROM step_executions WHERE run_id = @run_id AND step_key = @lane_key AND step_type = 'lane';

-- name: LaneList :many
-- A block's lanes in order, for joining a parallel step's few branches.
SELECT step_key, lane_index, status, output, error FROM step_executions
WHERE parent_id = @block_id AND step_type = 'lane'
ORDER BY lane_index;

-- name: LaneCollect :one
-- A foreach's item outputs in item order (null for an item that failed)
-- and its items' errors, aggregated in the database: a list of 10,000
-- items is never loaded row by row.
SELECT COALESCE(jsonb_agg(CASE WHEN status = 'succeeded' THEN output END ORDER BY lane_index), '[]')::jsonb AS results,
       COALESCE(jsonb_agg(jsonb_build_object('index', lane_index, 'error', error) ORDER BY lane_index)
                    FILTER (WHERE status <> 'succeeded'), '[]')::jsonb AS errors
FROM step_executions
WHERE parent_id = @block_id AND step_type = 'lane';

-- name: StepTreeCancel :many
-- Cancels what is unfinished below a step execution (the lanes of a block
-- that failed fast, and every step in them), returning what it cancelled.
WITH RECURSIVE tree AS (
    SELECT s.id FROM step_executions s WHERE s.parent_id = @root_id
    UNION ALL
    SELECT s.id FROM step_executions s JOIN tree ON s.parent_id = tree.id
)
UPDATE step_executions e
SET status = 'cancelled', finished_at = now(), updated_at = now()
FROM tree
WHERE e.id = tree.id AND e.status IN ('pending', 'running', 'waiting')
RETURNING e.id, e.step_key, e.step_type, e.input;

-- name: BlockItemDeleteMany :exec
-- Deletes the items that foreach blocks which ended early did not open.
DELETE FROM block_items WHERE block_id = ANY (@ids::uuid[]);

-- name: BlockItemDeleteByRun :exec
-- Deletes the items that a run's foreach blocks did not open, as the run is
-- cancelled or times out.
DELETE FROM block_items
WHERE block_id IN (SELECT s.id FROM step_executions s WHERE s.run_id = @run_id AND s.step_type = 'foreach');

-- name: StepAttemptCancelMany :exec
UPDATE step_attempts
SET status = 'cancelled', finished_at = now()
WHERE step_execution_id = ANY (@ids::uuid[]) AND status IN ('running', 'accepted');

-- name: WaitCloseMany :exec
UPDATE waits SET status = 'cancelled', resolved_at = now()
WHERE step_execution_id = ANY (@ids::uuid[]) AND status = 'open';

-- name: RunSetContext :exec
UPDATE runs SET context = @context, updated_at = now() WHERE id = @id;
