package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// cliResult is what one invocation of the built durable binary did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the built durable binary against the deployment's API, with
// standard output a pipe (so neither colour nor redrawing).
func (e *env) cli(args ...string) cliResult {
	e.t.Helper()
	return runCLI(e.t, []string{"DURABLE_URL=" + e.apiURL}, "", args...)
}

// runCLI runs the built durable binary with only env (and PATH) as its
// environment and stdin as its standard input.
func runCLI(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bins.durable, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run durable %v: %v", args, err)
	}
	return res
}

// ok requires the invocation to have exited 0 and returns its output.
func (r cliResult) ok(t *testing.T) string {
	t.Helper()
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	return r.stdout
}

// fails requires the invocation to have exited with code and returns its
// standard error.
func (r cliResult) fails(t *testing.T, code int) string {
	t.Helper()
	require.Equal(t, code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	return r.stderr
}

// cliJSON decodes an invocation's standard output.
func cliJSON[T any](t *testing.T, r cliResult) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.ok(t)), &v), r.stdout)
	return v
}

// writeDef writes a definition to a file of the test and returns its path.
func writeDef(t *testing.T, name string, def map[string]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(stDef(t, def)), 0o600))
	return path
}

// failingSteps starts a step server that answers every request 500.
func failingSteps(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "upstream down"})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCLIWorkflowsAndRuns pushes, checks, lists, shows and draws a
// workflow, and starts, follows, inspects and deletes its runs, each
// through the built binary, with text, JSON and YAML output.
func TestCLIWorkflowsAndRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, steps := echoSteps(t)
	def := map[string]any{"name": "clihello", "steps": []any{
		map[string]any{"name": "lookup", "type": "call", "url": steps + "/lookup", "input": map[string]any{"x": "${ input.x }"}},
		map[string]any{"name": "greet", "type": "call", "url": steps + "/greet", "input": map[string]any{"y": "${ steps.lookup.output.x }"}},
	}}
	file := writeDef(t, "clihello.json", def)

	// validate works offline: no API is named, none is needed.
	out := runCLI(t, nil, "", "workflows", "validate", file).ok(t)
	require.Equal(t, file+": valid (workflow clihello)\n", out)
	bad := writeDef(t, "bad.json", map[string]any{"name": "Bad Name", "steps": []any{
		map[string]any{"name": "a", "type": "call"},
		map[string]any{"name": "b", "type": "call", "url": "http://x", "retry": map[string]any{"max_attempts": -1}},
	}})
	res := runCLI(t, nil, "", "workflows", "validate", file, bad)
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stdout, file+": valid")
	require.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(bad)+`: /name: .+$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(bad)+`: /steps/0(/url)?: .+$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(bad)+`: /steps/1/retry/max_attempts: .+$`), res.stdout)
	type validation struct {
		Valid    bool
		Problems []struct{ Path, Message string }
	}
	res = runCLI(t, nil, "", "workflows", "validate", "-o", "json", bad)
	require.Equal(t, 1, res.code)
	var v validation
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
	require.False(t, v.Valid)
	require.GreaterOrEqual(t, len(v.Problems), 3)
	require.Equal(t, 2, runCLI(t, nil, "", "workflows", "validate").code, "no file is a usage error")

	// push: created, then unchanged; JSON as the API answers it.
	require.Contains(t, e.cli("workflows", "push", file).ok(t), "created clihello version 1")
	require.Contains(t, e.cli("workflows", "push", file).ok(t), "unchanged: clihello version 1")
	pushed := cliJSON[client.WorkflowVersion](t, runCLI(t, []string{"DURABLE_URL=" + e.apiURL}, stDef(t, def), "workflows", "push", "-", "-o", "json"))
	require.Equal(t, 1, pushed.Version)
	require.Equal(t, "clihello", pushed.Definition.Name)

	list := cliJSON[client.WorkflowList](t, e.cli("workflows", "list", "-o", "json"))
	require.Len(t, list.Items, 1)
	require.Equal(t, "clihello", list.Items[0].Name)
	require.Regexp(t, `^NAME\s+LATEST\s+UPDATED\s+ARCHIVED\nclihello\s+1\s+\S+\s+false\n$`, e.cli("workflows", "list").ok(t))
	show := e.cli("workflows", "show", "clihello").ok(t)
	require.Regexp(t, `(?m)^lookup\s+call\s+-$`, show)
	require.Regexp(t, `(?m)^greet\s+call\s+-$`, show)
	require.Contains(t, e.cli("workflows", "show", "clihello", "-o", "yaml").ok(t), "name: clihello\n")
	versions := cliJSON[client.WorkflowVersionList](t, e.cli("workflows", "versions", "clihello", "-o", "json"))
	require.Len(t, versions.Items, 1)
	require.Contains(t, e.cli("workflows", "graph", "clihello").ok(t), "flowchart")
	require.Contains(t, e.cli("workflows", "graph", "clihello", "--format", "dot").ok(t), "digraph")
	_ = cliJSON[client.CytoscapeGraph](t, e.cli("workflows", "graph", "clihello", "--format", "cytoscape", "-o", "json"))
	require.Contains(t, e.cli("workflows", "graph", "clihello", "--format", "png").fails(t, 2), "--format must be")

	// A run followed to its end with --wait, its output piped: a line
	// per change, no escape codes, exit 0.
	res = e.cli("runs", "start", "clihello", "--input", `{"x": 7}`, "--wait", "--interval", "50ms")
	out = res.ok(t)
	require.NotContains(t, out, "\x1b")
	require.Regexp(t, `(?m)^\d\d:\d\d:\d\d step lookup succeeded in \S+$`, out)
	require.Regexp(t, `(?m)^\d\d:\d\d:\d\d step greet succeeded in \S+$`, out)
	m := regexp.MustCompile(`(?m)^run (\S+) succeeded in \S+\noutput: \{"y":7\}$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]

	run := cliJSON[client.Run](t, e.cli("runs", "show", id, "-o", "json"))
	require.Equal(t, client.RunStatusSucceeded, run.Status)
	require.Equal(t, map[string]any{"x": float64(7)}, run.Input)
	require.Contains(t, e.cli("runs", "show", id, "-o", "yaml").ok(t), "status: succeeded\n")
	text := e.cli("runs", "show", id).ok(t)
	require.Regexp(t, `(?m)^Status:\s+succeeded$`, text)
	require.Regexp(t, `(?m)^Output:\s+\{"y":7\}$`, text)
	stepList := cliJSON[client.StepExecutionList](t, e.cli("runs", "steps", id, "-o", "json"))
	require.Len(t, stepList.Items, 2)
	text = e.cli("runs", "steps", id, "--attempts").ok(t)
	require.Regexp(t, `(?m)^STEP\s+TYPE\s+STATUS\s+ATTEMPTS\s+DURATION\s+ERROR$`, text)
	require.Regexp(t, `(?m)^lookup\s+call\s+succeeded\s+1\s+\S+\s+-$`, text)
	require.Regexp(t, `(?m)^  #1\s+HTTP 200\s+succeeded\s+\S+\s+-$`, text)
	history := cliJSON[client.HistoryEventList](t, e.cli("runs", "history", id, "-o", "json"))
	require.Equal(t, "run_succeeded", history.Items[len(history.Items)-1].Type)
	require.Regexp(t, `(?m)\srun_succeeded\s`, e.cli("runs", "history", id).ok(t))
	require.Contains(t, e.cli("runs", "graph", id).ok(t), "flowchart")

	// Idempotent starts: the same key, the same run.
	first := cliJSON[client.Run](t, e.cli("runs", "start", "clihello", "--input", `{"x": 1}`, "--idempotency-key", "k-1", "-o", "json"))
	again := cliJSON[client.Run](t, e.cli("runs", "start", "clihello", "--input", `{"x": 1}`, "--idempotency-key", "k-1", "-o", "json"))
	require.Equal(t, first.Id, again.Id)
	// Input from a file and from standard input.
	inputFile := filepath.Join(t.TempDir(), "input.json")
	require.NoError(t, os.WriteFile(inputFile, []byte(`{"x": 2}`), 0o600))
	fromFile := cliJSON[client.Run](t, e.cli("runs", "start", "clihello", "--input", "@"+inputFile, "-o", "json"))
	fromStdin := cliJSON[client.Run](t, runCLI(t, []string{"DURABLE_URL=" + e.apiURL}, `{"x": 3}`, "runs", "start", "clihello", "--input", "-", "-o", "json"))
	require.Equal(t, map[string]any{"x": float64(2)}, fromFile.Input)
	require.Equal(t, map[string]any{"x": float64(3)}, fromStdin.Input)
	for _, r := range []client.Run{first, fromFile, fromStdin} {
		e.waitRun(r.Id, 30*time.Second)
	}

	runs := cliJSON[client.RunList](t, e.cli("runs", "list", "--workflow", "clihello", "--status", "succeeded", "--since", "1h", "-o", "json"))
	require.Len(t, runs.Items, 4)
	runs = cliJSON[client.RunList](t, e.cli("runs", "list", "--workflow", "clihello", "--limit", "2", "-o", "json"))
	require.Len(t, runs.Items, 2)
	require.NotNil(t, runs.NextCursor)
	res = e.cli("runs", "list", "--workflow", "clihello", "--limit", "2")
	require.Contains(t, res.stderr, "more: --cursor "+*runs.NextCursor)
	require.Regexp(t, `(?m)^ID\s+WORKFLOW\s+STATUS\s+ATTEMPT\s+CREATED\s+DURATION\s+ERROR$`, res.ok(t))
	require.Regexp(t, `(?m)^\S+\s+clihello@1\s+succeeded\s+1\s`, res.stdout)
	require.Empty(t, cliJSON[client.RunList](t, e.cli("runs", "list", "--status", "failed", "-o", "json")).Items)

	// A child run, listed by its parent.
	e.createWorkflow(stDef(t, map[string]any{"name": "cliparent", "steps": []any{
		map[string]any{"name": "child", "type": "call_workflow", "workflow": "clihello", "input": map[string]any{"x": 5}},
	}}))
	parent := regexp.MustCompile(`run (\S+) succeeded`).FindStringSubmatch(e.cli("runs", "start", "cliparent", "--wait", "--interval", "50ms").ok(t))[1]
	children := cliJSON[client.RunList](t, e.cli("runs", "list", "--parent", parent, "-o", "json"))
	require.Len(t, children.Items, 1)
	require.Equal(t, "clihello", children.Items[0].Workflow.Name)
	require.Equal(t, parent, children.Items[0].ParentRunId.String())
	require.Contains(t, e.cli("runs", "show", children.Items[0].Id.String()).ok(t), "Parent:")

	// Delete, then the run is gone: the API's problem, readably, exit 3.
	require.Equal(t, "deleted run "+id+"\n", e.cli("runs", "delete", id).ok(t))
	stderr := e.cli("runs", "show", id).fails(t, 3)
	require.Contains(t, stderr, "durable: Not Found (404)")

	// Archive: no new runs (a 409), until unarchived.
	require.Contains(t, e.cli("workflows", "archive", "clihello").ok(t), "archived clihello at ")
	require.Contains(t, e.cli("runs", "start", "clihello").fails(t, 3), "Conflict (409)")
	require.Contains(t, cliJSON[client.WorkflowList](t, e.cli("workflows", "list", "--archived", "-o", "json")).Items[0].Name, "clihello")
	require.Contains(t, e.cli("workflows", "unarchive", "clihello").ok(t), "unarchived clihello")
}

