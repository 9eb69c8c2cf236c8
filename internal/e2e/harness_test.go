// Package e2e_test runs Durable as users do: the built api and worker
// binaries as real processes over a real PostgreSQL, driven through the
// generated client, with real HTTP step servers on loopback.
package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/signing"
)

// bins holds the binaries TestMain builds once for the package.
var bins struct{ api, worker, durable string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "durable-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.api, bins.worker, bins.durable = filepath.Join(dir, "api"), filepath.Join(dir, "worker"), filepath.Join(dir, "durable")
	build := exec.Command("go", "build", "-o", dir, "github.com/durablehq/durable/cmd/api", "github.com/durablehq/durable/cmd/worker", "github.com/durablehq/durable/cmd/durable")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one Durable deployment for one test: a database of its own, an
// API process, any number of worker processes, and a client.
type env struct {
	t       *testing.T
	dbURL   string
	secret  string
	apiURL  string
	client  *client.ClientWithResponses
	baseEnv []string
	api     *proc
}

// newEnv starts an API process over a fresh database. extra holds
// KEY=VALUE settings for every process of the deployment.
func newEnv(t *testing.T, extra ...string) *env {
	t.Helper()
	return newEnvOn(t, pgtest.URL(t), extra...)
}

// newEnvOn is newEnv over the database at dbURL, which the API migrates.
func newEnvOn(t *testing.T, dbURL string, extra ...string) *env {
	t.Helper()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	e := &env{t: t, dbURL: dbURL, secret: secret}
	e.baseEnv = append([]string{
		"DATABASE_URL=" + e.dbURL,
		"DURABLE_SIGNING_SECRET=" + secret,
		"DURABLE_LOG_FORMAT=json",
		"DURABLE_LOG_LEVEL=debug",
		"DURABLE_POLL_INTERVAL=100ms",
		// Tests run deployments side by side on one PostgreSQL server,
		// whose connections are limited.
		"DURABLE_DB_MAX_CONNS=4",
	}, extra...)
	e.api = e.start(bins.api, "DURABLE_ADDR=127.0.0.1:0")
	addr := e.api.waitLog(t, "api listening", "addr")
	e.apiURL = "http://" + addr
	// The public URL is only known now; callback URLs carry it, so the
	// workers get it explicitly.
	e.baseEnv = append(e.baseEnv, "DURABLE_PUBLIC_URL="+e.apiURL)
	e.client, err = client.NewClientWithResponses(e.apiURL)
	require.NoError(t, err)
	return e
}

// count returns how many of the process's log lines so far have msg.
func (p *proc) count(msg string) int { return len(p.logsWith(msg)) }

// logsWith returns the process's log lines so far that have msg.
func (p *proc) logsWith(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.logs {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// proc is a running Durable process whose JSON log lines are collected.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	raw  strings.Builder
	cond *sync.Cond
	done chan struct{}
}

// start runs a binary with the deployment's settings plus extra; the
// process is killed when the test ends.
func (e *env) start(bin string, extra ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), e.baseEnv...), extra...)
	stderr, err := cmd.StderrPipe()
	require.NoError(e.t, err)
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	require.NoError(e.t, cmd.Start())
	go p.collect(stderr)
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			e.t.Logf("%s output:\n%s", filepath.Base(bin), p.output())
		}
	})
	return p
}

// startWorker starts a worker process of the deployment.
func (e *env) startWorker(extra ...string) *proc {
	e.t.Helper()
	w := e.start(bins.worker, extra...)
	w.waitLog(e.t, "worker started", "")
	return w
}

func (p *proc) collect(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		p.mu.Lock()
		p.raw.WriteString(line + "\n")
		if m != nil {
			p.logs = append(p.logs, m)
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	_ = p.cmd.Wait()
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// waitLog waits up to 30 s for a log line with message msg and returns its
// attribute attr (if attr is not empty).
func (p *proc) waitLog(t *testing.T, msg, attr string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	timer := time.AfterFunc(30*time.Second, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.logs); i++ {
			if p.logs[i]["msg"] == msg {
				if attr == "" {
					return ""
				}
				return fmt.Sprint(p.logs[i][attr])
			}
		}
		select {
		case <-p.done:
			t.Fatalf("process exited before logging %q:\n%s", msg, p.raw.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q within 30s:\n%s", msg, p.raw.String())
		}
		p.cond.Wait()
	}
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// terminate sends SIGTERM and waits up to timeout for the process to end.
func (p *proc) terminate(t *testing.T, timeout time.Duration) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process did not stop within %s of SIGTERM", timeout)
	}
}

// createWorkflow posts a definition and requires it to be accepted.
func (e *env) createWorkflow(def string) client.WorkflowVersion {
	e.t.Helper()
	res, err := e.client.CreateWorkflowWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(def))
	require.NoError(e.t, err)
	require.Contains(e.t, []int{http.StatusCreated, http.StatusOK}, res.StatusCode(), string(res.Body))
	if res.JSON201 != nil {
		return *res.JSON201
	}
	return *res.JSON200
}

