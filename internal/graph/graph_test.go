package graph_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/graph"
	"github.com/durablehq/durable/internal/workflow"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// definitions are the test definitions in testdata/: orders uses every
// step type but loop, hostile puts text that means something to the output
// formats wherever a definition allows text, refunds is a saga, polling
// has loops: one polling a job, one inside a foreach whose body ends in a
// branch.
var definitions = []string{"orders", "hostile", "refunds", "polling"}

// parse reads testdata/NAME.json.
func parse(t *testing.T, name string) *workflow.Definition {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	require.NoError(t, err)
	def, err := workflow.Parse(doc, workflow.Limits{})
	require.NoError(t, err)
	return def
}

// render renders g in every format, by file extension.
func render(t *testing.T, g *graph.Graph) map[string][]byte {
	t.Helper()
	cy, err := graph.Cytoscape(g)
	require.NoError(t, err)
	return map[string][]byte{
		"dot":       []byte(graph.DOT(g)),
		"mermaid":   []byte(graph.Mermaid(g)),
		"cytoscape": append(cy, '\n'),
	}
}

// requireGolden compares got with testdata/NAME.golden, or rewrites the
// file with -update.
func requireGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: go test ./internal/graph/ -update writes it")
	require.Equal(t, string(want), string(got), "%s differs; after checking the change, go test ./internal/graph/ -update rewrites it", path)
}

func TestDefinitionGolden(t *testing.T) {
	t.Parallel()
	for _, name := range definitions {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			def := parse(t, name)
			out := render(t, graph.Build(def))
			for format, got := range out {
				requireGolden(t, name+"."+format, got)
			}
			// The same definition always gives the same graph.
			require.Equal(t, out, render(t, graph.Build(parse(t, name))))
		})
	}
}

// ordersRun is a run of orders in the middle of its foreach: some items
// are done, one is being labelled, one waits to be picked up.
func ordersRun() graph.States {
	s := graph.States{}
	for _, e := range []struct {
		step, status string
		attempts     int
	}{
		{"charge", "succeeded", 2},
		{"route", "succeeded", 1},
		{"vip", "succeeded", 1},
		{"notify", "succeeded", 1},
		{"send_email", "succeeded", 1},
		{"cool_off", "succeeded", 1},
		{"send_sms", "succeeded", 3},
		{"ship", "running", 1},
		{"label", "succeeded", 1},
		{"label", "succeeded", 1},
		{"label", "running", 2},
		{"fragile", "succeeded", 1},
		{"fragile", "succeeded", 1},
		{"wrap", "succeeded", 1},
		{"picked", "succeeded", 1},
		{"picked", "waiting", 1},
	} {
		s.Add(e.step, e.status, e.attempts)
	}
	return s
}

// refundsRun is a run of refunds whose ship step failed for good, and whose
// compensations have run.
func refundsRun() graph.States {
	s := graph.States{}
	s.Add("reserve", "compensated", 1)
	s.Add("charge", "compensated", 2)
	s.Add("ship", "failed", 3)
	return s
}

// pollingRun is a run of polling in its third iteration of poll: the job
// was checked twice and is checked again. The executions of the loop's
// steps have keys qualified by their iteration, and count for the step
// their key ends with.
func pollingRun() graph.States {
	s := graph.States{}
	for _, e := range []struct{ key, status string }{
		{"submit", "succeeded"},
		{"poll", "running"},
		{"poll[0].check", "succeeded"},
		{"poll[0].pause", "succeeded"},
		{"poll[1].check", "succeeded"},
		{"poll[1].pause", "succeeded"},
		{"poll[2].check", "running"},
	} {
		s.Add(e.key[strings.LastIndexByte(e.key, '.')+1:], e.status, 1)
	}
	return s
}

func TestRunOverlayGolden(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		states    graph.States
		runStatus string
	}{
		{"orders", ordersRun(), "running"},
		{"refunds", refundsRun(), "compensated"},
		{"polling", pollingRun(), "running"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := graph.Build(parse(t, tt.name))
			g.Overlay(tt.states, tt.runStatus)
			for format, got := range render(t, g) {
				requireGolden(t, tt.name+"_run."+format, got)
			}
		})
	}
}

