package graph

import (
	"fmt"
	"strings"
)

// DOT renders g in Graphviz's DOT language, top to bottom: lanes and loop
// bodies are clusters, compensation edges dashed, and, with a run overlay,
// step nodes filled with their status's colour. Every node has a class
// attribute (its kind and status) that Graphviz carries into SVG output.
func DOT(g *Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotString(g.Workflow))
	b.WriteString("  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=10, nodesep=0.4, ranksep=0.4];\n")
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=10, style=filled, fillcolor=\"#ffffff\", color=\"#424242\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#616161\"];\n")
	levels := g.levels()
	var write func(id, indent string)
	write = func(id, indent string) {
		l := levels[id]
		if l == nil {
			return
		}
		for _, n := range l.nodes {
			b.WriteString(indent)
			writeDOTNode(&b, n)
		}
		for _, gr := range l.groups {
			fmt.Fprintf(&b, "%ssubgraph cluster_%s {\n", indent, gr.ID)
			fmt.Fprintf(&b, "%s  label=%s; class=%s; style=\"rounded,dashed\"; color=\"#9e9e9e\"; fontcolor=\"#616161\";\n",
				indent, dotString(gr.Label), dotString("group "+string(gr.Kind)))
			write(gr.ID, indent+"  ")
			fmt.Fprintf(&b, "%s}\n", indent)
		}
	}
	write("", "  ")
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -> %s", e.From, e.To)
		var attrs []string
		if e.Label != "" {
			attrs = append(attrs, "label="+dotString(e.Label))
		}
		switch e.Kind {
		case EdgeCompensation:
			attrs = append(attrs, "style=dashed", "arrowhead=open")
		case EdgeLoop:
			// Not a constraint on ranks: the loop node stays above its body.
			attrs = append(attrs, "style=bold", "constraint=false")
		}
		if len(attrs) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(attrs, ", "))
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func writeDOTNode(b *strings.Builder, n *Node) {
	l := lookOf(n.Kind)
	attrs := []string{
		"label=" + dotString(strings.Join(n.Lines(), "\n")),
		"shape=" + l.dotShape,
		"style=" + dotString(l.dotStyle),
		"class=" + dotString(strings.Join(n.classes(), " ")),
	}
	if n.Kind == KindMerge {
		attrs = append(attrs, "width=0.2", "fixedsize=true")
	}
	if c, ok := colours[n.Status]; ok {
		attrs = append(attrs, "fillcolor="+dotString(c.fill), "color="+dotString(c.stroke), "fontcolor="+dotString(c.font))
	}
	fmt.Fprintf(b, "%s [%s];\n", n.ID, strings.Join(attrs, ", "))
}

// dotString quotes s as a DOT string. Inside a label a backslash starts an
// escape (\n, \l, \N, …), so every backslash of s is doubled, and its line
// breaks become \n: the text is shown exactly as given.
func dotString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
