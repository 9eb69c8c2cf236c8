// Command bench measures Durable end to end, as `make bench` runs it: it
// builds and starts the api and a worker over a fresh database, serves steps
// that answer at once from this process, posts a workflow of -steps call
// steps, and measures
//
//   - one run alone (-serial runs, one after another): run start → first
//     step request and step answer → next step request ("step-to-step");
//   - -runs runs started together: steps per second end to end, the same
//     latencies under load, and PostgreSQL commits per step (from
//     pg_stat_database.xact_commit of the benchmark's database).
//
// With -flow-keys it measures flow control instead: -runs runs of a
// workflow with a concurrency limit of -flow-limit per key, spread over
// -flow-keys keys: steps per second, and when each key's last run finished
// (how fairly the keys share the workers).
//
// It prints a Markdown table; docs/benchmarks.md keeps the results.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	serverURL   string
	database    string
	runs        int
	steps       int
	serial      int
	concurrency int
	clients     int
	profile     string
	apiProfile  string
	waits       int
	traces      bool
	flowKeys    int
	flowLimit   int
}

func run() error {
	var o options
	flag.StringVar(&o.serverURL, "database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/durable?sslmode=disable"), "PostgreSQL server; the benchmark uses (and recreates) its own database there")
	flag.StringVar(&o.database, "database", "durable_bench", "the benchmark's database, dropped and created again: benchmarks running side by side on one server need one each")
	flag.IntVar(&o.runs, "runs", 1000, "runs started together")
	flag.IntVar(&o.steps, "steps", 10, "call steps per run")
	flag.IntVar(&o.serial, "serial", 100, "runs made one after another, for the latency of one run alone")
	flag.IntVar(&o.concurrency, "worker-concurrency", 0, "DURABLE_WORKER_CONCURRENCY of the worker (0: its default)")
	flag.IntVar(&o.clients, "clients", 50, "concurrent clients starting the runs")
	flag.IntVar(&o.waits, "waits", 200, "runs measured for event and timer latency")
	flag.StringVar(&o.profile, "pprof", "", "serve the worker's Go profiles on this address (its DURABLE_PPROF_ADDR)")
	flag.StringVar(&o.apiProfile, "api-pprof", "", "serve the api's Go profiles on this address (its DURABLE_PPROF_ADDR)")
	flag.BoolVar(&o.traces, "traces", false, "export traces over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT) to a receiver in this process that discards them, to measure what tracing costs")
	flag.IntVar(&o.flowKeys, "flow-keys", 0, "measure flow control instead: -runs runs of a workflow limited to -flow-limit active runs per key, over this many keys (0: the usual benchmark)")
	flag.IntVar(&o.flowLimit, "flow-limit", 1, "with -flow-keys, the workflow's concurrency limit per key")
	flag.Parse()

	ctx := context.Background()
	dbURL, err := freshDatabase(ctx, o.serverURL, o.database)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "durable-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir, "./cmd/api", "./cmd/worker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	steps := newStepServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ln, steps) }()

	env := []string{"DATABASE_URL=" + dbURL, "DURABLE_LOG_LEVEL=warn", "DURABLE_LOG_FORMAT=json"}
	var otlp *otlpReceiver
	if o.traces {
		otlp = &otlpReceiver{}
		oln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() { _ = http.Serve(oln, otlp) }()
		env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+oln.Addr().String())
	}
	apiEnv := append(env, "DURABLE_ADDR=127.0.0.1:0", "DURABLE_LOG_LEVEL=info")
	if o.apiProfile != "" {
		apiEnv = append(apiEnv, "DURABLE_PPROF_ADDR="+o.apiProfile)
	}
	api, addr, err := startProcess(filepath.Join(dir, "api"), apiEnv, "api listening")
	if err != nil {
		return err
	}
	defer stop(api)
	workerEnv := append(env, "DURABLE_PUBLIC_URL=http://"+addr)
	if o.concurrency > 0 {
		workerEnv = append(workerEnv, fmt.Sprintf("DURABLE_WORKER_CONCURRENCY=%d", o.concurrency))
	}
	if o.profile != "" {
		workerEnv = append(workerEnv, "DURABLE_PPROF_ADDR="+o.profile)
	}
	worker, _, err := startProcess(filepath.Join(dir, "worker"), append(workerEnv, "DURABLE_LOG_LEVEL=info"), "worker started")
	if err != nil {
		return err
	}
	defer stop(worker)

	base := "http://" + addr
	if o.flowKeys > 0 {
		if err := postFlowWorkflow(base, "http://"+ln.Addr().String(), o.steps, o.flowLimit); err != nil {
			return err
		}
		r, err := measureFlow(base, steps, o.runs, o.steps, o.flowKeys, o.clients)
		if err != nil {
			return err
		}
		printFlowReport(o, r)
		return nil
	}
	if err := postWorkflow(base, "http://"+ln.Addr().String(), o.steps); err != nil {
		return err
	}

	// Warm up: connections, prepared statements, the definition cache.
	if _, err := measure(ctx, base, steps, dbURL, 20, o.steps, 1); err != nil {
		return err
	}
	serial, err := measure(ctx, base, steps, dbURL, o.serial, o.steps, 1)
	if err != nil {
		return err
	}
	apiCPU, workerCPU := cpuTime(api.Process.Pid), cpuTime(worker.Process.Pid)
	together, err := measure(ctx, base, steps, dbURL, o.runs, o.steps, o.clients)
	if err != nil {
		return err
	}
	apiCPU, workerCPU = cpuTime(api.Process.Pid)-apiCPU, cpuTime(worker.Process.Pid)-workerCPU
	stepBase := "http://" + ln.Addr().String()
	events, err := measureEvents(base, stepBase, steps, o.waits)
	if err != nil {
		return err
	}
	timers, err := measureTimers(base, stepBase, steps, o.waits)
	if err != nil {
		return err
	}
	printReport(ctx, dbURL, o, serial, together)
	if workerCPU > 0 {
		// CPU time depends far less than throughput on what else the
		// machine runs: it is what compares two settings on a busy one.
		fmt.Printf("\nCPU time during the %d runs started together: worker %.2f s (%.0f µs per step), api %.2f s.\n",
			together.runs, workerCPU.Seconds(), float64(workerCPU.Microseconds())/float64(together.steps), apiCPU.Seconds())
	}
	if otlp != nil {
		fmt.Printf("\nTraces exported over OTLP/HTTP to a receiver that discards them: %d requests, %.1f MiB so far.\n", otlp.requests.Load(), float64(otlp.bytes.Load())/(1<<20))
	}
	fmt.Printf("\n| wait (%d runs; events published one at a time) | p50 | p99 |\n|---|---|---|\n", o.waits)
	fmt.Printf("| event published → waiting run's next step request | %s | %s |\n", ms(percentile(events, .5)), ms(percentile(events, .99)))
	fmt.Printf("| timer due → sleeping run's next step request | %s | %s |\n", ms(percentile(timers, .5)), ms(percentile(timers, .99)))
	return nil
}