func TestOverlay(t *testing.T) {
	t.Parallel()
	def := parse(t, "orders")
	node := func(g *graph.Graph, id string) *graph.Node {
		for _, n := range g.Nodes {
			if n.ID == id {
				return n
			}
		}
		t.Fatalf("no node %s", id)
		return nil
	}
	type execution struct {
		status   string
		attempts int
	}
	for _, tt := range []struct {
		name       string
		executions []execution
		status     string
		line       string // the label's state line; "" for none
	}{
		{"never ran", nil, "pending", ""},
		{"one attempt", []execution{{"succeeded", 1}}, "succeeded", "succeeded · 1 attempt"},
		{"retried", []execution{{"failed", 3}}, "failed", "failed · 3 attempts"},
		{"retry scheduled", []execution{{"pending", 2}}, "pending", "pending · 2 attempts"},
		{"timed out", []execution{{"timed_out", 1}}, "timed_out", "timed out · 1 attempt"},
		{"a loop in progress shows running", []execution{{"succeeded", 1}, {"running", 1}, {"succeeded", 2}}, "running", "1 running, 2 succeeded · 4 attempts"},
		{"a waiting item shows waiting", []execution{{"succeeded", 1}, {"waiting", 1}}, "waiting", "1 waiting, 1 succeeded · 2 attempts"},
		{"a failed item shows failed", []execution{{"succeeded", 1}, {"failed", 3}, {"cancelled", 0}}, "failed", "1 failed, 1 cancelled, 1 succeeded · 4 attempts"},
		{"cancelled", []execution{{"cancelled", 1}}, "cancelled", "cancelled · 1 attempt"},
		{"an unknown status is not passed on", []execution{{`x"] class`, 1}}, "unknown", "unknown · 1 attempt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			states := graph.States{}
			for _, e := range tt.executions {
				states.Add("label", e.status, e.attempts)
			}
			g := graph.Build(def)
			g.Overlay(states, "running")
			n := node(g, "s_label")
			require.Equal(t, tt.status, n.Status)
			require.Equal(t, len(tt.executions), n.Executions)
			if tt.line == "" {
				require.Equal(t, n.Label, n.Lines())
			} else {
				require.Equal(t, append(append([]string(nil), n.Label...), tt.line), n.Lines())
			}
			// Structural nodes have no state, and a running run's end
			// node has none yet.
			for _, id := range []string{graph.StartID, graph.EndID, "m_route", "j_notify"} {
				require.Empty(t, node(g, id).Status, id)
			}
			require.Equal(t, "pending", node(g, "c_label").Status)
		})
	}
}

