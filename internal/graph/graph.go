// Package graph draws workflow definitions and runs as graphs: [Build]
// turns a parsed [workflow.Definition] into a [Graph] of nodes, edges and
// groups, laid out the way a reader would draw the workflow by hand;
// [Graph.Overlay] colours it with the state of a run's steps; [DOT],
// [Mermaid] and [Cytoscape] render it.
//
// The shape of a graph:
//
//   - a start node, the steps in order, and an end node;
//   - a branch is a decision node with one labelled edge per case (the
//     case's value as JSON, its if expression, or "default") into the
//     case's steps, which join again in a merge node after the branch;
//   - a parallel step is a fork node with one lane (a group labelled with
//     the branch's name) per branch, joined again in a join node;
//   - a foreach step is a loop node, labelled with its items expression,
//     with an edge "each item" into its body (a group), a back edge "next
//     item" from the body's end, and an edge "done" to what follows;
//   - a loop step is drawn the same way, labelled with its while expression
//     and its max_iterations, with the edges "each iteration", "next
//     iteration" and "done";
//   - a call step's compensation is a node of its own, reached from the
//     step by a dashed edge.
//
// Node ids are derived from step names (unique in a definition), so the
// same definition always gives the same graph, and ids are safe to use
// unquoted in every output format.
package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/durablehq/durable/internal/workflow"
)

// Kind is what a node stands for: a step type, or one of the structural
// nodes a drawing needs.
type Kind string

// The kinds of nodes. Step nodes have the kind of their step's type.
const (
	KindStart        Kind = "start"
	KindEnd          Kind = "end"
	KindCall         Kind = Kind(workflow.StepCall)
	KindBranch       Kind = Kind(workflow.StepBranch)
	KindParallel     Kind = Kind(workflow.StepParallel)
	KindForeach      Kind = Kind(workflow.StepForeach)
	KindLoop         Kind = Kind(workflow.StepLoop)
	KindSleep        Kind = Kind(workflow.StepSleep)
	KindWaitForEvent Kind = Kind(workflow.StepWaitForEvent)
	KindWaitForInput Kind = Kind(workflow.StepWaitForInput)
	KindCallWorkflow Kind = Kind(workflow.StepCallWorkflow)
	// KindMerge is where the cases of a branch come together again.
	KindMerge Kind = "merge"
	// KindJoin is where the lanes of a parallel step come together again.
	KindJoin Kind = "join"
	// KindCompensation is the compensating call of a call step.
	KindCompensation Kind = "compensation"
)

// EdgeKind says how an edge is drawn.
type EdgeKind string

const (
	// EdgeFlow is the ordinary path from one node to the next.
	EdgeFlow EdgeKind = "flow"
	// EdgeLoop is a foreach or loop body's back edge to its step's node.
	EdgeLoop EdgeKind = "loop"
	// EdgeCompensation leads from a call step to its compensation; drawn
	// dashed.
	EdgeCompensation EdgeKind = "compensation"
)

// GroupKind says what a group of nodes is.
type GroupKind string

const (
	// GroupLane is one branch of a parallel step.
	GroupLane GroupKind = "lane"
	// GroupLoop is the body of a foreach or loop step, run once per item or
	// iteration. A group of this kind is not a node of [KindLoop], whose
	// kind has the same name.
	GroupLoop GroupKind = "loop"
)

// Graph is a drawing of a workflow definition, optionally with the state
// of a run laid over it.
type Graph struct {
	// Workflow and Version name the definition drawn; Version is 0 when
	// unknown.
	Workflow string
	Version  int
	// Nodes are in document order: each node after the ones that lead to
	// it, except for back edges.
	Nodes  []*Node
	Edges  []*Edge
	Groups []*Group
	// Overlaid is true once [Graph.Overlay] has been applied; renderers then
	// style every step node by its status.
	Overlaid bool
}

