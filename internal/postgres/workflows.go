package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
	"github.com/durablehq/durable/internal/workflow"
)

func workflowVersionFromRow(r dbsqlc.WorkflowVersion) workflow.WorkflowVersion {
	return workflow.WorkflowVersion{
		Name:       r.WorkflowName,
		Version:    int(r.Version),
		Definition: r.Definition,
		Hash:       r.ContentHash,
		CreatedAt:  r.CreatedAt,
	}
}

func workflowSummaryFromRow(r dbsqlc.Workflow) workflow.WorkflowSummary {
	return workflow.WorkflowSummary{
		Name:          r.Name,
		LatestVersion: int(r.LatestVersion),
		CreatedAt:     r.CreatedAt,
		UpdatedAt:     r.UpdatedAt,
		ArchivedAt:    r.ArchivedAt,
	}
}

// FindWorkflowVersionByHash returns the version of workflow name whose
// definition has the given content hash, and false when there is none.
func (q queries) FindWorkflowVersionByHash(ctx context.Context, name string, hash []byte) (workflow.WorkflowVersion, bool, error) {
	r, err := q.q.WorkflowVersionGetByHash(ctx, dbsqlc.WorkflowVersionGetByHashParams{WorkflowName: name, ContentHash: hash})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.WorkflowVersion{}, false, nil
	}
	if err != nil {
		return workflow.WorkflowVersion{}, false, fmt.Errorf("find workflow version by hash: %w", translate(err))
	}
	v := workflowVersionFromRow(r.WorkflowVersion)
	v.ArchivedAt = r.ArchivedAt
	return v, true, nil
}

// ReserveWorkflowVersion creates workflow name if needed and returns the
// next version number for it, and when the workflow was archived (nil: it
// is not), holding the workflow's row lock until the transaction ends. The
// workflow's finished runs are kept for retention from then on (0: the
// deployment's default).
func (tx *Tx) ReserveWorkflowVersion(ctx context.Context, name string, retention time.Duration) (int, *time.Time, error) {
	p := dbsqlc.WorkflowBumpVersionParams{Name: name}
	if retention > 0 {
		ms := retention.Milliseconds()
		p.RetentionMs = &ms
	}
	r, err := tx.q.WorkflowBumpVersion(ctx, p)
	if err != nil {
		return 0, nil, fmt.Errorf("reserve workflow version: %w", translate(err))
	}
	return int(r.LatestVersion), r.ArchivedAt, nil
}

// InsertWorkflowVersion stores a new version of a workflow definition.
// itemPattern matches the keys of the steps inside its foreach items ("":
// it has none; see [workflow.Definition.ItemKeyPattern]), whose history
// events the history cap does not count.
func (tx *Tx) InsertWorkflowVersion(ctx context.Context, v workflow.WorkflowVersion, itemPattern string) (workflow.WorkflowVersion, error) {
	p := dbsqlc.WorkflowVersionInsertParams{
		WorkflowName: v.Name,
		Version:      int32(v.Version),
		Definition:   v.Definition,
		ContentHash:  v.Hash,
	}
	if itemPattern != "" {
		p.ItemPattern = &itemPattern
	}
	r, err := tx.q.WorkflowVersionInsert(ctx, p)
	if err != nil {
		return workflow.WorkflowVersion{}, fmt.Errorf("insert workflow version: %w", translate(err))
	}
	return workflowVersionFromRow(r), nil
}

// GetWorkflow returns the workflow called name.
func (q queries) GetWorkflow(ctx context.Context, name string) (workflow.WorkflowSummary, error) {
	r, err := q.q.WorkflowGet(ctx, name)
	if err != nil {
		return workflow.WorkflowSummary{}, notFound(err, "workflow %q not found", name)
	}
	return workflowSummaryFromRow(r), nil
}

// ListWorkflows returns up to limit workflows ordered by name, starting after
// the name after (empty for the first page): the archived ones, or those
// that are not.
func (q queries) ListWorkflows(ctx context.Context, archived bool, after string, limit int) ([]workflow.WorkflowSummary, error) {
	params := dbsqlc.WorkflowListParams{Archived: archived, Max: int32(limit)}
	if after != "" {
		params.After = &after
	}
	rows, err := q.q.WorkflowList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", translate(err))
	}
	out := make([]workflow.WorkflowSummary, len(rows))
	for i, r := range rows {
		out[i] = workflowSummaryFromRow(r)
	}
	return out, nil
}

// GetWorkflowVersion returns one version of a workflow.
func (q queries) GetWorkflowVersion(ctx context.Context, name string, version int) (workflow.WorkflowVersion, error) {
	r, err := q.q.WorkflowVersionGet(ctx, dbsqlc.WorkflowVersionGetParams{WorkflowName: name, Version: int32(version)})
	if err != nil {
		return workflow.WorkflowVersion{}, notFound(err, "workflow %q has no version %d", name, version)
	}
	v := workflowVersionFromRow(r.WorkflowVersion)
	v.ArchivedAt = r.ArchivedAt
	return v, nil
}

// GetLatestWorkflowVersion returns the newest version of a workflow.
func (q queries) GetLatestWorkflowVersion(ctx context.Context, name string) (workflow.WorkflowVersion, error) {
	r, err := q.q.WorkflowVersionGetLatest(ctx, name)
	if err != nil {
		return workflow.WorkflowVersion{}, notFound(err, "workflow %q not found", name)
	}
	v := workflowVersionFromRow(r.WorkflowVersion)
	v.ArchivedAt = r.ArchivedAt
	return v, nil
}

// SetWorkflowArchived archives a workflow (keeping the time it was first
// archived, when it is already) or unarchives it.
func (tx *Tx) SetWorkflowArchived(ctx context.Context, name string, archived bool) (workflow.WorkflowSummary, error) {
	r, err := tx.q.WorkflowSetArchived(ctx, dbsqlc.WorkflowSetArchivedParams{Name: name, Archived: archived})
	if err != nil {
		return workflow.WorkflowSummary{}, notFound(err, "workflow %q not found", name)
	}
	return workflowSummaryFromRow(r), nil
}

// ListWorkflowVersions returns up to limit versions of a workflow, newest
// first, older than version before (0 for the first page), without their
// definitions.
func (q queries) ListWorkflowVersions(ctx context.Context, name string, before, limit int) ([]workflow.WorkflowVersion, error) {
	params := dbsqlc.WorkflowVersionListParams{WorkflowName: name, Max: int32(limit)}
	if before > 0 {
		b := int32(before)
		params.Before = &b
	}
	rows, err := q.q.WorkflowVersionList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list workflow versions: %w", translate(err))
	}
	out := make([]workflow.WorkflowVersion, len(rows))
	for i, r := range rows {
		out[i] = workflow.WorkflowVersion{Name: r.WorkflowName, Version: int(r.Version), Hash: r.ContentHash, CreatedAt: r.CreatedAt}
	}
	return out, nil
}