// measureEvents starts n runs that wait for an event each, waits until they
// all wait, then publishes their events one at a time and measures from
// each publish to the run's next step request.
func measureEvents(base, stepBase string, steps *stepServer, n int) ([]time.Duration, error) {
	def := fmt.Sprintf(`{"name": "bench_event", "steps": [
		{"name": "paid", "type": "wait_for_event", "event": "bench.paid", "key": "${ input.key }", "timeout": "1h"},
		{"name": "next", "type": "call", "url": "%s/step/0"}]}`, stepBase)
	if err := post(base+"/v1/workflows", def, nil); err != nil {
		return nil, err
	}
	steps.expect(n)
	ids := make([]string, n)
	for i := range n {
		var run struct {
			ID string `json:"id"`
		}
		if err := post(base+"/v1/runs", fmt.Sprintf(`{"workflow": "bench_event", "input": {"key": "k-%d"}}`, i), &run); err != nil {
			return nil, err
		}
		ids[i] = run.ID
	}
	if err := waitFor(func() (bool, error) { return countRuns(base, "bench_event", "waiting", n) }); err != nil {
		return nil, err
	}
	out := make([]time.Duration, n)
	for i, id := range ids {
		t0 := time.Now()
		if err := post(base+"/v1/events", fmt.Sprintf(`{"name": "bench.paid", "key": "k-%d", "payload": {"i": %d}}`, i, i), nil); err != nil {
			return nil, err
		}
		at, err := firstRequest(steps, id)
		if err != nil {
			return nil, err
		}
		out[i] = at.Sub(t0)
	}
	return out, nil
}