// Node is one node of a [Graph].
type Node struct {
	// ID is unique in the graph, stable for a given definition, and made of
	// ASCII letters, digits and "_" only.
	ID   string
	Kind Kind
	// Step is the name of the step the node stands for: set for step nodes
	// and for compensation nodes (the compensated step), empty for start,
	// end, merge and join nodes.
	Step string
	// Path is the JSON Pointer of the step in the definition, when Step is
	// set.
	Path string
	// Group is the ID of the innermost group the node is in, or "".
	Group string
	// Label is the node's text, one element per line: the step's name
	// first, then what the step does. Lines are plain text; renderers
	// escape them.
	Label []string

	// The run overlay; see [Graph.Overlay]. Status is empty without one.
	Status string
	// Attempts counts the attempts of all of the step's executions.
	Attempts int
	// Executions counts the step's executions: more than one for a step in
	// the body of a foreach or a loop.
	Executions int
	// Counts is the number of the step's executions in each status.
	Counts map[string]int
}

// Lines returns the node's label lines, with a line for its run state when
// the graph is overlaid and the step ran.
func (n *Node) Lines() []string {
	if n.Executions == 0 {
		return n.Label
	}
	return append(append([]string(nil), n.Label...), n.stateLine())
}

// stateLine summarizes the node's run state: "failed · 3 attempts", or for
// a step executed several times, "2 succeeded, 1 running · 4 attempts".
func (n *Node) stateLine() string {
	var b strings.Builder
	if n.Executions == 1 {
		b.WriteString(strings.ReplaceAll(n.Status, "_", " "))
	} else {
		for _, st := range statusesOf(n.Counts) {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d %s", n.Counts[st], strings.ReplaceAll(st, "_", " "))
		}
	}
	if n.Attempts == 1 {
		b.WriteString(" · 1 attempt")
	} else {
		fmt.Fprintf(&b, " · %d attempts", n.Attempts)
	}
	return b.String()
}

// Edge is one edge of a [Graph].
type Edge struct {
	From, To string
	// Label is plain text, or "".
	Label string
	Kind  EdgeKind
}

// Group is a set of nodes drawn together in a box: a lane of a parallel
// step, or the body of a foreach or loop step.
type Group struct {
	// ID is unique among the graph's nodes and groups, with the same
	// alphabet as node IDs.
	ID    string
	Kind  GroupKind
	Label string
	// Step is the name of the parallel, foreach or loop step the group
	// belongs to.
	Step string
	// Parent is the ID of the enclosing group, or "".
	Parent string
}

// The IDs of the start and end nodes. Step nodes are "s_" and the step's
// name; the other nodes and groups have prefixes of their own, so no two
// ids collide whatever the steps are named.
const (
	StartID = "wf_start"
	EndID   = "wf_end"
)

func stepID(name string) string         { return "s_" + name }
func mergeID(name string) string        { return "m_" + name }
func joinID(name string) string         { return "j_" + name }
func compensationID(name string) string { return "c_" + name }
func bodyID(name string) string         { return "b_" + name }

// laneID names a lane by its index, not its branch's name: "l_a_b" could
// be step a's branch b or step a_b's, but the index after the last "_" is
// always a number.
func laneID(name string, i int) string { return "l_" + name + "_" + strconv.Itoa(i) }

// Build draws a definition. The definition must be valid, as [workflow.Parse]
// returns it.
func Build(def *workflow.Definition) *Graph {
	b := &builder{g: &Graph{Workflow: def.Name}}
	b.node(&Node{ID: StartID, Kind: KindStart, Label: []string{"start"}})
	exit := b.steps(def.Steps, "", exit{from: StartID})
	b.node(&Node{ID: EndID, Kind: KindEnd, Label: []string{"end"}})
	b.edge(exit.from, EndID, exit.label, EdgeFlow)
	return b.g
}

type builder struct {
	g *Graph
}

