package graph

import (
	"encoding/json"
	"strconv"
	"strings"
)

// cytoscapeDoc is the JSON of [Cytoscape]: what cytoscape({...}) takes as
// its elements and data.
type cytoscapeDoc struct {
	Data     cytoscapeGraphData `json:"data"`
	Elements cytoscapeElements  `json:"elements"`
}

type cytoscapeGraphData struct {
	Workflow string `json:"workflow"`
	Version  int    `json:"version,omitempty"`
}

type cytoscapeElements struct {
	Nodes []cytoscapeElement[cytoscapeNode] `json:"nodes"`
	Edges []cytoscapeElement[cytoscapeEdge] `json:"edges"`
}

type cytoscapeElement[T any] struct {
	Data    T      `json:"data"`
	Classes string `json:"classes"`
}

type cytoscapeNode struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Kind  string `json:"kind"`
	// Shape is a Cytoscape node shape, for a style of "shape: data(shape)".
	Shape  string `json:"shape,omitempty"`
	Parent string `json:"parent,omitempty"`
	Step   string `json:"step,omitempty"`
	Path   string `json:"path,omitempty"`
	// The run overlay: only in an overlaid graph, and only on step nodes.
	Status     string         `json:"status,omitempty"`
	Color      string         `json:"color,omitempty"`
	Attempts   *int           `json:"attempts,omitempty"`
	Executions *int           `json:"executions,omitempty"`
	Counts     map[string]int `json:"counts,omitempty"`
}

type cytoscapeEdge struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Target string `json:"target"`
	Label  string `json:"label,omitempty"`
	Kind   string `json:"kind"`
}

// Cytoscape renders g as Cytoscape.js JSON:
//
//	{"data": {"workflow": …, "version": …},
//	 "elements": {"nodes": [{"data": {…}, "classes": "…"}], "edges": [...]}}
//
// A node's data has its id, label (lines separated by "\n"), kind, a
// suggested shape, and, for step nodes, the step's name and JSON Pointer.
// Lanes and the bodies of foreach and loop steps are compound nodes (kind
// "lane" or "loop", class "group"), which their nodes name as parent; a
// loop step's own node has the kind "loop" too, and no class "group". A node's classes are its
// kind and, with a run overlay, its status; step nodes of an overlaid graph
// also have status, color, attempts and executions, and counts of
// executions by status when the step ran. An edge's data has its id
// ("e" and its index), source, target, label and kind, also its class.
func Cytoscape(g *Graph) ([]byte, error) {
	doc := cytoscapeDoc{
		Data: cytoscapeGraphData{Workflow: g.Workflow, Version: g.Version},
		Elements: cytoscapeElements{
			Nodes: make([]cytoscapeElement[cytoscapeNode], 0, len(g.Groups)+len(g.Nodes)),
			Edges: make([]cytoscapeElement[cytoscapeEdge], 0, len(g.Edges)),
		},
	}
	// Compound nodes come before their children.
	for _, gr := range g.Groups {
		doc.Elements.Nodes = append(doc.Elements.Nodes, cytoscapeElement[cytoscapeNode]{
			Data:    cytoscapeNode{ID: gr.ID, Label: gr.Label, Kind: string(gr.Kind), Parent: gr.Parent, Step: gr.Step},
			Classes: "group " + string(gr.Kind),
		})
	}
	for _, n := range g.Nodes {
		d := cytoscapeNode{
			ID: n.ID, Label: strings.Join(n.Lines(), "\n"), Kind: string(n.Kind), Shape: lookOf(n.Kind).cytoscapeShape,
			Parent: n.Group, Step: n.Step, Path: n.Path, Status: n.Status,
		}
		if c, ok := colours[n.Status]; ok {
			d.Color = c.fill
		}
		if g.Overlaid && n.Step != "" && n.Kind != KindCompensation {
			d.Attempts, d.Executions = ptr(n.Attempts), ptr(n.Executions)
			d.Counts = n.Counts
		}
		doc.Elements.Nodes = append(doc.Elements.Nodes, cytoscapeElement[cytoscapeNode]{Data: d, Classes: strings.Join(n.classes(), " ")})
	}
	for i, e := range g.Edges {
		doc.Elements.Edges = append(doc.Elements.Edges, cytoscapeElement[cytoscapeEdge]{
			Data:    cytoscapeEdge{ID: "e" + strconv.Itoa(i), Source: e.From, Target: e.To, Label: e.Label, Kind: string(e.Kind)},
			Classes: string(e.Kind),
		})
	}
	return json.MarshalIndent(doc, "", "  ")
}

func ptr[T any](v T) *T { return &v }
