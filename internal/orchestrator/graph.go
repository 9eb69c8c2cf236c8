package orchestrator

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/graph"
	"github.com/durablehq/durable/internal/workflow"
)

// graphPageSize is how many step executions [API.RunGraph] reads at a
// time: a run with a foreach over thousands of items is aggregated page by
// page, never held whole.
const graphPageSize = 1000

// WorkflowGraph draws a version of a workflow (0: the latest). An unknown
// workflow or version is a not-found error.
func (s *API) WorkflowGraph(ctx context.Context, name string, version int) (*graph.Graph, error) {
	var v workflow.WorkflowVersion
	var err error
	if version == 0 {
		v, err = s.db.GetLatestWorkflowVersion(ctx, name)
	} else {
		v, err = s.db.GetWorkflowVersion(ctx, name, version)
	}
	if err != nil {
		return nil, err
	}
	def, err := s.definition(v)
	if err != nil {
		return nil, err
	}
	g := graph.Build(def)
	g.Version = v.Version
	return g, nil
}

// RunGraph draws the workflow version a run is pinned to with the state of
// the run's steps laid over it: each step's executions counted by status,
// and their attempts. An unknown run is a not-found error.
func (s *API) RunGraph(ctx context.Context, runID uuid.UUID) (*graph.Graph, error) {
	run, err := s.db.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	def, err := s.definitionOf(ctx, s.db, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	states := graph.States{}
	var cursor *workflow.Cursor
	for {
		steps, err := s.db.ListSteps(ctx, runID, cursor, graphPageSize)
		if err != nil {
			return nil, fmt.Errorf("graph of run %s: %w", runID, err)
		}
		for _, st := range steps {
			// A lane's execution bears its block's name; the block's own
			// execution says how the block went.
			if st.Type != laneExecType {
				states.Add(st.Name, st.Status, st.Attempt)
			}
		}
		if len(steps) < graphPageSize {
			break
		}
		last := steps[len(steps)-1]
		cursor = &workflow.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	g := graph.Build(def)
	g.Version = run.Version
	g.Overlay(states, string(run.Status))
	return g, nil
}
