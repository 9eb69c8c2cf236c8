-- name: WorkflowVersionGetByHash :one
SELECT * FROM workflow_versions
WHERE workflow_name = @workflow_name AND content_hash = @content_hash;

-- name: WorkflowBumpVersion :one
-- Creates the workflow or takes its row lock and reserves the next version
-- number; the lock serialises concurrent posts of the same workflow.
INSERT INTO workflows (name, latest_version)
VALUES (@name, 1)
ON CONFLICT (name) DO UPDATE
SET latest_version = workflows.latest_version + 1, updated_at = now()
RETURNING latest_version;

-- name: WorkflowVersionInsert :one
INSERT INTO workflow_versions (workflow_name, version, definition, content_hash)
VALUES (@workflow_name, @version, @definition, @content_hash)
RETURNING *;

-- name: WorkflowGet :one
SELECT * FROM workflows WHERE name = @name;

-- name: WorkflowList :many
SELECT * FROM workflows
WHERE sqlc.narg('after')::text IS NULL OR name > sqlc.narg('after')
ORDER BY name
LIMIT @max;

-- name: WorkflowVersionGet :one
SELECT * FROM workflow_versions
WHERE workflow_name = @workflow_name AND version = @version;

-- name: WorkflowVersionGetLatest :one
SELECT v.* FROM workflow_versions v
JOIN workflows w ON w.name = v.workflow_name AND w.latest_version = v.version
WHERE w.name = @name;

-- name: WorkflowVersionList :many
SELECT workflow_name, version, content_hash, created_at FROM workflow_versions
WHERE workflow_name = @workflow_name
  AND (sqlc.narg('before')::integer IS NULL OR version < sqlc.narg('before'))
ORDER BY version DESC
LIMIT @max;