// TestLoopGraph checks how a loop is drawn: a loop node with its while
// and bound, its body in a group of kind loop, a back edge from the body's
// end, even when the body ends in a branch, and an edge "done" out; and
// that the executions of its steps in every iteration ("poll[2].check")
// count for the step.
func TestLoopGraph(t *testing.T) {
	t.Parallel()
	g := graph.Build(parse(t, "polling"))
	nodes := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	poll := nodes["s_poll"]
	require.Equal(t, graph.KindLoop, poll.Kind)
	require.Equal(t, []string{"poll", "while ${ iteration == 0 || steps.check.output.state != 'done' }", "at most 100 iterations"}, poll.Label)
	require.Equal(t, []string{"upload", "while ${ iteration == 0 || !steps.put.output.ok }", "at most 3 iterations"}, nodes["s_upload"].Label)
	once, err := workflow.Parse([]byte(`{"name": "once", "steps": [{"name": "l", "type": "loop", "while": "${ true }", "max_iterations": 1,
		"steps": [{"name": "s", "type": "sleep", "duration": "1s"}]}]}`), workflow.Limits{})
	require.NoError(t, err)
	require.Equal(t, []string{"l", "while ${ true }", "at most 1 iteration"}, graph.Build(once).Nodes[1].Label)

	groups := map[string]*graph.Group{}
	for _, gr := range g.Groups {
		groups[gr.ID] = gr
	}
	require.Equal(t, &graph.Group{ID: "b_poll", Kind: graph.GroupLoop, Label: "each iteration of poll", Step: "poll"}, groups["b_poll"])
	require.Equal(t, &graph.Group{ID: "b_upload", Kind: graph.GroupLoop, Label: "each iteration of upload", Step: "upload", Parent: "b_deliver"}, groups["b_upload"])
	require.Equal(t, "b_poll", nodes["s_check"].Group)
	require.Equal(t, "b_upload", nodes["s_put"].Group)
	require.Equal(t, "b_upload", nodes["m_stored"].Group)
	require.Equal(t, "b_deliver", nodes["s_upload"].Group)

	type edge struct{ from, to, label string }
	edges := map[edge]graph.EdgeKind{}
	for _, e := range g.Edges {
		edges[edge{e.From, e.To, e.Label}] = e.Kind
	}
	want := map[edge]graph.EdgeKind{
		{graph.StartID, "s_submit", ""}:                          graph.EdgeFlow,
		{"s_submit", "s_poll", ""}:                               graph.EdgeFlow,
		{"s_poll", "s_check", "each iteration"}:                  graph.EdgeFlow,
		{"s_check", "s_pause", ""}:                               graph.EdgeFlow,
		{"s_pause", "s_poll", "next iteration"}:                  graph.EdgeLoop,
		{"s_poll", "s_deliver", "done"}:                          graph.EdgeFlow,
		{"s_deliver", "s_upload", "each item"}:                   graph.EdgeFlow,
		{"s_upload", "s_put", "each iteration"}:                  graph.EdgeFlow,
		{"s_put", "s_stored", ""}:                                graph.EdgeFlow,
		{"s_stored", "s_receipt", "if ${ steps.put.output.ok }"}: graph.EdgeFlow,
		{"s_receipt", "m_stored", ""}:                            graph.EdgeFlow,
		{"s_stored", "m_stored", "default"}:                      graph.EdgeFlow,
		{"m_stored", "s_upload", "next iteration"}:               graph.EdgeLoop,
		{"s_upload", "s_deliver", "next item"}:                   graph.EdgeLoop,
		{"s_deliver", "s_notify", "done"}:                        graph.EdgeFlow,
		{"s_notify", graph.EndID, ""}:                            graph.EdgeFlow,
	}
	for e, kind := range want {
		got, ok := edges[e]
		require.True(t, ok, "no edge %v in %v", e, edges)
		require.Equal(t, kind, got, "%v", e)
	}
	require.Len(t, g.Edges, len(want))

	g.Overlay(pollingRun(), "running")
	check := nodes["s_check"]
	require.Equal(t, "running", check.Status)
	require.Equal(t, 3, check.Executions)
	require.Equal(t, map[string]int{"running": 1, "succeeded": 2}, check.Counts)
	require.Equal(t, "1 running, 2 succeeded · 3 attempts", check.Lines()[len(check.Lines())-1])
	require.Equal(t, "succeeded", nodes["s_pause"].Status)
	require.Equal(t, 2, nodes["s_pause"].Executions)
	require.Equal(t, "running", poll.Status)
	require.Equal(t, 1, poll.Executions)
	require.Equal(t, "pending", nodes["s_put"].Status)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// TestStructure checks every test graph for what the renderers rely on:
// ids unique and safe, edges and groups that refer to what exists, a node
// for every step, and every node on a path from start to end.
func TestStructure(t *testing.T) {
	t.Parallel()
	for _, name := range definitions {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			def := parse(t, name)
			g := graph.Build(def)
			ids := map[string]bool{}
			groups := map[string]bool{"": true}
			for _, gr := range g.Groups {
				require.Regexp(t, idPattern, gr.ID)
				require.False(t, ids[gr.ID], "duplicate id %s", gr.ID)
				ids[gr.ID] = true
				groups[gr.ID] = true
			}
			for _, gr := range g.Groups {
				require.True(t, groups[gr.Parent], "group %s: no parent %s", gr.ID, gr.Parent)
			}
			nodes := map[string]*graph.Node{}
			for _, n := range g.Nodes {
				require.Regexp(t, idPattern, n.ID)
				require.False(t, ids[n.ID], "duplicate id %s", n.ID)
				ids[n.ID] = true
				nodes[n.ID] = n
				require.True(t, groups[n.Group], "node %s: no group %s", n.ID, n.Group)
			}
			def.Walk(func(path string, s *workflow.Step) bool {
				n := nodes["s_"+s.Name]
				require.NotNil(t, n, "no node for step %s", s.Name)
				require.Equal(t, s.Name, n.Step)
				require.Equal(t, path, n.Path)
				require.Equal(t, graph.Kind(s.Type), n.Kind)
				return true
			})
			next, prev := map[string][]string{}, map[string][]string{}
			for _, e := range g.Edges {
				require.Contains(t, nodes, e.From)
				require.Contains(t, nodes, e.To)
				next[e.From] = append(next[e.From], e.To)
				prev[e.To] = append(prev[e.To], e.From)
			}
			from := reach(graph.StartID, next)
			to := reach(graph.EndID, prev)
			for id, n := range nodes {
				require.True(t, from[id], "%s is not reached from start", id)
				if n.Kind != graph.KindCompensation {
					require.True(t, to[id], "end is not reached from %s", id)
				}
			}
		})
	}
}