// measureTimers starts n runs that sleep until a moment between 2 and 3
// seconds away, and measures from each moment to the run's next step
// request.
func measureTimers(base, stepBase string, steps *stepServer, n int) ([]time.Duration, error) {
	def := fmt.Sprintf(`{"name": "bench_timer", "steps": [
		{"name": "nap", "type": "sleep", "until": "${ timestamp(input.at) }"},
		{"name": "next", "type": "call", "url": "%s/step/0"}]}`, stepBase)
	if err := post(base+"/v1/workflows", def, nil); err != nil {
		return nil, err
	}
	steps.expect(n)
	start := time.Now().Add(2 * time.Second)
	due := make(map[string]time.Time, n)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(n))
		var run struct {
			ID string `json:"id"`
		}
		if err := post(base+"/v1/runs", fmt.Sprintf(`{"workflow": "bench_timer", "input": {"at": %q}}`, at.UTC().Format(time.RFC3339Nano)), &run); err != nil {
			return nil, err
		}
		due[run.ID] = at
	}
	out := make([]time.Duration, 0, n)
	for id, at := range due {
		req, err := firstRequest(steps, id)
		if err != nil {
			return nil, err
		}
		out = append(out, req.Sub(at))
	}
	return out, nil
}

// firstRequest waits for run id's first step request and returns its time.
func firstRequest(steps *stepServer, id string) (time.Time, error) {
	var at time.Time
	err := waitFor(func() (bool, error) {
		steps.mu.Lock()
		defer steps.mu.Unlock()
		if rt := steps.runs[id]; rt != nil && len(rt.requested) > 0 && !rt.requested[0].IsZero() {
			at = rt.requested[0]
			return true, nil
		}
		return false, nil
	})
	return at, err
}

// waitFor polls cond for up to a minute.
func waitFor(cond func() (bool, error)) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("timed out waiting")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// countRuns reports whether at least n runs of workflow are in status.
func countRuns(base, workflow, status string, n int) (bool, error) {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	res, err := http.Get(fmt.Sprintf("%s/v1/runs?workflow=%s&status=%s&limit=1000", base, workflow, status))
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		return false, err
	}
	time.Sleep(10 * time.Millisecond)
	return len(list.Items) >= n, nil
}

// post sends body to url and decodes the answer into out (if not nil).
func post(url, body string, out any) error {
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("POST %s: %s: %s", url, res.Status, b)
	}
	if out != nil {
		return json.NewDecoder(res.Body).Decode(out)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// freshDatabase drops and creates database name on the server of
// serverURL and returns its URL.
func freshDatabase(ctx context.Context, serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// startProcess starts a Durable binary and waits for the JSON log line
// whose msg is ready, returning its "addr" attribute if it has one.
func startProcess(bin string, env []string, ready string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				// Not a log line: a panic, or the Go runtime's last words.
				fmt.Fprintf(os.Stderr, "%s: %s\n", filepath.Base(bin), sc.Text())
				continue
			}
			if !sent && line["msg"] == ready {
				addr, _ := line["addr"].(string)
				found <- addr
				sent = true
			} else if line["level"] == "ERROR" {
				fmt.Fprintf(os.Stderr, "%s: %s\n", filepath.Base(bin), sc.Text())
			}
		}
	}()
	select {
	case addr := <-found:
		return cmd, addr, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, "", fmt.Errorf("%s did not log %q within 30s", bin, ready)
	}
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
}

