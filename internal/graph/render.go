package graph

// look is how each output format draws a kind of node.
type look struct {
	dotShape string
	dotStyle string
	// mermaidOpen and mermaidClose surround a Mermaid node's quoted label
	// and give its shape.
	mermaidOpen, mermaidClose string
	cytoscapeShape            string
}

var looks = map[Kind]look{
	KindStart:        {"circle", "filled", "((", "))", "ellipse"},
	KindEnd:          {"doublecircle", "filled", "(((", ")))", "ellipse"},
	KindCall:         {"box", "rounded,filled", "[", "]", "round-rectangle"},
	KindCompensation: {"box", "rounded,dashed,filled", "[", "]", "round-rectangle"},
	KindBranch:       {"diamond", "filled", "{", "}", "diamond"},
	KindMerge:        {"circle", "filled", "((", "))", "ellipse"},
	KindParallel:     {"trapezium", "filled", "[/", `\]`, "rectangle"},
	KindJoin:         {"invtrapezium", "filled", `[\`, "/]", "rectangle"},
	KindForeach:      {"hexagon", "filled", "{{", "}}", "hexagon"},
	KindLoop:         {"hexagon", "filled", "{{", "}}", "hexagon"},
	KindSleep:        {"octagon", "filled", "([", "])", "octagon"},
	KindWaitForEvent: {"cds", "filled", ">", "]", "tag"},
	KindWaitForInput: {"parallelogram", "filled", "[/", "/]", "rhomboid"},
	KindCallWorkflow: {"box3d", "filled", "[[", "]]", "cut-rectangle"},
}

// lookOf returns the look of a kind, a plain box for one it does not know.
func lookOf(k Kind) look {
	if l, ok := looks[k]; ok {
		return l
	}
	return look{"box", "filled", "[", "]", "rectangle"}
}

// level is what one group (or the top level) directly holds.
type level struct {
	nodes  []*Node
	groups []*Group
}

// levels sorts nodes and groups into the groups that directly hold them,
// keyed by group ID, "" for the top level, each in graph order.
func (g *Graph) levels() map[string]*level {
	out := map[string]*level{"": {}}
	at := func(id string) *level {
		l := out[id]
		if l == nil {
			l = &level{}
			out[id] = l
		}
		return l
	}
	for _, gr := range g.Groups {
		at(gr.Parent).groups = append(at(gr.Parent).groups, gr)
	}
	for _, n := range g.Nodes {
		at(n.Group).nodes = append(at(n.Group).nodes, n)
	}
	return out
}
