-- +goose Up
-- Operating runs: retention (workers delete finished runs in small
-- batches), archived workflows, and the cap on a run's history.

-- retention_ms is the workflow's own retention, from its latest version's
-- definition (NULL: the deployment's DURABLE_RETENTION). archived_at is set
-- while the workflow is archived: it starts no new run.
ALTER TABLE workflows
    ADD COLUMN retention_ms bigint CHECK (retention_ms > 0),
    ADD COLUMN archived_at  timestamptz;

-- item_pattern matches the step keys inside the version's foreach items
-- (see workflow.Definition.ItemKeyPattern; NULL: it has no foreach): their
-- history events are not counted against a run's history cap, so that a
-- foreach of 10,000 items fits under the default cap of 10,000 events.
ALTER TABLE workflow_versions ADD COLUMN item_pattern text;
-- The versions stored before this migration get theirs from their
-- definitions: a foreach step is an object of type "foreach" with a string
-- "items" and an array of "steps".
UPDATE workflow_versions v
SET item_pattern = '(^|\.)(' || p.names || ')\['
FROM (
    SELECT workflow_name, version, string_agg(DISTINCT n #>> '{}', '|') AS names
    FROM workflow_versions,
         jsonb_path_query(definition,
             'strict $.** ? (@.type == "foreach" && @.items.type() == "string" && @.steps.type() == "array").name') AS n
    GROUP BY workflow_name, version
) p
WHERE v.workflow_name = p.workflow_name AND v.version = p.version;

-- history_count counts the events of a run's history that its cap counts,
-- kept by the statements that append them; history_cap is the cap, the
-- DURABLE_MAX_HISTORY_EVENTS of the process that started the run. Runs
-- still going get their count from the events they have (finished runs
-- write no more), and a cap of 10,000, the default, or one more event than
-- they have.
ALTER TABLE runs
    ADD COLUMN history_count integer NOT NULL DEFAULT 0,
    ADD COLUMN history_cap   integer NOT NULL DEFAULT 10000;
UPDATE runs r
SET history_count = (
    SELECT count(*) FROM history_events h
    WHERE h.run_id = r.id AND (v.item_pattern IS NULL OR h.step_key IS NULL OR h.step_key !~ v.item_pattern))
FROM workflow_versions v
WHERE v.workflow_name = r.workflow_name AND v.version = r.workflow_version
  AND r.status IN ('pending', 'running', 'waiting', 'compensating');
UPDATE runs SET history_cap = history_count + 1 WHERE history_count >= history_cap;
-- A run's transitions leave the last event of its cap to the one that ends
-- it: a statement that would fill it, or pass it, fails, and the run ends
-- instead (see postgres.DB.InTx).
ALTER TABLE runs ADD CONSTRAINT runs_history_cap CHECK (
    history_count < history_cap
    OR (history_count <= history_cap
        AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'compensated', 'compensation_failed')));

-- Retention finds each workflow's oldest finished runs by this index.
CREATE INDEX runs_workflow_finished_idx ON runs (workflow_name, finished_at) WHERE finished_at IS NOT NULL;

-- Deleting a run cascades to every row that references it; without an
-- index on each referencing column, each deleted run (and each deleted step
-- execution) would scan the whole referencing table.
CREATE INDEX waits_run_idx ON waits (run_id);
CREATE INDEX work_items_step_execution_idx ON work_items (step_execution_id) WHERE step_execution_id IS NOT NULL;
CREATE INDEX schedule_fires_run_idx ON schedule_fires (run_id) WHERE run_id IS NOT NULL;

-- A child run outlives its parent's deletion: it keeps its own history, and
-- loses the link. Retention deletes no parent with a child still going.
ALTER TABLE runs
    DROP CONSTRAINT runs_parent_run_id_fkey,
    ADD CONSTRAINT runs_parent_run_id_fkey FOREIGN KEY (parent_run_id) REFERENCES runs (id) ON DELETE SET NULL;

-- archived: a firing of a schedule whose workflow is archived, which
-- starts nothing.
ALTER TABLE schedule_fires
    DROP CONSTRAINT schedule_fires_outcome_check,
    ADD CONSTRAINT schedule_fires_outcome_check CHECK (outcome IN ('started', 'skipped', 'buffered', 'cancelled_other', 'archived'));

-- +goose Down
ALTER TABLE schedule_fires
    DROP CONSTRAINT schedule_fires_outcome_check,
    ADD CONSTRAINT schedule_fires_outcome_check CHECK (outcome IN ('started', 'skipped', 'buffered', 'cancelled_other'));
ALTER TABLE runs
    DROP CONSTRAINT runs_parent_run_id_fkey,
    ADD CONSTRAINT runs_parent_run_id_fkey FOREIGN KEY (parent_run_id) REFERENCES runs (id);
DROP INDEX schedule_fires_run_idx;
DROP INDEX work_items_step_execution_idx;
DROP INDEX waits_run_idx;
DROP INDEX runs_workflow_finished_idx;
ALTER TABLE runs DROP CONSTRAINT runs_history_cap, DROP COLUMN history_cap, DROP COLUMN history_count;
ALTER TABLE workflow_versions DROP COLUMN item_pattern;
ALTER TABLE workflows DROP COLUMN archived_at, DROP COLUMN retention_ms;