// startRun starts a run of workflow with input and returns its id.
func (e *env) startRun(workflow string, input any) uuid.UUID {
	e.t.Helper()
	res, err := e.client.StartRunWithResponse(context.Background(), nil, client.StartRunRequest{Workflow: workflow, Input: input})
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusCreated, res.StatusCode(), string(res.Body))
	return res.JSON201.Id
}

// run fetches a run.
func (e *env) run(id uuid.UUID) client.Run {
	e.t.Helper()
	res, err := e.client.GetRunWithResponse(context.Background(), id)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

// waitRun polls a run until its status is one of statuses (default: any
// final status), for at most timeout.
func (e *env) waitRun(id uuid.UUID, timeout time.Duration, statuses ...client.RunStatus) client.Run {
	e.t.Helper()
	if len(statuses) == 0 {
		statuses = []client.RunStatus{"succeeded", "failed", "cancelled", "timed_out", "compensated", "compensation_failed"}
	}
	deadline := time.Now().Add(timeout)
	for {
		r := e.run(id)
		for _, s := range statuses {
			if r.Status == s {
				return r
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s is %s after %s; wanted one of %v", id, r.Status, timeout, statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// steps lists every step execution of a run.
func (e *env) steps(id uuid.UUID) []client.StepExecution {
	e.t.Helper()
	limit := 1000
	res, err := e.client.ListRunStepsWithResponse(context.Background(), id, &client.ListRunStepsParams{Limit: &limit})
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, res.StatusCode(), string(res.Body))
	return res.JSON200.Items
}

// history lists a run's history event types in order.
func (e *env) history(id uuid.UUID) []client.HistoryEvent {
	e.t.Helper()
	limit := 1000
	res, err := e.client.ListRunHistoryWithResponse(context.Background(), id, &client.ListRunHistoryParams{Limit: &limit})
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, res.StatusCode(), string(res.Body))
	return res.JSON200.Items
}

// historyTypes lists a run's history event types in order.
func (e *env) historyTypes(id uuid.UUID) []string {
	var out []string
	for _, h := range e.history(id) {
		out = append(out, h.Type)
	}
	return out
}

// stepCall is one request a step server received.
type stepCall struct {
	Path      string
	WebhookID string
	Header    http.Header
	Body      stepBody
	Raw       []byte
	At        time.Time
}

// stepBody is what Durable posts to a step endpoint.
type stepBody struct {
	RunID            uuid.UUID       `json:"run_id"`
	Workflow         map[string]any  `json:"workflow"`
	Step             string          `json:"step"`
	Attempt          int             `json:"attempt"`
	Input            json.RawMessage `json:"input"`
	Context          json.RawMessage `json:"context"`
	CallbackURL      string          `json:"callback_url"`
	Deadline         time.Time       `json:"deadline"`
	CallbackDeadline time.Time       `json:"callback_deadline"`
}

// recorder records the calls a step server receives.
type recorder struct {
	mu    sync.Mutex
	calls []stepCall
}

func (r *recorder) add(c stepCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// all returns the calls so far.
func (r *recorder) all() []stepCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stepCall(nil), r.calls...)
}

// readStep reads and records a step request.
func (r *recorder) readStep(t *testing.T, req *http.Request) stepCall {
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		t.Errorf("read step body: %v", err)
	}
	c := stepCall{Path: req.URL.Path, WebhookID: req.Header.Get("webhook-id"), Header: req.Header.Clone(), Raw: raw, At: time.Now()}
	if err := json.Unmarshal(raw, &c.Body); err != nil {
		t.Errorf("decode step body %s: %v", raw, err)
	}
	r.add(c)
	return c
}

// echoSteps starts a step server that records each call and answers with
// the step's input as its output, and returns the recorder and its URL.
func echoSteps(t *testing.T) (*recorder, string) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := rec.readStep(t, r)
		writeJSON(w, http.StatusOK, map[string]any{"output": json.RawMessage(c.Body.Input)})
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// writeJSON answers a step request.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