func postWorkflow(base, stepBase string, n int) error {
	steps := make([]map[string]any, n)
	for i := range steps {
		steps[i] = map[string]any{"name": fmt.Sprintf("s%d", i), "type": "call", "url": fmt.Sprintf("%s/step/%d", stepBase, i)}
	}
	body, _ := json.Marshal(map[string]any{"name": "bench", "steps": steps})
	res, err := http.Post(base+"/v1/workflows", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("post workflow: %s: %s", res.Status, b)
	}
	return nil
}

// stepServer answers every step at once and records, per run, when each
// step's request arrived and when its answer was written.
type stepServer struct {
	mu   sync.Mutex
	runs map[string]*runTimes
	done chan struct{}
	want int
	seen int
}

type runTimes struct {
	requested []time.Time // by step index
	answered  []time.Time
}

func newStepServer() *stepServer { return &stepServer{runs: map[string]*runTimes{}} }

// expect resets the server for n step requests and returns a channel
// closed when they have all been answered.
func (s *stepServer) expect(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs, s.want, s.seen, s.done = map[string]*runTimes{}, n, 0, make(chan struct{})
	return s.done
}

func (s *stepServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var body struct {
		RunID string `json:"run_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	var idx int
	if _, err := fmt.Sscanf(r.URL.Path, "/step/%d", &idx); err != nil {
		http.Error(w, "bad path", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"output":{"ok":true}}`))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	answered := time.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.runs[body.RunID]
	if rt == nil {
		rt = &runTimes{}
		s.runs[body.RunID] = rt
	}
	for len(rt.requested) <= idx {
		rt.requested = append(rt.requested, time.Time{})
		rt.answered = append(rt.answered, time.Time{})
	}
	if rt.requested[idx].IsZero() {
		rt.requested[idx], rt.answered[idx] = now, answered
		s.seen++
		if s.seen == s.want {
			close(s.done)
		}
	}
}

// result is one measured batch of runs.
type result struct {
	runs, steps           int
	elapsed               time.Duration
	starting              time.Duration // until the last start request was answered
	startToFirst, between []time.Duration
	answerToFirst         []time.Duration // from the start request's answer
	commits               int64
}

// measure starts n runs through `clients` concurrent clients and waits
// until every step of every run was answered.
func measure(ctx context.Context, base string, steps *stepServer, dbURL string, n, perRun, clients int) (result, error) {
	done := steps.expect(n * perRun)
	commitsBefore, err := xactCommits(ctx, dbURL)
	if err != nil {
		return result{}, err
	}
	started := make(map[string]time.Time, n)
	answered := make(map[string]time.Time, n)
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	begin := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t0 := time.Now()
				id, err := startRun(base)
				t1 := time.Now()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				started[id] = t0
				answered[id] = t1
				mu.Unlock()
				if clients == 1 {
					// One run alone: wait for it before starting the next.
					waitRun(steps, id, perRun)
				}
			}
		}()
	}
	for i := range n {
		if firstErr != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	startsDone := time.Since(begin)
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return result{}, errors.New("the runs did not finish within 10 minutes")
	}
	res := result{runs: n, steps: n * perRun, starting: startsDone}
	steps.mu.Lock()
	var last time.Time
	for id, rt := range steps.runs {
		res.startToFirst = append(res.startToFirst, rt.requested[0].Sub(started[id]))
		res.answerToFirst = append(res.answerToFirst, rt.requested[0].Sub(answered[id]))
		for i := 1; i < len(rt.requested); i++ {
			res.between = append(res.between, rt.requested[i].Sub(rt.answered[i-1]))
		}
		if a := rt.answered[len(rt.answered)-1]; a.After(last) {
			last = a
		}
	}
	steps.mu.Unlock()
	res.elapsed = last.Sub(begin)
	// Backends flush their statistics to pg_stat_database at most once a
	// second while busy, and 10 s after they go idle (PostgreSQL 15).
	time.Sleep(11 * time.Second)
	commitsAfter, err := xactCommits(ctx, dbURL)
	if err != nil {
		return result{}, err
	}
	res.commits = commitsAfter - commitsBefore
	return res, nil
}

