package graph

import (
	"slices"
)

// The statuses a step execution can have, in order of precedence: a step
// executed several times (in the body of a foreach or a loop) shows the
// first of them that any of its executions has, so a loop still in
// progress shows as running, and a finished one with a failed item as
// failed.
var statusOrder = []string{
	"running", "waiting", "pending",
	"failed", "compensation_failed", "compensating", "timed_out", "cancelled",
	"compensated", "succeeded", "skipped",
	statusUnknown,
}

// statusUnknown stands for a status this package does not know; renderers
// use statuses as class names, so a status is never passed on as is.
const statusUnknown = "unknown"

// colour is how nodes of one status are drawn.
type colour struct {
	fill, stroke, font string
}

// colours are the nodes' colours by status: green for done, red for
// failed, blue for running, amber for waiting, grey for not run (yet),
// dark for cancelled and timed out.
var colours = map[string]colour{
	"succeeded":           {"#c8e6c9", "#2e7d32", "#1b5e20"},
	"failed":              {"#ffcdd2", "#c62828", "#b71c1c"},
	"running":             {"#bbdefb", "#1565c0", "#0d47a1"},
	"waiting":             {"#ffe082", "#ff8f00", "#5d4037"},
	"pending":             {"#eeeeee", "#9e9e9e", "#616161"},
	"skipped":             {"#eeeeee", "#9e9e9e", "#616161"},
	"cancelled":           {"#616161", "#212121", "#ffffff"},
	"timed_out":           {"#424242", "#212121", "#ffffff"},
	"compensating":        {"#ffe0b2", "#ef6c00", "#e65100"},
	"compensated":         {"#e1bee7", "#6a1b9a", "#4a148c"},
	"compensation_failed": {"#ef9a9a", "#b71c1c", "#b71c1c"},
	statusUnknown:         {"#eeeeee", "#9e9e9e", "#616161"},
}

// StepState is the state of one step of a run: how many of its executions
// are in each status, and how many attempts they made together.
type StepState struct {
	Counts   map[string]int
	Attempts int
}

// States holds the state of a run's steps by step name. Build one with
// [States.Add], one step execution at a time.
type States map[string]*StepState

// Add counts one execution of the named step. step is the step's name in
// the definition, not the execution's key: the executions of the steps of
// foreach items and loop iterations, such as "ship[3].label" or
// "poll[2].check", all count for their step, label or check.
func (s States) Add(step, status string, attempts int) {
	st := s[step]
	if st == nil {
		st = &StepState{Counts: map[string]int{}}
		s[step] = st
	}
	if _, ok := colours[status]; !ok {
		status = statusUnknown
	}
	st.Counts[status]++
	st.Attempts += attempts
}

// runEnded lists the statuses of a run that has ended.
var runEnded = map[string]bool{
	"succeeded": true, "failed": true, "cancelled": true, "timed_out": true,
	"compensated": true, "compensation_failed": true,
}

// Overlay lays the state of a run over the graph: each step node gets its
// step's status (pending when the step never ran), attempts and execution
// counts, and a compensation node the compensation part of its step's
// status. The end node takes the run's status once the run has ended.
func (g *Graph) Overlay(steps States, runStatus string) {
	g.Overlaid = true
	for _, n := range g.Nodes {
		st := steps[n.Step]
		switch {
		case n.Kind == KindEnd && runEnded[runStatus]:
			n.Status = runStatus
		case n.Step == "":
		case n.Kind == KindCompensation:
			n.Status = "pending"
			if st != nil {
				for _, s := range []string{"compensation_failed", "compensating", "compensated"} {
					if st.Counts[s] > 0 {
						n.Status = s
						break
					}
				}
			}
		case st == nil:
			n.Status = "pending"
		default:
			n.Counts = make(map[string]int, len(st.Counts))
			for k, v := range st.Counts {
				n.Counts[k] = v
				n.Executions += v
			}
			n.Attempts = st.Attempts
			n.Status = statusesOf(st.Counts)[0]
		}
	}
}

// statusesOf lists the statuses with executions, in order of precedence.
func statusesOf(counts map[string]int) []string {
	var out []string
	for _, s := range statusOrder {
		if counts[s] > 0 {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		out = append(out, "pending")
	}
	return out
}

// classes lists the style classes of a node: its kind, then its status
// when the graph is overlaid.
func (n *Node) classes() []string {
	out := []string{string(n.Kind)}
	if n.Status != "" {
		out = append(out, n.Status)
	}
	return out
}

// usedStatuses lists the statuses of the graph's nodes, in order of
// precedence.
func (g *Graph) usedStatuses() []string {
	var out []string
	for _, s := range statusOrder {
		if slices.ContainsFunc(g.Nodes, func(n *Node) bool { return n.Status == s }) {
			out = append(out, s)
		}
	}
	return out
}
