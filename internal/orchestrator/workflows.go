package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// errVersionExists ends a transaction that found the identical definition
// already stored once it held the workflow's lock.
var errVersionExists = errors.New("version exists")

// CreateWorkflow validates a definition document and stores it as a new
// version of its workflow. Posting a definition identical to an existing
// version (by canonical content) returns that version and false. An
// archived workflow stays archived: its new version starts no run either.
func (s *API) CreateWorkflow(ctx context.Context, doc []byte) (workflow.WorkflowVersion, bool, error) {
	def, err := s.parseDefinition(doc)
	if err != nil {
		return workflow.WorkflowVersion{}, false, err
	}
	hash := def.Hash()
	if v, ok, err := s.db.FindWorkflowVersionByHash(ctx, def.Name, hash[:]); err != nil || ok {
		return v, false, err
	}
	var created workflow.WorkflowVersion
	err = s.db.InTx(ctx, func(tx *postgres.Tx) error {
		version, archivedAt, err := tx.ReserveWorkflowVersion(ctx, def.Name, time.Duration(def.Retention))
		if err != nil {
			return err
		}
		// Another request may have stored the same definition between the
		// check above and taking the lock.
		if v, ok, err := tx.FindWorkflowVersionByHash(ctx, def.Name, hash[:]); err != nil {
			return err
		} else if ok {
			created = v
			return errVersionExists
		}
		created, err = tx.InsertWorkflowVersion(ctx, workflow.WorkflowVersion{
			Name: def.Name, Version: version, Definition: def.Canonical(), Hash: hash[:],
		}, def.ItemKeyPattern())
		created.ArchivedAt = archivedAt
		switch {
		case err != nil:
			return err
		case def.Schedule == nil:
			// The definition is the source of its schedule: a version
			// without one ends it.
			return tx.DeleteDefinitionSchedule(ctx, def.Name)
		}
		return s.upsertDefinitionSchedule(ctx, tx, def)
	})
	if errors.Is(err, errVersionExists) {
		return created, false, nil
	}
	if err != nil {
		return workflow.WorkflowVersion{}, false, fmt.Errorf("create workflow %q: %w", def.Name, err)
	}
	s.definitions.put(versionKey{created.Name, created.Version}, def)
	s.logger.InfoContext(ctx, "workflow version created", "workflow", created.Name, "version", created.Version)
	return created, true, nil
}

// parseDefinition parses and validates doc, reporting every problem at
// once.
func (s *core) parseDefinition(doc []byte) (*workflow.Definition, error) {
	def, err := workflow.Parse(doc, s.limits.Definition)
	var verr *workflow.ValidationError
	if errors.As(err, &verr) {
		return nil, fault.WithProblems(fault.Invalid, "the workflow definition is invalid", problemsOf(verr.Problems))
	}
	if err != nil {
		return nil, fmt.Errorf("parse definition: %w", err)
	}
	return def, nil
}

func problemsOf(ps []workflow.Problem) []fault.Problem {
	out := make([]fault.Problem, len(ps))
	for i, p := range ps {
		out[i] = fault.Problem{Path: p.Path, Message: p.Message}
	}
	return out
}

// definition returns the parsed definition of a stored workflow version.
func (s *core) definition(v workflow.WorkflowVersion) (*workflow.Definition, error) {
	k := versionKey{v.Name, v.Version}
	if d, ok := s.definitions.get(k); ok {
		return d, nil
	}
	// Stored definitions were valid when posted; parse them without this
	// process's limits, which may have been lowered since.
	d, err := workflow.Parse(v.Definition, workflow.Limits{MaxBytes: len(v.Definition) + 1, MaxDepth: 1 << 10, MaxSteps: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("parse stored definition %s v%d: %w", v.Name, v.Version, err)
	}
	s.definitions.put(k, d)
	return d, nil
}

// definitionOf returns the parsed definition of a workflow version, read
// through q (the caller's transaction, so that it needs no second
// connection) when it is not cached.
func (s *core) definitionOf(ctx context.Context, q versionReader, name string, version int) (*workflow.Definition, error) {
	if d, ok := s.definitions.get(versionKey{name, version}); ok {
		return d, nil
	}
	v, err := q.GetWorkflowVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return s.definition(v)
}

type versionReader interface {
	GetWorkflowVersion(ctx context.Context, name string, version int) (workflow.WorkflowVersion, error)
}

// GetWorkflow returns a workflow's latest version.
func (s *API) GetWorkflow(ctx context.Context, name string) (workflow.WorkflowVersion, error) {
	return s.db.GetLatestWorkflowVersion(ctx, name)
}

// GetWorkflowVersion returns one version of a workflow.
func (s *API) GetWorkflowVersion(ctx context.Context, name string, version int) (workflow.WorkflowVersion, error) {
	return s.db.GetWorkflowVersion(ctx, name, version)
}

// ListWorkflows returns up to limit workflows by name, after the given
// name: the archived ones, or those that are not.
func (s *API) ListWorkflows(ctx context.Context, archived bool, after string, limit int) ([]workflow.WorkflowSummary, error) {
	return s.db.ListWorkflows(ctx, archived, after, limit)
}

// ArchiveWorkflow archives a workflow, or unarchives it, and returns its
// latest version. An archived workflow starts no new run — from the API, a
// schedule or a parent's call_workflow step — while its runs in flight
// finish. Archiving an archived workflow changes nothing (it keeps the time
// it was first archived), nor does unarchiving one that is not.
func (s *API) ArchiveWorkflow(ctx context.Context, name string, archived bool) (workflow.WorkflowVersion, error) {
	var v workflow.WorkflowVersion
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if _, err := tx.SetWorkflowArchived(ctx, name, archived); err != nil {
			return err
		}
		var err error
		v, err = tx.GetLatestWorkflowVersion(ctx, name)
		return err
	})
	if err != nil {
		return workflow.WorkflowVersion{}, fmt.Errorf("archive workflow %q: %w", name, err)
	}
	if archived {
		s.logger.InfoContext(ctx, "workflow archived", "workflow", name)
	} else {
		s.logger.InfoContext(ctx, "workflow unarchived", "workflow", name)
	}
	return v, nil
}

// archivedError is why a run of an archived workflow does not start.
func archivedError(name string) error {
	return fault.New(fault.Conflict, "workflow %q is archived: it starts no new runs until it is unarchived", name)
}

// ListWorkflowVersions returns up to limit versions of a workflow, newest
// first, older than before (0: from the newest).
func (s *API) ListWorkflowVersions(ctx context.Context, name string, before, limit int) ([]workflow.WorkflowVersion, error) {
	if _, err := s.db.GetWorkflow(ctx, name); err != nil {
		return nil, err
	}
	return s.db.ListWorkflowVersions(ctx, name, before, limit)
}
