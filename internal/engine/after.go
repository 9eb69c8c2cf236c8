package engine

import "github.com/durablehq/durable/internal/workflow"

// Next is what follows a step that succeeded.
type Next struct {
	// Ended lists the branches whose chosen case ended with the step,
	// innermost first: each succeeds with the step's output.
	Ended []Enclosure
	// Then one of: Step, the next step, starts in Scope; the lane Lane
	// ends, and its block goes on once all its lanes have; the iteration
	// of the loop Loop ends, and the loop decides whether another begins
	// (see [Continue]); or, when none is set, the run has no step left.
	Step  *workflow.Step
	Scope string
	Lane  string
	Loop  *Enclosure
}

// After finds what follows the step named name in scope.
func After(def *workflow.Definition, scope, name string) Next {
	next, ended := def.Successor(name)
	if len(ended) == 0 {
		return Next{Step: next, Scope: scope}
	}
	// The steps that end with this one are the innermost of those around it.
	around := Enclosures(def, scope, name)[:len(ended)]
	for i, e := range around {
		switch {
		case e.Step.OpensLanes():
			return Next{Ended: around[:i], Lane: e.Parent}
		case e.Step.Loop != nil:
			return Next{Ended: around[:i], Loop: &around[i]}
		}
	}
	return Next{Ended: around, Step: next, Scope: around[len(around)-1].Scope}
}

// Failure is where the failure for good of a step leads: the executions
// around it that fail with it, then its lane, or the run.
type Failure struct {
	// Failed lists the branches and loops around the step that fail with
	// it, innermost first, up to its lane or the top.
	Failed []Enclosure
	// Lane is the lane that fails with the step, "" when the run does;
	// Block is the lane's block.
	Lane  string
	Block *Enclosure
}

// FailureOf finds where the failure of the step execution key leads.
func FailureOf(def *workflow.Definition, key string) Failure {
	scope, name := SplitKey(key)
	around := Enclosures(def, scope, name)
	for i, e := range around {
		if e.Step.OpensLanes() {
			return Failure{Failed: around[:i], Lane: e.Parent, Block: &around[i]}
		}
	}
	return Failure{Failed: around}
}
