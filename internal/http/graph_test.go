package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/api"
	"github.com/durablehq/durable/internal/graph"
	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// GET /v1/workflows/{name}/graph and GET /v1/runs/{id}/graph. The graphs
// themselves are tested in internal/graph; these tests check what the API
// adds: formats and their media types, versions, a run's pinned version
// and its state, and refusals.

// graphOf fetches a graph and requires a 200 in the format's media type.
func (b *testBundle) graphOf(t *testing.T, path, format string) []byte {
	t.Helper()
	if format != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "format=" + format
	}
	res := b.do(t, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, res.status, "GET %s: %s", path, truncate(res.body))
	want := map[string]string{
		"":          "text/plain; charset=utf-8",
		"mermaid":   "text/plain; charset=utf-8",
		"dot":       "text/vnd.graphviz; charset=utf-8",
		"cytoscape": "application/json",
	}[format]
	require.Equal(t, want, res.header.Get("Content-Type"), "GET %s", path)
	require.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"))
	return res.body
}

// cytoscapeDoc is the part of a Cytoscape graph the tests read.
type cytoscapeDoc struct {
	Data struct {
		Workflow string `json:"workflow"`
		Version  int    `json:"version"`
	} `json:"data"`
	Elements struct {
		Nodes []struct {
			Data struct {
				ID         string         `json:"id"`
				Label      string         `json:"label"`
				Kind       string         `json:"kind"`
				Status     string         `json:"status"`
				Attempts   *int           `json:"attempts"`
				Executions *int           `json:"executions"`
				Counts     map[string]int `json:"counts"`
			} `json:"data"`
			Classes string `json:"classes"`
		} `json:"nodes"`
		Edges []json.RawMessage `json:"edges"`
	} `json:"elements"`
}

func (b *testBundle) cytoscape(t *testing.T, path string) cytoscapeDoc {
	t.Helper()
	var doc cytoscapeDoc
	require.NoError(t, json.Unmarshal(b.graphOf(t, path, "cytoscape"), &doc))
	return doc
}

// nodeState is a node's overlay as the Cytoscape JSON shows it.
type nodeState struct {
	Status   string
	Attempts int
	Classes  string
}

// states returns the overlay of every node with a status, by node id.
func (d cytoscapeDoc) states() map[string]nodeState {
	out := map[string]nodeState{}
	for _, n := range d.Elements.Nodes {
		if n.Data.Status == "" {
			continue
		}
		s := nodeState{Status: n.Data.Status, Classes: n.Classes}
		if n.Data.Attempts != nil {
			s.Attempts = *n.Data.Attempts
		}
		out[n.Data.ID] = s
	}
	return out
}

// expectedGraph renders a definition as the graph package does.
func expectedGraph(t *testing.T, def string, version int, format string) string {
	t.Helper()
	d, err := workflow.Parse([]byte(def), workflow.Limits{})
	require.NoError(t, err)
	g := graph.Build(d)
	g.Version = version
	switch format {
	case "dot":
		return graph.DOT(g)
	case "cytoscape":
		b, err := graph.Cytoscape(g)
		require.NoError(t, err)
		return string(b) + "\n"
	}
	return graph.Mermaid(g)
}

// shipWorkflow is a second version of greet: every step type the API
// accepts, and a compensation.
const shipWorkflow = `{
  "name": "greet",
  "steps": [
    {"name": "lookup", "type": "call", "url": "http://127.0.0.1:9000/lookup",
     "compensate": {"url": "http://127.0.0.1:9000/forget"}},
    {"name": "cool_off", "type": "sleep", "duration": "10m"},
    {"name": "paid", "type": "wait_for_event", "event": "payment.settled", "key": "${ input.order }"},
    {"name": "approve", "type": "wait_for_input", "kind": "approval", "prompt": "Send the \"welcome\" <mail>?"},
    {"name": "send", "type": "call", "method": "PUT", "url": "http://127.0.0.1:9000/send"}
  ]}`

