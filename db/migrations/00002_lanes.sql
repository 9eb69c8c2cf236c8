-- +goose Up
-- Lanes: the branches of a parallel step and the items of a foreach step run
-- side by side, each as a step execution of type 'lane' (key "notify[email]"
-- or "ship[3]") whose parent is the block's execution. The block counts its
-- lanes in its own row, so joining them is one update under the run's lock
-- however many items there are. The migration also counts, per step, the
-- compensation attempts lost with their workers.
ALTER TABLE step_executions
    -- lane_index is a lane's position in its block: the branch's index in
    -- the definition, or the item's index in the list.
    ADD COLUMN lane_index    integer,
    -- A block's lanes: how many it has, how many were opened (foreach opens
    -- them as its concurrency allows), ended, and ended failed.
    ADD COLUMN lanes_total   integer,
    ADD COLUMN lanes_started integer NOT NULL DEFAULT 0,
    ADD COLUMN lanes_ended   integer NOT NULL DEFAULT 0,
    ADD COLUMN lanes_failed  integer NOT NULL DEFAULT 0,
    -- compensation_attempt is the compensation attempt last prepared for
    -- a succeeded step; preparing the same attempt again means the worker
    -- making it was lost, which compensation_lost counts, so that a
    -- compensation that keeps killing its workers fails instead of looping.
    ADD COLUMN compensation_attempt integer NOT NULL DEFAULT 0,
    ADD COLUMN compensation_lost    integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE step_executions
    DROP COLUMN compensation_lost,
    DROP COLUMN compensation_attempt,
    DROP COLUMN lanes_failed,
    DROP COLUMN lanes_ended,
    DROP COLUMN lanes_started,
    DROP COLUMN lanes_total,
    DROP COLUMN lane_index;