// TestCLIExitCodes: a run that fails, one cancelled, usage errors, an API
// that answers a problem and one that cannot be reached, each with its
// exit code and a readable message.
func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	e.createWorkflow(stDef(t, map[string]any{"name": "breaks", "steps": []any{
		map[string]any{"name": "charge", "type": "call", "url": failingSteps(t) + "/charge", "retry": map[string]any{"max_attempts": 1}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "naps", "steps": []any{
		map[string]any{"name": "nap", "type": "sleep", "duration": "1h"},
	}}))

	// A failed run: exit 1, and the run's error said.
	res := e.cli("runs", "start", "breaks", "--wait", "--interval", "50ms")
	stderr := res.fails(t, 1)
	require.Regexp(t, `durable: run \S+ failed: step charge failed: .*upstream down`, stderr)
	require.Regexp(t, `(?m)^\d\d:\d\d:\d\d step charge failed in \S+: `, res.stdout)
	id := regexp.MustCompile(`run (\S+) failed`).FindStringSubmatch(stderr)[1]
	require.Equal(t, 1, e.cli("runs", "watch", id).code)
	// -o json waits silently and prints the run as the API has it.
	res = e.cli("runs", "watch", id, "-o", "json")
	require.Equal(t, 1, res.code)
	var failed client.Run
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &failed))
	require.Equal(t, client.RunStatusFailed, failed.Status)
	require.Regexp(t, `(?m)^  #1\s+HTTP 500\s+failed\s+\S+\s+.*upstream down`, e.cli("runs", "steps", id, "--attempts").ok(t))
	require.Contains(t, e.cli("runs", "list", "--status", "failed").ok(t), "step charge failed")
	// Input over the API's limit: its 413, with the path.
	big := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(big, []byte(`{"blob": "`+strings.Repeat("x", 300<<10)+`"}`), 0o600))
	require.Regexp(t, `\(413\)(.|\n)*/input`, e.cli("runs", "start", "breaks", "--input", "@"+big).fails(t, 3))

	// A cancelled run: the cancel says so, watch exits 1, a second
	// cancel is the API's conflict.
	napping := cliJSON[client.Run](t, e.cli("runs", "start", "naps", "-o", "json"))
	e.waitRun(napping.Id, 30*time.Second, "waiting")
	require.Contains(t, e.cli("runs", "show", napping.Id.String()).ok(t), "waiting: step nap (sleep) until ")
	// Ctrl-C while watching: exit 130, the run untouched.
	watch := exec.Command(bins.durable, "runs", "watch", napping.Id.String())
	watch.Env = []string{"DURABLE_URL=" + e.apiURL}
	watched := &syncBuffer{}
	watch.Stdout = watched
	require.NoError(t, watch.Start())
	require.Eventually(t, func() bool { return strings.Contains(watched.String(), "waiting: step nap") }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, watch.Process.Signal(os.Interrupt))
	var exit *exec.ExitError
	require.ErrorAs(t, watch.Wait(), &exit)
	require.Equal(t, 130, exit.ExitCode())
	require.Equal(t, client.RunStatusWaiting, e.run(napping.Id).Status)

	require.Equal(t, "run "+napping.Id.String()+" is cancelled\n", e.cli("runs", "cancel", napping.Id.String(), "--reason", "test").ok(t))
	require.Contains(t, e.cli("runs", "watch", napping.Id.String()).fails(t, 1), "cancelled")
	require.Contains(t, e.cli("runs", "cancel", napping.Id.String()).fails(t, 3), "Conflict (409)")

	// Usage errors: exit 2, before any request.
	for _, args := range [][]string{
		{"runs", "list", "--bogus"},
		{"runs", "start"},
		{"runs", "start", "breaks", "--input", "{nope"},
		{"runs", "show", "not-a-uuid"},
		{"runs", "list", "--status", "sleeping"},
		{"runs", "list", "--since", "yesterday"},
		{"runs", "list", "--limit", "0"},
		{"workflows", "list", "-o", "xml"},
		{"nosuchcommand"},
		{"runs", "nosuchcommand"},
		{"input", uuid.NewString(), "step"},
	} {
		res := e.cli(args...)
		require.Equal(t, 2, res.code, "%v: %s", args, res.stderr)
		require.True(t, strings.HasPrefix(res.stderr, "durable: "), "%v: %s", args, res.stderr)
	}
	require.Equal(t, 2, runCLI(t, []string{"DURABLE_URL=localhost:8080"}, "", "runs", "list").code)

	// The API's problems: title, status, detail and each path.
	bad := writeDef(t, "bad.json", map[string]any{"name": "bad", "steps": []any{map[string]any{"name": "a", "type": "call"}}})
	stderr = e.cli("workflows", "push", bad).fails(t, 3)
	require.Regexp(t, `^durable: Unprocessable Entity \(422\): .+\n  /steps/0(/url)?: .+\n`, stderr)
	require.Contains(t, e.cli("runs", "start", "nosuch").fails(t, 3), "(422)")

	// No API there: exit 3.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	res = runCLI(t, []string{"DURABLE_URL=" + dead.URL}, "", "workflows", "list")
	require.Contains(t, res.fails(t, 3), "durable: cannot reach the API at "+dead.URL)
	res = runCLI(t, nil, "", "--url", dead.URL, "runs", "watch", uuid.NewString())
	require.Contains(t, res.fails(t, 3), "cannot reach the API")
}