func TestWorkflowGraph(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, 1, b.createWorkflow(t, twoStepWorkflow).Version)
	require.Equal(t, 2, b.createWorkflow(t, shipWorkflow).Version)

	t.Run("formats", func(t *testing.T) {
		for _, format := range []string{"", "mermaid", "dot", "cytoscape"} {
			got := b.graphOf(t, "/v1/workflows/greet/graph", format)
			require.Equal(t, expectedGraph(t, shipWorkflow, 2, format), string(got), "format %q", format)
		}
		require.True(t, strings.HasPrefix(string(b.graphOf(t, "/v1/workflows/greet/graph", "")), "flowchart TD\n"))
		require.True(t, strings.HasPrefix(string(b.graphOf(t, "/v1/workflows/greet/graph", "dot")), `digraph "greet" {`))
	})

	t.Run("the latest version by default, any version on request", func(t *testing.T) {
		latest := b.cytoscape(t, "/v1/workflows/greet/graph")
		require.Equal(t, "greet", latest.Data.Workflow)
		require.Equal(t, 2, latest.Data.Version)
		require.Len(t, latest.Elements.Nodes, 8, "start, five steps, a compensation, end")
		require.Empty(t, latest.states(), "a definition's graph has no run state")

		first := b.cytoscape(t, "/v1/workflows/greet/graph?version=1")
		require.Equal(t, 1, first.Data.Version)
		var ids []string
		for _, n := range first.Elements.Nodes {
			ids = append(ids, n.Data.ID)
		}
		require.Equal(t, []string{graph.StartID, "s_lookup", "s_send", graph.EndID}, ids)
		for _, format := range []string{"mermaid", "dot", "cytoscape"} {
			require.Equal(t, expectedGraph(t, twoStepWorkflow, 1, format), string(b.graphOf(t, "/v1/workflows/greet/graph?version=1", format)))
		}
		require.Equal(t, b.graphOf(t, "/v1/workflows/greet/graph", "dot"), b.graphOf(t, "/v1/workflows/greet/graph?version=2", "dot"))
	})

	t.Run("labels are escaped", func(t *testing.T) {
		mermaid := string(b.graphOf(t, "/v1/workflows/greet/graph", "mermaid"))
		require.Contains(t, mermaid, `“Send the #34;welcome#34; #60;mail#62;?”`)
		require.Contains(t, mermaid, `event payment.settled`)
		require.Contains(t, mermaid, `input: approval`)
		dot := string(b.graphOf(t, "/v1/workflows/greet/graph", "dot"))
		require.Contains(t, dot, `“Send the \"welcome\" <mail>?”`)
	})

	t.Run("unknown workflow or version", func(t *testing.T) {
		for _, path := range []string{
			"/v1/workflows/nope/graph",
			"/v1/workflows/nope/graph?format=dot&version=1",
			"/v1/workflows/greet/graph?version=3",
			"/v1/workflows/greet/graph?format=cytoscape&version=2147483647",
		} {
			requireProblem(t, b.do(t, http.MethodGet, path, nil), http.StatusNotFound)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, tt := range []struct{ query, path string }{
			{"format=svg", "query:format"},
			{"format=DOT", "query:format"},
			{"version=0", "query:version"},
			{"version=-1", "query:version"},
			{"version=1.5", "query:version"},
			{"version=two", "query:version"},
			{"version=2147483648", "query:version"},
		} {
			res := b.do(t, http.MethodGet, "/v1/workflows/greet/graph?"+tt.query, nil)
			requireProblem(t, res, http.StatusBadRequest, tt.path)
		}
		requireProblem(t, b.do(t, http.MethodGet, "/v1/workflows/Not%20A%20Name/graph", nil), http.StatusBadRequest)
	})

	t.Run("methods", func(t *testing.T) {
		res := b.do(t, http.MethodPost, "/v1/workflows/greet/graph", []byte(`{}`))
		requireProblem(t, res, http.StatusMethodNotAllowed)
		require.Equal(t, "GET", res.header.Get("Allow"))
	})
}

func TestRunGraphPinnedAndPending(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	// A newer version does not change the graph of a run pinned to the
	// older one.
	b.createWorkflow(t, shipWorkflow)

	doc := b.cytoscape(t, "/v1/runs/"+r.ID+"/graph")
	require.Equal(t, 1, doc.Data.Version)
	require.Equal(t, map[string]nodeState{
		"s_lookup": {"pending", 0, "call pending"},
		"s_send":   {"pending", 0, "call pending"},
	}, doc.states(), "no step has run: every step is pending, the run has not ended")

	mermaid := string(b.graphOf(t, "/v1/runs/"+r.ID+"/graph", ""))
	require.Contains(t, mermaid, "classDef pending fill:#eeeeee")
	require.Contains(t, mermaid, "class s_lookup,s_send pending\n")
	dot := string(b.graphOf(t, "/v1/runs/"+r.ID+"/graph", "dot"))
	require.Contains(t, dot, `s_lookup [label="lookup\nPOST 127.0.0.1:9000", shape=box, style="rounded,filled", class="call pending", fillcolor="#eeeeee"`)

	// A cancelled run's end node is dark, its steps still grey.
	res := b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/cancel", []byte(`{}`))
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	doc = b.cytoscape(t, "/v1/runs/"+r.ID+"/graph")
	require.Equal(t, nodeState{"cancelled", 0, "end cancelled"}, doc.states()[graph.EndID])
}

func TestRunGraphRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/runs/0190a4c2-7d3e-7000-8000-000000000000/graph", nil), http.StatusNotFound)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/runs/0190a4c2-7d3e-7000-8000-000000000000/graph?format=dot", nil), http.StatusNotFound)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/runs/not-a-uuid/graph", nil), http.StatusBadRequest, "path:id")
	requireProblem(t, b.do(t, http.MethodGet, "/v1/runs/"+r.ID+"/graph?format=png", nil), http.StatusBadRequest, "query:format")
	// A run's graph is of its pinned version: there is no version to ask
	// for, and an unknown parameter is ignored like elsewhere.
	b.graphOf(t, "/v1/runs/"+r.ID+"/graph?version=7", "dot")
}

func TestGraphsRequireAKey(t *testing.T) {
	t.Parallel()
	b := setup(t, withAPIKeys("graph-key"))
	auth := []string{"Authorization", "Bearer graph-key"}
	res := b.do(t, http.MethodPost, "/v1/workflows", []byte(twoStepWorkflow), auth...)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	res = b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet"}`), auth...)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	var r run
	res.decode(t, &r)
	for _, path := range []string{"/v1/workflows/greet/graph", "/v1/runs/" + r.ID + "/graph?format=dot"} {
		requireProblem(t, b.do(t, http.MethodGet, path, nil), http.StatusUnauthorized)
		requireProblem(t, b.do(t, http.MethodGet, path, nil, "Authorization", "Bearer wrong"), http.StatusUnauthorized)
		res := b.do(t, http.MethodGet, path, nil, auth...)
		require.Equal(t, http.StatusOK, res.status, "GET %s: %s", path, truncate(res.body))
	}
}

// startStepWorker runs a worker that may call step servers on loopback,
// until the test ends.
func startStepWorker(t *testing.T, b *testBundle) {
	t.Helper()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	secrets, err := signing.ParseSecrets(secret)
	require.NoError(t, err)
	client, err := httpstep.New(httpstep.Config{Secrets: secrets, AllowHosts: []string{"127.0.0.0/8"}})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- orchestrator.NewWorker(b.db, orchestrator.DefaultLimits(), logger, orchestrator.WorkerConfig{
			Client: client, Concurrency: 4, PollInterval: 50 * time.Millisecond, ShutdownGrace: time.Second,
		}, orchestrator.WithSigning(secrets, b.url), orchestrator.WithWorkerID("graph-test")).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		client.Close()
	})
}

