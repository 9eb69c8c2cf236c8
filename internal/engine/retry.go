package engine

import (
	"fmt"
	"strconv"

	"github.com/durablehq/durable/internal/workflow"
)

// RunRetryable reports whether a run in status s may be retried. A compensated
// run may not: its compensations undid what its steps did, and running its
// later steps again would build on effects that are gone.
func RunRetryable(s workflow.RunStatus) bool {
	switch s {
	case workflow.RunFailed, workflow.RunTimedOut, workflow.RunCancelled, workflow.RunCompensationFailed:
		return true
	}
	return false
}

// Execution is what planning a retry needs of a step execution of the run.
type Execution struct {
	Status string
	// Started is how many lanes a block opened (a foreach opens its items
	// as earlier ones end), Total how many it has.
	Started, Total int
}

// RetryPlan is what retrying a run does to its step executions, worked out
// from the definition and the executions the run has. Each retried position
// starts again with an execution of its own (a new id, a new webhook-id),
// so the executions it replaces go, with everything nested in them.
type RetryPlan struct {
	// Delete are the keys of the executions removed with their trees: the
	// steps that run again.
	Delete []string
	// Lanes are the keys of the lanes of parallel and foreach steps that
	// did not succeed: they run again (from their step that did not
	// succeed), while their siblings that succeeded keep their outputs.
	Lanes []string
	// Blocks are the parallel and foreach steps that run again for those
	// lanes.
	Blocks []BlockRetry
	// Advance are the positions the run goes on from, each with a work
	// item: a step's key (what follows it starts), a lane's key (its first
	// step starts) or "" (the run's first step).
	Advance []string
}

// BlockRetry is a parallel or foreach step that runs again for some of its
// lanes.
type BlockRetry struct {
	Key string
	// Open is how many more foreach items open at once, beside the lanes
	// that run again, when the block had items it never opened.
	Open int
}

// PlanRetry works out how a run with the executions execs (by key) goes on
// when retried: from the first step that did not succeed — inside the
// parallel and foreach steps, in each of their lanes that did not succeed —
// or, with fromStep, from that top-level step, which runs again with every
// step after it. A step that is neither a parallel nor a foreach (a loop, a
// branch, a call) runs again whole. An unknown fromStep, or one after the
// first top-level step that did not succeed, is an error.
func PlanRetry(def *workflow.Definition, execs map[string]Execution, fromStep string) (RetryPlan, error) {
	var p RetryPlan
	if fromStep == "" {
		p.resume(def, execs, def.Steps, "", "")
		return p, nil
	}
	at := -1
	for i, step := range def.Steps {
		if step.Name == fromStep {
			at = i
			break
		}
	}
	if at < 0 {
		return RetryPlan{}, fmt.Errorf("the workflow has no top-level step %q", fromStep)
	}
	for _, step := range def.Steps[:at] {
		if e, ok := execs[step.Name]; !ok || e.Status != "succeeded" {
			return RetryPlan{}, fmt.Errorf("step %q comes after step %q, which did not succeed: retry without from_step, or from %q", fromStep, step.Name, step.Name)
		}
	}
	for _, step := range def.Steps[at:] {
		if _, ok := execs[step.Name]; ok {
			p.Delete = append(p.Delete, step.Name)
		}
	}
	after := ""
	if at > 0 {
		after = def.Steps[at-1].Name
	}
	p.Advance = []string{after}
	return p, nil
}

// resume plans how a sequence of steps in scope goes on: from its first
// step that did not succeed, or after its last. start is the position
// before its first step: "" for the run's, a lane's key for a lane's.
func (p *RetryPlan) resume(def *workflow.Definition, execs map[string]Execution, steps []*workflow.Step, scope, start string) {
	prev := start
	for _, step := range steps {
		key := scope + step.Name
		e, ok := execs[key]
		if ok && e.Status == "succeeded" {
			prev = key
			continue
		}
		if ok && step.OpensLanes() && p.retryLanes(def, execs, step, key, e) {
			return
		}
		if ok {
			p.Delete = append(p.Delete, key)
		}
		p.Advance = append(p.Advance, prev)
		return
	}
	// Every step succeeded: what follows the last (the end of the run or of
	// the lane) did not happen.
	p.Advance = append(p.Advance, prev)
}

// retryLanes plans a block that runs again for its lanes that did not
// succeed, and reports false when it has none (it failed once they all had
// succeeded, merging their outputs): then it runs again whole.
func (p *RetryPlan) retryLanes(def *workflow.Definition, execs map[string]Execution, step *workflow.Step, key string, block Execution) bool {
	type lane struct {
		key   string
		steps []*workflow.Step
	}
	var lanes []lane
	if step.Parallel != nil {
		for _, b := range step.Parallel.Branches {
			lanes = append(lanes, lane{key + "[" + b.Name + "]", b.Steps})
		}
	} else {
		for i := range block.Started {
			lanes = append(lanes, lane{key + "[" + strconv.Itoa(i) + "]", step.Foreach.Steps})
		}
	}
	again := 0
	for _, l := range lanes {
		if e, ok := execs[l.key]; ok && e.Status == "succeeded" {
			continue
		}
		again++
		p.Lanes = append(p.Lanes, l.key)
		p.resume(def, execs, l.steps, ScopeOf(def, l.key), l.key)
	}
	open := 0
	if step.Foreach != nil && block.Started < block.Total {
		open = min(block.Total-block.Started, max(step.Foreach.Concurrency-again, 0))
	}
	if again == 0 && open == 0 {
		return false
	}
	p.Blocks = append(p.Blocks, BlockRetry{Key: key, Open: open})
	return true
}
