-- name: WorkflowVersionGetByHash :one
SELECT sqlc.embed(v), w.archived_at FROM workflow_versions v
JOIN workflows w ON w.name = v.workflow_name
WHERE v.workflow_name = @workflow_name AND v.content_hash = @content_hash;

-- name: WorkflowBumpVersion :one
-- Creates the workflow or takes its row lock and reserves the next version
-- number; the lock serialises concurrent posts of the same workflow. The
-- new version's retention becomes the workflow's; an archived workflow
-- stays archived.
INSERT INTO workflows (name, latest_version, retention_ms)
VALUES (@name, 1, sqlc.narg('retention_ms'))
ON CONFLICT (name) DO UPDATE
SET latest_version = workflows.latest_version + 1, retention_ms = EXCLUDED.retention_ms, updated_at = now()
RETURNING latest_version, archived_at;

-- name: WorkflowVersionInsert :one
INSERT INTO workflow_versions (workflow_name, version, definition, content_hash, item_pattern)
VALUES (@workflow_name, @version, @definition, @content_hash, sqlc.narg('item_pattern'))
RETURNING *;

-- name: WorkflowGet :one
SELECT * FROM workflows WHERE name = @name;

-- name: WorkflowList :many
-- Lists the workflows that are archived, or those that are not.
SELECT * FROM workflows
WHERE (sqlc.narg('after')::text IS NULL OR name > sqlc.narg('after'))
  AND (archived_at IS NOT NULL) = @archived::boolean
ORDER BY name
LIMIT @max;

-- name: WorkflowSetArchived :one
-- Archives a workflow (keeping the time of a first archive) or unarchives
-- it.
UPDATE workflows
SET archived_at = CASE WHEN @archived::boolean THEN COALESCE(archived_at, now()) END
WHERE name = @name
RETURNING *;

-- name: WorkflowVersionGet :one
-- A version, with its workflow's archive.
SELECT sqlc.embed(v), w.archived_at FROM workflow_versions v
JOIN workflows w ON w.name = v.workflow_name
WHERE v.workflow_name = @workflow_name AND v.version = @version;

-- name: WorkflowVersionGetLatest :one
-- A workflow's latest version, with its archive.
SELECT sqlc.embed(v), w.archived_at FROM workflow_versions v
JOIN workflows w ON w.name = v.workflow_name AND w.latest_version = v.version
WHERE w.name = @name;

-- name: WorkflowVersionList :many
SELECT workflow_name, version, content_hash, created_at FROM workflow_versions
WHERE workflow_name = @workflow_name
  AND (sqlc.narg('before')::integer IS NULL OR version < sqlc.narg('before'))
ORDER BY version DESC
LIMIT @max;