// exit is a way out of part of a graph: the node it leaves from and the
// label of the edge that leaves it.
type exit struct {
	from, label string
}

func (b *builder) node(n *Node) { b.g.Nodes = append(b.g.Nodes, n) }

func (b *builder) edge(from, to, label string, kind EdgeKind) {
	b.g.Edges = append(b.g.Edges, &Edge{From: from, To: to, Label: label, Kind: kind})
}

// steps draws a list of steps in sequence, entered by in, and returns its
// exit. Edges are added in reading order: the edge into a step before the
// ones inside it.
func (b *builder) steps(steps []*workflow.Step, group string, in exit) exit {
	for _, s := range steps {
		in = b.step(s, group, in)
	}
	return in
}

// step draws one step, entered by in, and the steps nested in it, and
// returns its exit.
func (b *builder) step(s *workflow.Step, group string, in exit) exit {
	n := &Node{ID: stepID(s.Name), Kind: Kind(s.Type), Step: s.Name, Path: s.Path, Group: group, Label: []string{s.Name}}
	b.node(n)
	b.edge(in.from, n.ID, in.label, EdgeFlow)
	switch {
	case s.Call != nil:
		n.Label = append(n.Label, requestLine(&s.Call.Request))
		if c := s.Call.Compensate; c != nil {
			b.node(&Node{
				ID: compensationID(s.Name), Kind: KindCompensation, Step: s.Name, Path: s.Path + "/compensate", Group: group,
				Label: []string{"compensate " + s.Name, requestLine(c)},
			})
			b.edge(n.ID, compensationID(s.Name), "compensate", EdgeCompensation)
		}
	case s.Branch != nil:
		if s.Branch.On != nil {
			n.Label = append(n.Label, "on "+expression(s.Branch.On))
		}
		var cases []exit
		for _, c := range s.Branch.Cases {
			label := "if " + expression(c.If)
			if c.If == nil {
				label = jsonLabel(c.Value)
			}
			cases = append(cases, b.steps(c.Steps, group, exit{n.ID, label}))
		}
		if s.Branch.Default != nil {
			cases = append(cases, b.steps(s.Branch.Default, group, exit{n.ID, "default"}))
		} else {
			// No case matched and there is no default: the branch does
			// nothing.
			cases = append(cases, exit{n.ID, "default"})
		}
		b.node(&Node{ID: mergeID(s.Name), Kind: KindMerge, Group: group})
		for _, c := range cases {
			b.edge(c.from, mergeID(s.Name), c.label, EdgeFlow)
		}
		return exit{from: mergeID(s.Name)}
	case s.Parallel != nil:
		n.Label = append(n.Label, "parallel · "+string(s.Parallel.OnError))
		var lanes []exit
		for i, br := range s.Parallel.Branches {
			lane := &Group{ID: laneID(s.Name, i), Kind: GroupLane, Label: br.Name, Step: s.Name, Parent: group}
			b.g.Groups = append(b.g.Groups, lane)
			lanes = append(lanes, b.steps(br.Steps, lane.ID, exit{from: n.ID}))
		}
		b.node(&Node{ID: joinID(s.Name), Kind: KindJoin, Group: group, Label: []string{"join " + s.Name}})
		for _, l := range lanes {
			b.edge(l.from, joinID(s.Name), l.label, EdgeFlow)
		}
		return exit{from: joinID(s.Name)}
	case s.Foreach != nil:
		f := s.Foreach
		n.Label = append(n.Label, "for each in "+expression(f.Items))
		if f.Mode == workflow.ForeachConcurrent {
			n.Label = append(n.Label, "concurrent ×"+strconv.Itoa(f.Concurrency))
		}
		body := &Group{ID: bodyID(s.Name), Kind: GroupLoop, Label: "each item of " + s.Name, Step: s.Name, Parent: group}
		b.g.Groups = append(b.g.Groups, body)
		last := b.steps(f.Steps, body.ID, exit{n.ID, "each item"})
		b.edge(last.from, n.ID, "next item", EdgeLoop)
		return exit{n.ID, "done"}
	case s.Loop != nil:
		l := s.Loop
		n.Label = append(n.Label, "while "+expression(l.While), iterations(l.MaxIterations))
		body := &Group{ID: bodyID(s.Name), Kind: GroupLoop, Label: "each iteration of " + s.Name, Step: s.Name, Parent: group}
		b.g.Groups = append(b.g.Groups, body)
		last := b.steps(l.Steps, body.ID, exit{n.ID, "each iteration"})
		b.edge(last.from, n.ID, "next iteration", EdgeLoop)
		return exit{n.ID, "done"}
	case s.Sleep != nil:
		switch {
		case s.Sleep.Until != nil:
			n.Label = append(n.Label, "sleep until "+expression(s.Sleep.Until))
		case !s.Sleep.UntilTime.IsZero():
			n.Label = append(n.Label, "sleep until "+s.Sleep.UntilTime.UTC().Format(time.RFC3339))
		default:
			n.Label = append(n.Label, "sleep "+duration(s.Sleep.Duration))
		}
	case s.WaitForEvent != nil:
		w := s.WaitForEvent
		names := make([]string, len(w.Events))
		for i, e := range w.Events {
			names[i] = e.Event
		}
		prefix := "event "
		switch w.Mode {
		case workflow.EventAny:
			prefix = "any of "
		case workflow.EventAll:
			prefix = "all of "
		}
		n.Label = append(n.Label, sanitize(prefix+strings.Join(names, ", "), maxLine))
		if w.Timeout > 0 {
			n.Label = append(n.Label, "timeout "+duration(w.Timeout))
		}
	case s.WaitForInput != nil:
		w := s.WaitForInput
		line := "input: " + string(w.Kind)
		if w.Kind == workflow.InputChoice {
			line += " (" + strings.Join(w.Options, " | ") + ")"
		}
		n.Label = append(n.Label, sanitize(line, maxLine))
		if w.Prompt != "" {
			n.Label = append(n.Label, sanitize("“"+w.Prompt+"”", maxLine))
		}
	case s.CallWorkflow != nil:
		c := s.CallWorkflow
		line := "workflow " + c.Workflow
		if c.Version != 0 {
			line += " v" + strconv.Itoa(c.Version)
		}
		if !c.Wait {
			line += " (no wait)"
		}
		n.Label = append(n.Label, line)
	}
	return exit{from: n.ID}
}