// TestCLIWaitsEventsInputs resumes waiting runs with events publish and
// input, and shows what they wait for.
func TestCLIWaitsEventsInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, steps := echoSteps(t)
	e.createWorkflow(stDef(t, map[string]any{"name": "pay", "steps": []any{
		map[string]any{"name": "paid", "type": "wait_for_event", "event": "order.paid", "key": "${ input.order }"},
		map[string]any{"name": "after", "type": "call", "url": steps + "/after", "input": map[string]any{"amount": "${ steps.paid.output.amount }"}},
	}}))
	e.createWorkflow(stDef(t, map[string]any{"name": "ship", "steps": []any{
		map[string]any{"name": "ok", "type": "wait_for_input", "kind": "approval", "prompt": "Ship it?"},
		map[string]any{"name": "pick", "type": "wait_for_input", "kind": "choice", "prompt": "Which colour?", "options": []any{"red", "blue"}},
	}}))

	pay := cliJSON[client.Run](t, e.cli("runs", "start", "pay", "--input", `{"order": "A-1"}`, "-o", "json"))
	e.waitRun(pay.Id, 30*time.Second, "waiting")
	require.Contains(t, e.cli("runs", "show", pay.Id.String()).ok(t),
		"waiting: step paid (wait_for_event) until ")
	require.Regexp(t, `^published event \S+ \(order.paid A-1\); resumed 1 waiting steps\n$`,
		e.cli("events", "publish", "order.paid", "A-1", "--payload", `{"amount": 12}`, "--id", "evt-1").ok(t))
	dup := cliJSON[client.PublishedEvent](t, e.cli("events", "publish", "order.paid", "A-1", "--id", "evt-1", "-o", "json"))
	require.True(t, dup.Duplicate)
	require.Contains(t, e.cli("runs", "watch", pay.Id.String(), "--interval", "50ms").ok(t), `output: {"amount":12}`)
	require.Equal(t, 2, e.cli("events", "publish", "order.paid").code)
	require.Contains(t, e.cli("events", "publish", "order.paid", "A-2", "--payload", "nope").fails(t, 2), "--payload is not valid JSON")

	ship := cliJSON[client.Run](t, e.cli("runs", "start", "ship", "-o", "json"))
	e.waitRun(ship.Id, 30*time.Second, "waiting")
	shipID := ship.Id.String()
	require.Contains(t, e.cli("runs", "show", shipID).ok(t), `approval "Ship it?" (durable input `+shipID+` ok VALUE)`)
	require.Contains(t, e.cli("input", shipID, "ok", "true", "--by", "alice", "--comment", "fine").ok(t), "step ok of run "+shipID+" took its input")
	require.Contains(t, e.cli("input", shipID, "ok", "true").fails(t, 3), "Conflict (409)")
	e.waitRun(ship.Id, 30*time.Second, "waiting")
	// The choice: a word that is not JSON is text; one not offered is
	// the API's 422 with its path.
	require.Contains(t, e.cli("input", shipID, "pick", "green").fails(t, 3), "(422)")
	require.Contains(t, e.cli("input", shipID, "pick", "blue", "-o", "json").ok(t), `"step":"pick"`)
	require.Contains(t, e.cli("runs", "watch", shipID).ok(t), "run "+shipID+" succeeded")
	var outputs []any
	for _, s := range e.steps(ship.Id) {
		outputs = append(outputs, s.Output)
	}
	require.Equal(t, "blue", outputs[1].(map[string]any)["value"], outputs)
	require.Equal(t, "alice", outputs[0].(map[string]any)["by"], outputs)
}