// TestRunGraphOverlay follows a run with a real worker and step server: a
// step that succeeds on its second attempt, a sleep, waits for a person
// and an event, and a last call. The graph shows each step's state and
// attempts as the run goes.
func TestRunGraphOverlay(t *testing.T) {
	t.Parallel()
	var charges atomic.Int32
	steps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/charge" && charges.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"output": {"ok": true}}`)
	}))
	t.Cleanup(steps.Close)
	b := setup(t)
	startStepWorker(t, b)
	def := `{"name": "checkout", "steps": [
	  {"name": "charge", "type": "call", "url": "` + steps.URL + `/charge",
	   "retry": {"max_attempts": 3, "initial_interval": "10ms"}, "compensate": {"url": "` + steps.URL + `/refund"}},
	  {"name": "cool_off", "type": "sleep", "duration": "10ms"},
	  {"name": "approve", "type": "wait_for_input", "kind": "approval"},
	  {"name": "paid", "type": "wait_for_event", "event": "paid", "key": "${ input.order }"},
	  {"name": "thank", "type": "call", "url": "` + steps.URL + `/thank"}
	]}`
	b.createWorkflow(t, def)
	r := b.startRun(t, `{"workflow": "checkout", "input": {"order": "o-7"}}`)
	waitFor := func(step string) {
		t.Helper()
		require.Eventually(t, func() bool {
			res := b.do(t, http.MethodGet, "/v1/runs/"+r.ID, nil)
			return res.status == http.StatusOK && strings.Contains(string(res.body), `"step":"`+step+`"`)
		}, 15*time.Second, 20*time.Millisecond, "the run waits at %s", step)
	}

	waitFor("approve")
	require.Equal(t, map[string]nodeState{
		"s_charge":   {"succeeded", 2, "call succeeded"},
		"c_charge":   {"pending", 0, "compensation pending"},
		"s_cool_off": {"succeeded", 1, "sleep succeeded"},
		"s_approve":  {"waiting", 1, "wait_for_input waiting"},
		"s_paid":     {"pending", 0, "wait_for_event pending"},
		"s_thank":    {"pending", 0, "call pending"},
	}, b.cytoscape(t, "/v1/runs/"+r.ID+"/graph").states())
	mermaid := string(b.graphOf(t, "/v1/runs/"+r.ID+"/graph", "mermaid"))
	require.Contains(t, mermaid, "s_charge[\"charge<br/>POST 127.0.0.1:")
	require.Contains(t, mermaid, "<br/>succeeded · 2 attempts\"]\n")
	require.Contains(t, mermaid, "classDef waiting fill:#ffe082")
	require.Contains(t, mermaid, "class s_approve waiting\n")
	require.Contains(t, mermaid, "class s_charge,s_cool_off succeeded\n")
	dot := string(b.graphOf(t, "/v1/runs/"+r.ID+"/graph", "dot"))
	require.Contains(t, dot, `s_approve [label="approve\ninput: approval\nwaiting · 1 attempt", shape=parallelogram, style="filled", class="wait_for_input waiting", fillcolor="#ffe082"`)

	res := b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/approve", []byte(`{"value": true}`))
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	waitFor("paid")
	states := b.cytoscape(t, "/v1/runs/"+r.ID+"/graph").states()
	require.Equal(t, "succeeded", states["s_approve"].Status)
	require.Equal(t, "waiting", states["s_paid"].Status)
	require.Equal(t, "pending", states["s_thank"].Status)

	b.publish(t, `{"name": "paid", "key": "o-7"}`, http.StatusCreated)
	b.waitStatus(t, r.ID, "succeeded")
	doc := b.cytoscape(t, "/v1/runs/"+r.ID+"/graph")
	states = doc.states()
	for _, id := range []string{"s_charge", "s_cool_off", "s_approve", "s_paid", "s_thank"} {
		require.Equal(t, "succeeded", states[id].Status, id)
	}
	require.Equal(t, nodeState{"succeeded", 0, "end succeeded"}, states[graph.EndID], "the end node shows how the run ended")
	for _, n := range doc.Elements.Nodes {
		if n.Data.ID == "s_charge" {
			require.Equal(t, "charge\nPOST "+strings.TrimPrefix(steps.URL, "http://")+"\nsucceeded · 2 attempts", n.Data.Label)
			require.Equal(t, map[string]int{"succeeded": 1}, n.Data.Counts)
			require.Equal(t, 1, *n.Data.Executions)
		}
	}
}

// TestRunGraphBranch runs a branch: the chosen case's steps show their
// state, the other case's steps stay grey.
func TestRunGraphBranch(t *testing.T) {
	t.Parallel()
	steps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"output": {"ok": true}}`)
	}))
	t.Cleanup(steps.Close)
	b := setup(t)
	startStepWorker(t, b)
	b.createWorkflow(t, `{"name": "tiers", "steps": [
	  {"name": "route", "type": "branch", "on": "${ input.tier }", "cases": [
	    {"value": "gold", "steps": [{"name": "vip", "type": "call", "url": "`+steps.URL+`/vip"}]}],
	   "default": [{"name": "standard", "type": "call", "url": "`+steps.URL+`/standard"}]},
	  {"name": "done", "type": "call", "url": "`+steps.URL+`/done"}
	]}`)
	r := b.startRun(t, `{"workflow": "tiers", "input": {"tier": "gold"}}`)
	b.waitStatus(t, r.ID, "succeeded")
	require.Equal(t, map[string]nodeState{
		"s_route":    {"succeeded", 1, "branch succeeded"},
		"s_vip":      {"succeeded", 1, "call succeeded"},
		"s_standard": {"pending", 0, "call pending"},
		"s_done":     {"succeeded", 1, "call succeeded"},
		graph.EndID:  {"succeeded", 0, "end succeeded"},
	}, b.cytoscape(t, "/v1/runs/"+r.ID+"/graph").states())
	mermaid := string(b.graphOf(t, "/v1/runs/"+r.ID+"/graph", ""))
	require.Contains(t, mermaid, `s_route -->|"#34;gold#34;"| s_vip`)
	require.Contains(t, mermaid, `s_route -->|"default"| s_standard`)
}

// TestCytoscapeGoldenMatchesSpec holds the graph package's Cytoscape JSON
// and the OpenAPI document together for every construct, including those
// (parallel lanes, foreach bodies) no API test here can post yet.
func TestCytoscapeGoldenMatchesSpec(t *testing.T) {
	t.Parallel()
	spec, err := api.Load(context.Background())
	require.NoError(t, err)
	schema := spec.Components.Schemas["CytoscapeGraph"]
	require.NotNil(t, schema)
	files, err := filepath.Glob(filepath.Join("..", "graph", "testdata", "*.cytoscape.golden"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var v any
		require.NoError(t, json.Unmarshal(b, &v), f)
		require.NoError(t, schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()), f)
	}
}
