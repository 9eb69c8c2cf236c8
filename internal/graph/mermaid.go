package graph

import (
	"fmt"
	"strings"
)

// Mermaid renders g as a Mermaid flowchart, top to bottom ("flowchart TD"):
// lanes and loop bodies are subgraphs, compensation edges dotted, and, with
// a run overlay, step nodes carry a class per status whose classDef gives
// the status's colours. Every label is quoted and escaped, so no text in a
// definition can change the chart's structure.
func Mermaid(g *Graph) string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	levels := g.levels()
	var write func(id, indent string)
	write = func(id, indent string) {
		l := levels[id]
		if l == nil {
			return
		}
		for _, n := range l.nodes {
			lk := lookOf(n.Kind)
			lines := n.Lines()
			label := make([]string, len(lines))
			for i, line := range lines {
				label[i] = mermaidEscape(line)
			}
			text := strings.Join(label, "<br/>")
			if text == "" {
				text = " "
			}
			fmt.Fprintf(&b, "%s%s%s\"%s\"%s\n", indent, n.ID, lk.mermaidOpen, text, lk.mermaidClose)
		}
		for _, gr := range l.groups {
			fmt.Fprintf(&b, "%ssubgraph %s [\"%s\"]\n", indent, gr.ID, mermaidEscape(gr.Label))
			write(gr.ID, indent+"  ")
			fmt.Fprintf(&b, "%send\n", indent)
		}
	}
	write("", "  ")
	for _, e := range g.Edges {
		arrow := "-->"
		if e.Kind == EdgeCompensation {
			arrow = "-.->"
		}
		if e.Label == "" {
			fmt.Fprintf(&b, "  %s %s %s\n", e.From, arrow, e.To)
		} else {
			fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", e.From, arrow, mermaidEscape(e.Label), e.To)
		}
	}

	var compensations []string
	for _, n := range g.Nodes {
		if n.Kind == KindCompensation {
			compensations = append(compensations, n.ID)
		}
	}
	if len(compensations) > 0 {
		b.WriteString("  classDef compensation stroke-dasharray:5 3\n")
		fmt.Fprintf(&b, "  class %s compensation\n", strings.Join(compensations, ","))
	}
	for _, s := range g.usedStatuses() {
		c := colours[s]
		fmt.Fprintf(&b, "  classDef %s fill:%s,stroke:%s,color:%s\n", s, c.fill, c.stroke, c.font)
		var ids []string
		for _, n := range g.Nodes {
			if n.Status == s {
				ids = append(ids, n.ID)
			}
		}
		fmt.Fprintf(&b, "  class %s %s\n", strings.Join(ids, ","), s)
	}
	return b.String()
}

// mermaidEscape makes s safe inside a quoted Mermaid label: every
// character that means something to Mermaid's parser, to HTML (labels are
// rendered as HTML) or to Markdown and math in labels — quotes, brackets,
// braces, "$", "#", "<", "&", "|", "`", "%", ";" and "\" — becomes a
// numeric entity, "#34;" and the like, which Mermaid shows as the
// character itself.
func mermaidEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x80 && !mermaidSafe(byte(r)):
			fmt.Fprintf(&b, "#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mermaidSafe reports whether an ASCII character may appear as itself in a
// quoted Mermaid label.
func mermaidSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(" .,:_-+*/=!?'@~^", c) >= 0
}