// TestCLISchedules creates, lists, shows, pauses, resumes, triggers,
// previews and deletes a schedule.
func TestCLISchedules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, steps := echoSteps(t)
	e.createWorkflow(stDef(t, map[string]any{"name": "report", "steps": []any{
		map[string]any{"name": "a", "type": "call", "url": steps + "/a"},
	}}))
	created := cliJSON[client.Schedule](t, e.cli("schedules", "create", "--name", "nightly", "--workflow", "report",
		"--cron", "0 3 * * *", "--timezone", "Europe/Paris", "--input", `{"scope": "all"}`, "--overlap", "skip", "-o", "json"))
	id := created.Id.String()
	require.Equal(t, "Europe/Paris", created.Timezone)
	require.Equal(t, 2, e.cli("schedules", "create", "--name", "x", "--workflow", "report").code, "--cron is required")
	require.Contains(t, e.cli("schedules", "create", "--name", "x", "--workflow", "report", "--cron", "0 3 * * *", "--overlap", "never").fails(t, 2), "--overlap must be")
	require.Contains(t, e.cli("schedules", "create", "--name", "y", "--workflow", "report", "--cron", "61 * * * *").fails(t, 3), "(422)")

	list := e.cli("schedules", "list").ok(t)
	require.Regexp(t, `(?m)^`+id+`\s+nightly\s+report\s+0 3 \* \* \*\s+Europe/Paris\s+false\s+\S+$`, list)
	show := e.cli("schedules", "show", id).ok(t)
	require.Regexp(t, `(?m)^Overlap policy:\s+skip$`, show)
	require.Contains(t, show, "Next fire times:")
	require.Contains(t, e.cli("schedules", "pause", id).ok(t), "paused schedule "+id)
	require.True(t, cliJSON[client.ScheduleDetail](t, e.cli("schedules", "show", id, "-o", "json")).Paused)
	require.Contains(t, e.cli("schedules", "resume", id).ok(t), "resumed schedule "+id)
	fire := cliJSON[client.ScheduleFire](t, e.cli("schedules", "trigger", id, "-o", "json"))
	require.Equal(t, client.ScheduleFireOutcomeStarted, fire.Outcome)
	require.NotNil(t, fire.RunId)
	require.Regexp(t, `(?m)\sstarted\s+true\s+`+fire.RunId.String()+`$`, e.cli("schedules", "show", id).ok(t))

	preview := cliJSON[client.FireTimes](t, e.cli("schedules", "preview", "30 2 * * *", "--timezone", "Europe/Berlin",
		"--from", "2026-03-28T00:00:00Z", "--count", "3", "-o", "json"))
	require.Len(t, preview.Items, 3)
	// 02:30 does not exist in Berlin on 29 March 2026 (summer time).
	text := e.cli("schedules", "preview", "30 2 * * *", "--timezone", "Europe/Berlin", "--from", "2026-03-28T00:00:00Z", "--count", "3").ok(t)
	require.Regexp(t, `(?m)^UTC\s+LOCAL$`, text)
	require.Contains(t, text, "2026-03-28T01:30:00Z  2026-03-28 02:30:00 CET")
	require.Contains(t, e.cli("schedules", "preview", "bogus").fails(t, 3), "(422)")

	require.Equal(t, "deleted schedule "+id+"\n", e.cli("schedules", "delete", id).ok(t))
	require.Contains(t, e.cli("schedules", "show", id).fails(t, 3), "Not Found (404)")
	require.Contains(t, e.cli("schedules", "show", "nightly").fails(t, 2), "not a schedule id")
}