// duration formats d without the zero minutes and seconds Go adds: "10m",
// "24h", "1h30m".
func duration(d workflow.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// iterations says how many iterations a loop may run: "at most 100
// iterations".
func iterations(n int) string {
	if n == 1 {
		return "at most 1 iteration"
	}
	return "at most " + strconv.Itoa(n) + " iterations"
}

// maxLine bounds a label line, in characters; longer ones end in "…".
const maxLine = 60

// requestLine describes a request as its method and host.
func requestLine(r *workflow.Request) string {
	// Only the host: the rest of a URL may hold credentials.
	host := "?"
	if u, err := url.Parse(r.URL); err == nil && u.Host != "" {
		host = u.Host
	}
	return sanitize(r.Method+" "+host, maxLine)
}

// expression is an expression as written, "${ … }", shortened to a line.
func expression(e *workflow.Expr) string {
	if e == nil {
		return ""
	}
	return sanitize(e.String(), maxLine)
}

// jsonLabel is a case value as JSON.
func jsonLabel(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return sanitize(strings.TrimSuffix(buf.String(), "\n"), maxLine)
}

// sanitize makes s one line of plain text of at most max characters:
// control characters, line and paragraph separators and bidirectional
// controls (which could make a label read backwards) become spaces, and a
// longer text is cut and ends in "…".
func sanitize(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