func reach(from string, edges map[string][]string) map[string]bool {
	seen := map[string]bool{from: true}
	queue := []string{from}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, n := range edges[id] {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	return seen
}

// hostileGraphs are the graphs whose text must survive every format: the
// hostile definition, plain and with an overlay that has an unknown status.
func hostileGraphs(t *testing.T) []*graph.Graph {
	plain := graph.Build(parse(t, "hostile"))
	overlaid := graph.Build(parse(t, "hostile"))
	states := graph.States{}
	states.Add("graph", "succeeded", 1)
	states.Add("subgraph", `"]; click x`, 2)
	overlaid.Overlay(states, `"]`)
	return []*graph.Graph{plain, overlaid}
}

// labelText is what a node's label must show.
func labelText(n *graph.Node) string { return strings.Join(n.Lines(), "\n") }

var (
	mermaidNode     = regexp.MustCompile(`^\s*([A-Za-z0-9_]+)(\(\(\(|\(\(|\[\[|\[/|\[\\|\(\[|\{\{|\[|\{|>)"([^"]*)"(\)\)\)|\)\)|\]\]|/\]|\\\]|\]\)|\}\}|\]|\})$`)
	mermaidSubgraph = regexp.MustCompile(`^\s*subgraph ([A-Za-z0-9_]+) \["([^"]*)"\]$`)
	mermaidEdge     = regexp.MustCompile(`^\s*([A-Za-z0-9_]+) (-->|-\.->)(?:\|"([^"]*)"\|)? ([A-Za-z0-9_]+)$`)
	mermaidClassDef = regexp.MustCompile(`^\s*classDef [a-z_]+ [a-z0-9:#,\- ]+$`)
	mermaidClass    = regexp.MustCompile(`^\s*class [A-Za-z0-9_,]+ [a-z_]+$`)
	// mermaidText is the text of a quoted label: nothing Mermaid, HTML,
	// Markdown or KaTeX would read, only entities and our line breaks.
	mermaidText   = regexp.MustCompile("^(?:[^\"#<>&$\\[\\]{}()|`%;\\\\\n]|#[0-9]+;|<br/>)*$")
	mermaidEntity = regexp.MustCompile(`#([0-9]+);`)
)

// mermaidDecode is what Mermaid shows for a label's text.
func mermaidDecode(s string) string {
	s = strings.ReplaceAll(s, "<br/>", "\n")
	return mermaidEntity.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.Atoi(mermaidEntity.FindStringSubmatch(m)[1])
		return string(rune(n))
	})
}

// TestMermaidEscaping parses the Mermaid of hostile definitions line by
// line with a strict grammar: every line is one statement of the kinds the
// renderer writes, every label is quoted and holds only safe characters
// and entities, and decodes to exactly the node's text.
func TestMermaidEscaping(t *testing.T) {
	t.Parallel()
	for _, g := range hostileGraphs(t) {
		nodes := map[string]*graph.Node{}
		for _, n := range g.Nodes {
			nodes[n.ID] = n
		}
		seen := map[string]bool{}
		edges := 0
		depth := 0
		lines := strings.Split(strings.TrimSuffix(graph.Mermaid(g), "\n"), "\n")
		require.Equal(t, "flowchart TD", lines[0])
		for _, line := range lines[1:] {
			switch {
			case mermaidNode.MatchString(line):
				m := mermaidNode.FindStringSubmatch(line)
				n := nodes[m[1]]
				require.NotNil(t, n, line)
				require.Regexp(t, mermaidText, m[3], line)
				want := labelText(n)
				if want == "" {
					want = " "
				}
				require.Equal(t, want, mermaidDecode(m[3]), line)
				seen[n.ID] = true
			case mermaidSubgraph.MatchString(line):
				m := mermaidSubgraph.FindStringSubmatch(line)
				require.Regexp(t, mermaidText, m[2], line)
				depth++
			case strings.TrimSpace(line) == "end":
				depth--
				require.GreaterOrEqual(t, depth, 0)
			case mermaidEdge.MatchString(line):
				m := mermaidEdge.FindStringSubmatch(line)
				e := g.Edges[edges]
				require.Equal(t, []string{e.From, e.To}, []string{m[1], m[4]}, line)
				require.Regexp(t, mermaidText, m[3], line)
				require.Equal(t, e.Label, mermaidDecode(m[3]), line)
				edges++
			case mermaidClassDef.MatchString(line), mermaidClass.MatchString(line):
			default:
				t.Fatalf("not a statement of the grammar: %q", line)
			}
		}
		require.Zero(t, depth)
		require.Len(t, seen, len(g.Nodes))
		require.Equal(t, len(g.Edges), edges)
	}
}