// TestCLIAPIKey: the key from DURABLE_API_KEY or --api-key is sent as a
// bearer token; without it the API's 401 is an exit 3.
func TestCLIAPIKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "DURABLE_API_KEYS=s3cret-key-0123456789")
	stderr := e.cli("workflows", "list").fails(t, 3)
	require.Contains(t, stderr, "durable: Unauthorized (401)")
	runCLI(t, []string{"DURABLE_URL=" + e.apiURL, "DURABLE_API_KEY=s3cret-key-0123456789"}, "", "workflows", "list").ok(t)
	runCLI(t, []string{"DURABLE_URL=" + e.apiURL}, "", "workflows", "list", "--api-key", "s3cret-key-0123456789").ok(t)
	runCLI(t, nil, "", "--url", e.apiURL, "--api-key", "wrong", "workflows", "list").fails(t, 3)
}

// TestCLIVersionAndCompletion: durable version, --version, and cobra's
// shell completion scripts.
func TestCLIVersionAndCompletion(t *testing.T) {
	t.Parallel()
	out := runCLI(t, nil, "", "version").ok(t)
	require.Regexp(t, `^durable cli \d+\.\d+\.\d+ \(go[^)]+\)\n$`, out)
	require.Equal(t, out, runCLI(t, nil, "", "--version").ok(t))
	require.Contains(t, runCLI(t, nil, "", "completion", "bash").ok(t), "__start_durable")
	require.Contains(t, runCLI(t, nil, "", "completion", "zsh").ok(t), "#compdef durable")
	require.Contains(t, runCLI(t, nil, "", "__complete", "runs", "wa").ok(t), "watch")
	require.Contains(t, runCLI(t, nil, "", "--help").ok(t), "Exit codes: 0 done")
	// None of these needs the API, whatever DURABLE_URL says.
	bad := []string{"DURABLE_URL=not a url"}
	require.Equal(t, out, runCLI(t, bad, "", "version").ok(t))
	runCLI(t, bad, "", "completion", "fish").ok(t)
	runCLI(t, bad, "", "help", "runs").ok(t)
	require.Contains(t, runCLI(t, bad, "", "runs", "list").fails(t, 2), "--url must start with http:// or https://")
}

