-- +goose Up
-- The dashboard's counts by status of one workflow's runs (RunCountByStatus
-- with a workflow filter) read at most 10,001 entries per status here,
-- instead of scanning every run of the status (637 ms over 1,000,000 runs
-- without it; docs/dashboard.md). Its cost is one more index entry when a
-- run is created or changes status — a few per run, none per step, since a
-- step's update of its run changes none of these columns.
CREATE INDEX runs_workflow_status_created_idx ON runs (workflow_name, status, created_at DESC, id DESC);

-- +goose Down
DROP INDEX runs_workflow_status_created_idx;