// dotTokens splits DOT into tokens, failing on any character outside a
// string that the renderer never writes. Strings are returned decoded, with
// a leading '"'; a backslash escape other than \" \\ and \n fails, since
// Graphviz would read it as a label escape such as \N or \l.
func dotTokens(t *testing.T, src string) []string {
	t.Helper()
	var out []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\n':
			i++
		case c == '"':
			var b strings.Builder
			b.WriteByte('"')
			i++
			for ; i < len(src) && src[i] != '"'; i++ {
				if src[i] == '\n' {
					t.Fatalf("a raw line break in a string at %d", i)
				}
				if src[i] != '\\' {
					b.WriteByte(src[i])
					continue
				}
				i++
				switch src[i] {
				case '"', '\\':
					b.WriteByte(src[i])
				case 'n':
					b.WriteByte('\n')
				default:
					t.Fatalf("escape \\%c at %d", src[i], i)
				}
			}
			require.Less(t, i, len(src), "unterminated string")
			i++
			out = append(out, b.String())
		case strings.HasPrefix(src[i:], "->"):
			out = append(out, "->")
			i += 2
		case strings.IndexByte("[]{};=,", c) >= 0:
			out = append(out, string(c))
			i++
		default:
			j := i
			for j < len(src) && (src[j] == '_' || src[j] == '.' || 'a' <= src[j] && src[j] <= 'z' || 'A' <= src[j] && src[j] <= 'Z' || '0' <= src[j] && src[j] <= '9') {
				j++
			}
			require.Greater(t, j, i, "unexpected %q at %d", c, i)
			out = append(out, src[i:j])
			i = j
		}
	}
	return out
}

// TestDOTEscaping tokenizes the DOT of hostile definitions: nothing but
// the renderer's own syntax outside strings, only the escapes it means in
// them, and each node's and edge's label decodes to exactly its text.
func TestDOTEscaping(t *testing.T) {
	t.Parallel()
	for _, g := range hostileGraphs(t) {
		tokens := dotTokens(t, graph.DOT(g))
		labels := map[string]string{}
		var edgeLabels []string
		for i := 0; i+5 < len(tokens); i++ {
			switch {
			case tokens[i+1] == "[" && tokens[i+2] == "label" && tokens[i+3] == "=" && (i == 0 || tokens[i-1] != "->"):
				labels[tokens[i]] = strings.TrimPrefix(tokens[i+4], `"`)
			case tokens[i+1] == "->":
				label := ""
				if tokens[i+3] == "[" && tokens[i+4] == "label" {
					label = strings.TrimPrefix(tokens[i+6], `"`)
				}
				edgeLabels = append(edgeLabels, label)
			}
		}
		for _, n := range g.Nodes {
			require.Contains(t, labels, n.ID)
			require.Equal(t, labelText(n), labels[n.ID], n.ID)
		}
		require.Len(t, edgeLabels, len(g.Edges))
		for i, e := range g.Edges {
			require.Equal(t, e.Label, edgeLabels[i])
		}
	}
}

// TestCytoscapeEscaping checks that labels survive as they are and that no
// character HTML would read appears raw, so the JSON is safe to embed.
func TestCytoscapeEscaping(t *testing.T) {
	t.Parallel()
	for _, g := range hostileGraphs(t) {
		b, err := graph.Cytoscape(g)
		require.NoError(t, err)
		require.False(t, bytes.ContainsAny(b, "<>&"), "%s", b)
		var doc struct {
			Elements struct {
				Nodes []struct {
					Data    map[string]any `json:"data"`
					Classes string         `json:"classes"`
				} `json:"nodes"`
			} `json:"elements"`
		}
		require.NoError(t, json.Unmarshal(b, &doc))
		labels := map[string]any{}
		for _, n := range doc.Elements.Nodes {
			labels[n.Data["id"].(string)] = n.Data["label"]
			require.Regexp(t, `^[a-z_ ]+$`, n.Classes)
		}
		for _, n := range g.Nodes {
			require.Equal(t, labelText(n), labels[n.ID], n.ID)
		}
	}
}

// TestGraphvizRenders runs Graphviz, when it is installed, over every
// golden DOT file.
func TestGraphvizRenders(t *testing.T) {
	t.Parallel()
	if *update {
		t.Skip("the golden files are being rewritten")
	}
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("Graphviz is not installed")
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.dot.golden"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		out, err := exec.Command(dot, "-Tsvg", "-o", os.DevNull, f).CombinedOutput()
		require.NoError(t, err, "%s: %s", f, out)
		require.Empty(t, string(out), f)
	}
}