// syncBuffer is a buffer a process writes to while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ptySession runs the built binary on a pseudo-terminal and collects what
// it writes there.
type ptySession struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func startPTY(t *testing.T, env []string, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(bins.durable, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "TERM=xterm"}, env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	require.NoError(t, err)
	s := &ptySession{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = f.Close() })
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// wait waits for the process to end and returns its exit code.
func (s *ptySession) wait(t *testing.T) int {
	t.Helper()
	err := s.cmd.Wait()
	<-s.done
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// uncoloured drops the default colour the live view gives the cells that
// have no colour of their own, and every reset, keeping the colours.
func uncoloured(s string) string {
	return strings.NewReplacer("\x1b[39m", "", "\x1b[0m", "").Replace(s)
}

// TestCLILiveViewOnTerminal follows a run on a pseudo-terminal: its step
// list is redrawn in place (the cursor moved up over the last frame), in
// colour, with what the run waits for while it waits, and the exit code is
// the run's; with NO_COLOR, without colour.
func TestCLILiveViewOnTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"at": r.URL.Path}})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	e.createWorkflow(stDef(t, map[string]any{"name": "live", "steps": []any{
		map[string]any{"name": "quick", "type": "call", "url": srv.URL + "/quick"},
		map[string]any{"name": "approve", "type": "wait_for_input", "kind": "approval", "prompt": "Go on?"},
		map[string]any{"name": "slow", "type": "call", "url": srv.URL + "/slow"},
	}}))

	id := e.startRun("live", nil)
	s := startPTY(t, []string{"DURABLE_URL=" + e.apiURL}, "runs", "watch", id.String(), "--interval", "50ms")
	require.Eventually(t, func() bool {
		return strings.Contains(s.output(), "waiting: step approve (wait_for_input)")
	}, 30*time.Second, 20*time.Millisecond, "the live view never showed the wait:\n%q", s.output())
	runCLI(t, []string{"DURABLE_URL=" + e.apiURL}, "", "input", id.String(), "approve", "true").ok(t)
	require.Eventually(t, func() bool {
		return regexp.MustCompile(`slow\s+call\s+\x1b\[34mrunning`).MatchString(uncoloured(s.output()))
	}, 30*time.Second, 20*time.Millisecond, "the live view never showed the slow step running:\n%q", s.output())
	once.Do(func() { close(release) })
	require.Equal(t, 0, s.wait(t), "%q", s.output())
	out := s.output()
	// Each frame after the first starts by moving the cursor back up over
	// the previous one and clearing the screen below; the last frame says
	// nothing of the wait that is over.
	frames := regexp.MustCompile(`\x1b\[\d+A\r\x1b\[J`).Split(out, -1)
	require.Greater(t, len(frames), 3, "%q", out)
	last := uncoloured(frames[len(frames)-1])
	require.NotContains(t, last, "waiting:")
	require.Regexp(t, `quick\s+call\s+\x1b\[32msucceeded`, last)
	require.Regexp(t, `approve\s+wait_for_input\s+\x1b\[32msucceeded`, last)
	require.Contains(t, last, "run "+id.String()+" \x1b[32msucceeded in ")
	require.Contains(t, last, `output: {"at":"/slow"}`)
	// Columns stay aligned, colour or not: STATUS and ATTEMPTS begin where
	// they begin in the header.
	var lines []string
	for _, l := range strings.Split(regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(last, ""), "\r\n") {
		if strings.HasPrefix(l, "STEP ") || strings.HasPrefix(l, "quick ") || strings.HasPrefix(l, "approve ") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 3, "%q", last)
	for _, l := range lines[1:] {
		require.Equal(t, strings.Index(lines[0], "STATUS"), strings.Index(l, "succeeded"), "%q", lines)
		require.Equal(t, strings.Index(lines[0], "ATTEMPTS"), strings.Index(l, "1 "), "%q", lines)
	}

	// NO_COLOR: redrawn in place still, but no colour.
	s = startPTY(t, []string{"DURABLE_URL=" + e.apiURL, "NO_COLOR=1"}, "runs", "watch", id.String())
	require.Equal(t, 0, s.wait(t), "%q", s.output())
	out = s.output()
	require.NotContains(t, out, "\x1b[3")
	require.Regexp(t, `(?m)^slow\s+call\s+succeeded\s+1\s`, strings.ReplaceAll(out, "\r", ""))

	// A table on the terminal is coloured too; piped, it is not.
	s = startPTY(t, []string{"DURABLE_URL=" + e.apiURL}, "runs", "list")
	require.Equal(t, 0, s.wait(t))
	require.Contains(t, s.output(), "\x1b[32msucceeded\x1b[0m")
	require.NotContains(t, e.cli("runs", "list").ok(t), "\x1b")
}