func startRun(base string) (string, error) {
	res, err := http.Post(base+"/v1/runs", "application/json", strings.NewReader(`{"workflow":"bench","input":{}}`))
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var run struct {
		ID string `json:"id"`
	}
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		return "", fmt.Errorf("start run: %s: %s", res.Status, b)
	}
	if err := json.NewDecoder(res.Body).Decode(&run); err != nil {
		return "", err
	}
	return run.ID, nil
}

// waitRun waits until the step server answered every step of run id.
func waitRun(steps *stepServer, id string, perRun int) {
	for {
		steps.mu.Lock()
		rt := steps.runs[id]
		complete := rt != nil && len(rt.answered) == perRun && !rt.answered[perRun-1].IsZero()
		steps.mu.Unlock()
		if complete {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// xactCommits reads the committed transactions of the benchmark database.
// Its own query is one of them; the reading is taken before and after, so
// it cancels out but for one.
func xactCommits(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&n)
	return n, err
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func printReport(ctx context.Context, dbURL string, o options, serial, together result) {
	fmt.Printf("\n## Durable end-to-end benchmark\n\n")
	fmt.Printf("Machine: %d CPUs (%s), %s; PostgreSQL %s on the same machine (fsync %s, synchronous_commit %s).\n\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), pgSetting(ctx, dbURL, "server_version"), pgSetting(ctx, dbURL, "fsync"), pgSetting(ctx, dbURL, "synchronous_commit"))
	fmt.Printf("| measure | one run alone (%d runs, one at a time) | %d runs started together |\n|---|---|---|\n", serial.runs, together.runs)
	fmt.Printf("| steps per second, end to end | %.0f | %.0f |\n", float64(serial.steps)/serial.elapsed.Seconds(), float64(together.steps)/together.elapsed.Seconds())
	fmt.Printf("| run start → first step request, p50 | %s | %s |\n", ms(percentile(serial.startToFirst, .5)), ms(percentile(together.startToFirst, .5)))
	fmt.Printf("| run start → first step request, p99 | %s | %s |\n", ms(percentile(serial.startToFirst, .99)), ms(percentile(together.startToFirst, .99)))
	fmt.Printf("| run started (answered) → first step request, p50 | %s | %s |\n", ms(percentile(serial.answerToFirst, .5)), ms(percentile(together.answerToFirst, .5)))
	fmt.Printf("| run started (answered) → first step request, p99 | %s | %s |\n", ms(percentile(serial.answerToFirst, .99)), ms(percentile(together.answerToFirst, .99)))
	fmt.Printf("| step-to-step, p50 | %s | %s |\n", ms(percentile(serial.between, .5)), ms(percentile(together.between, .5)))
	fmt.Printf("| step-to-step, p99 | %s | %s |\n", ms(percentile(serial.between, .99)), ms(percentile(together.between, .99)))
	fmt.Printf("| PostgreSQL commits per step | %.3f | %.3f |\n", float64(serial.commits)/float64(serial.steps), float64(together.commits)/float64(together.steps))
	fmt.Printf("| run starts per second (POST /v1/runs) | | %.0f |\n", float64(together.runs)/together.starting.Seconds())
	fmt.Printf("\n%d call steps per run; %d concurrent clients start the runs; worker concurrency %s.\n", o.steps, o.clients, concurrencyLabel(o.concurrency))
}

func concurrencyLabel(n int) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}

func pgSetting(ctx context.Context, dbURL, name string) string {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "?"
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "?"
	}
	return v
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// otlpReceiver accepts OTLP/HTTP exports and discards them, counting them.
type otlpReceiver struct {
	requests, bytes atomic.Int64
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n, _ := io.Copy(io.Discard, req.Body)
	r.requests.Add(1)
	r.bytes.Add(n)
	// An empty ExportTraceServiceResponse: no bytes in protobuf.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// cpuTime is the CPU time (user and system) process pid has used so far,
// from /proc; 0 where there is none.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them, in clock
	// ticks of 1/100 s.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11], &utime); err != nil {
		return 0
	}
	if _, err := fmt.Sscan(fields[12], &stime); err != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