// TestCLIRetryBulkOperations: runs retry, runs bulk and operations against
// the real API and worker: a fixed run retried with --wait exits 0 without
// its first step called again, a second retry is the API's 409 (exit 3), a
// bulk cancel's dry run counts, its operation cancels every matched run and
// nothing else, and a finished operation cannot be cancelled.
func TestCLIRetryBulkOperations(t *testing.T) {
	t.Parallel()
	steps := rtServer(t)
	e := newEnv(t, leanPool)
	e.startWorker()
	e.createWorkflow(rtThreeSteps("clirt", steps.url))
	steps.setBroken("b", true)
	id := e.startRun("clirt", nil)
	require.Equal(t, client.RunStatus("failed"), e.waitRun(id, 15*time.Second).Status)

	steps.setBroken("b", false)
	out := e.cli("runs", "retry", id.String(), "--reason", "b fixed", "--wait", "--interval", "50ms").ok(t)
	require.Contains(t, out, "succeeded")
	require.Equal(t, client.RunStatus("succeeded"), e.run(id).Status)
	require.Equal(t, 1, steps.count("a"), "a succeeded: it is not called again")
	require.Equal(t, "b fixed", rtRetried(t, e, id)[0]["reason"])
	require.Contains(t, e.cli("runs", "retry", id.String()).fails(t, 3), "cannot be retried")

	e.createWorkflow(`{"name": "clisleepy", "steps": [{"name": "nap", "type": "sleep", "duration": "1h"}]}`)
	sleepy := rtStartMany(t, e, "clisleepy", 3)
	for _, s := range sleepy {
		e.waitRun(s, 15*time.Second, "waiting")
	}
	require.Contains(t, e.cli("runs", "bulk", "cancel").fails(t, 2), "at least one filter")
	dry := cliJSON[client.BulkDryRun](t, e.cli("runs", "bulk", "cancel", "--workflow", "clisleepy", "--dry-run", "-o", "json"))
	require.Equal(t, int64(3), dry.Matched)
	op := cliJSON[client.Operation](t, e.cli("runs", "bulk", "cancel", "--workflow", "clisleepy", "--reason", "cli", "-o", "json"))
	require.Eventually(t, func() bool {
		op = cliJSON[client.Operation](t, e.cli("operations", "show", op.Id.String(), "-o", "json"))
		return op.State == "succeeded"
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, int64(3), op.Done)
	for _, s := range sleepy {
		require.Equal(t, client.RunStatus("cancelled"), e.run(s).Status)
	}
	require.Equal(t, client.RunStatus("succeeded"), e.run(id).Status, "a run the filter does not match is not touched")
	require.Regexp(t, `(?m)^State:\s+succeeded$`, e.cli("operations", "show", op.Id.String()).ok(t))
	list := cliJSON[client.OperationList](t, e.cli("operations", "list", "-o", "json"))
	require.Len(t, list.Items, 1)
	require.Equal(t, op.Id, list.Items[0].Id)
	require.Contains(t, e.cli("operations", "cancel", op.Id.String()).fails(t, 3), "409")
	e.cli("operations", "cancel", "nope").fails(t, 2)
}
