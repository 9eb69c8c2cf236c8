package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// keyedSteps is a step server that counts the requests in flight for each
// key (the "key" member of a step's input) and records the most it saw at
// once, with the time each request arrived.
type keyedSteps struct {
	t    *testing.T
	url  string
	hold time.Duration // how long each request takes
	// hang, when set, is called for each request before it is answered:
	// true keeps the request open until its client goes away.
	hang func(key string, n int) bool

	mu       sync.Mutex
	inFlight map[string]int
	max      map[string]int
	arrived  map[string][]time.Time
	total    atomic.Int32
}

func newKeyedSteps(t *testing.T, hold time.Duration) *keyedSteps {
	k := &keyedSteps{t: t, hold: hold, inFlight: map[string]int{}, max: map[string]int{}, arrived: map[string][]time.Time{}}
	srv := httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(srv.Close)
	k.url = srv.URL
	return k
}

func (k *keyedSteps) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	c := stepCall{Path: r.URL.Path, WebhookID: r.Header.Get("webhook-id"), Raw: raw, At: time.Now()}
	if err := json.Unmarshal(raw, &c.Body); err != nil {
		k.t.Errorf("decode step body: %v", err)
	}
	var in struct {
		Key string `json:"key"`
	}
	_ = json.Unmarshal(c.Body.Input, &in)
	n := int(k.total.Add(1))
	k.mu.Lock()
	k.inFlight[in.Key]++
	k.max[in.Key] = max(k.max[in.Key], k.inFlight[in.Key])
	k.arrived[in.Key] = append(k.arrived[in.Key], c.At)
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.inFlight[in.Key]--
		k.mu.Unlock()
	}()
	if k.hang != nil && k.hang(in.Key, n) {
		<-r.Context().Done()
		return
	}
	select {
	case <-time.After(k.hold):
	case <-r.Context().Done():
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"key": in.Key, "n": n}})
}

// maxInFlight is the most requests of key that were in flight at once.
func (k *keyedSteps) maxInFlight(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.max[key]
}

func (k *keyedSteps) arrivals(key string) []time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.arrived[key])
}

// startRunWith starts a run with a raw request body and returns the
// status code and the run.
func (e *env) startRunWith(body map[string]any) (int, client.Run) {
	e.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(e.t, err)
	res, err := e.client.StartRunWithBodyWithResponse(context.Background(), nil, "application/json", bytes.NewReader(b))
	require.NoError(e.t, err)
	var run client.Run
	if res.StatusCode() < 300 {
		require.NoError(e.t, json.Unmarshal(res.Body, &run), string(res.Body))
	}
	return res.StatusCode(), run
}

// A workflow limited to one active run per customer never has two runs of
// a customer in flight at once, across three workers, one of which is
// killed mid-step; the others wait queued, say so, and all succeed.
func TestFlowRunConcurrencyWithKilledWorker(t *testing.T) {
	t.Parallel()
	steps := newKeyedSteps(t, 150*time.Millisecond)
	var killAt atomic.Int32
	killAt.Store(8)
	hung := make(chan struct{}, 1)
	steps.hang = func(_ string, n int) bool {
		if n == int(killAt.Load()) {
			hung <- struct{}{}
			return true
		}
		return false
	}
	e := newEnv(t, leanPool, "DURABLE_LEASE_MARGIN=1s")
	e.createWorkflow(fmt.Sprintf(`{"name": "percustomer",
		"concurrency": [{"key": "${ input.key }", "limit": 1}],
		"steps": [
			{"name": "a", "type": "call", "url": "%[1]s/a", "timeout": "2s", "input": {"key": "${ input.key }"}},
			{"name": "b", "type": "call", "url": "%[1]s/b", "timeout": "2s", "input": {"key": "${ input.key }"}}]}`, steps.url))

	keys := []string{"acme", "globex", "initech"}
	var ids []uuid.UUID
	for i := range 15 {
		ids = append(ids, e.startRun("percustomer", map[string]any{"key": keys[i%len(keys)], "i": i}))
	}
	// With no worker yet, the first run of each key is pending and the
	// others queued behind its key.
	r := e.run(ids[len(ids)-1])
	require.Equal(t, client.RunStatus("queued"), r.Status)
	require.NotNil(t, r.Blocked)
	require.Equal(t, client.RunBlockedReason("queued"), r.Blocked.Reason)
	require.Equal(t, "run:percustomer#0=initech", r.Blocked.Key)
	require.Equal(t, client.RunStatus("pending"), e.run(ids[0]).Status)
	queued := client.RunStatus("queued")
	list, err := e.client.ListRunsWithResponse(context.Background(), &client.ListRunsParams{Status: &[]client.RunStatus{queued}})
	require.NoError(t, err)
	require.Len(t, list.JSON200.Items, 12, string(list.Body))

	w1 := e.startWorker()
	e.startWorker()
	e.startWorker()
	select {
	case <-hung:
	case <-time.After(30 * time.Second):
		t.Fatal("no step request hung")
	}
	// Whichever worker holds the hung request is killed with the others
	// working on: kill the first, and if the request is still open,
	// its worker was another, and the lease takes over anyway.
	w1.kill()
	for _, id := range ids {
		r := e.waitRun(id, 60*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
		require.Nil(t, r.Blocked)
	}
	for _, k := range keys {
		require.Equal(t, 1, steps.maxInFlight(k), "requests of key %s in flight at once", k)
	}
	// Runs of one key never overlapped: each began after the one before
	// it ended.
	byKey := map[string][]client.Run{}
	for i, id := range ids {
		byKey[keys[i%len(keys)]] = append(byKey[keys[i%len(keys)]], e.run(id))
	}
	for k, runs := range byKey {
		slices.SortFunc(runs, func(a, b client.Run) int { return a.StartedAt.Compare(*b.StartedAt) })
		for i := 1; i < len(runs); i++ {
			require.False(t, runs[i].StartedAt.Before(*runs[i-1].FinishedAt), "key %s: run %s started before %s finished", k, runs[i].Id, runs[i-1].Id)
		}
	}
	require.Contains(t, e.historyTypes(ids[len(ids)-1]), "run_queued")
	require.Contains(t, e.historyTypes(ids[len(ids)-1]), "run_admitted")
}

// A step limited to one attempt in flight per key keeps to it across
// runs; when the worker making the attempt is killed, the place it held
// is given back once its lease ends, not before.
func TestFlowStepConcurrencySlotBackAfterLease(t *testing.T) {
	t.Parallel()
	const lease = 2*time.Second + time.Second // step timeout + DURABLE_LEASE_MARGIN
	steps := newKeyedSteps(t, 100*time.Millisecond)
	hung := make(chan struct{}, 1)
	steps.hang = func(_ string, n int) bool {
		if n == 1 {
			hung <- struct{}{}
			return true
		}
		return false
	}
	e := newEnv(t, leanPool, "DURABLE_LEASE_MARGIN=1s")
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "stepkey", "steps": [
		{"name": "pre", "type": "sleep", "duration": "1ms"},
		{"name": "charge", "type": "call", "url": "%s/charge", "timeout": "2s",
		 "concurrency": [{"key": "${ input.key }", "limit": 1}], "input": {"key": "${ input.key }"}}]}`, steps.url))
	w1 := e.startWorker()
	var ids []uuid.UUID
	for i := range 4 {
		ids = append(ids, e.startRun("stepkey", map[string]any{"key": "acme", "i": i}))
	}
	select {
	case <-hung:
	case <-time.After(30 * time.Second):
		t.Fatal("the first request did not arrive")
	}
	first := steps.arrivals("acme")[0]
	// The others wait for the place, and say so.
	require.Eventually(t, func() bool {
		return dbCount(t, db, `SELECT count(*) FROM runs WHERE blocked ->> 'reason' = 'concurrency'`) >= 1
	}, 10*time.Second, 20*time.Millisecond)
	e.startWorker()
	e.startWorker()
	w1.kill()
	for _, id := range ids {
		r := e.waitRun(id, 60*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
	}
	require.Equal(t, 1, steps.maxInFlight("acme"))
	arr := steps.arrivals("acme")
	require.Len(t, arr, 5, "4 runs, and the hung attempt made again")
	gap := arr[1].Sub(first)
	require.GreaterOrEqual(t, gap, lease-300*time.Millisecond, "the place of the killed worker came back %s after its request, before its %s lease ended", gap, lease)
	// No retry attempt was used by waiting: only the hung step has an
	// attempt beyond its first (the abandoned one).
	attempts := 0
	for _, id := range ids {
		attempts += len(stepByKey(t, e.steps(id), "charge").Attempts)
	}
	require.Equal(t, 5, attempts)
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM flow_slots`), "places left behind")
	t.Logf("place given back %s after the killed worker's request (lease %s)", gap.Round(time.Millisecond), lease)
}

// A rate limit spreads a key's requests as declared, whatever the number
// of workers, without using retry attempts; another key is not held up.
func TestFlowRateLimitSpreadsRequests(t *testing.T) {
	t.Parallel()
	const (
		limit  = 2
		period = time.Second
		runs   = 10
	)
	steps := newKeyedSteps(t, 0)
	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "throttled", "steps": [
		{"name": "call", "type": "call", "url": "%s/call", "input": {"key": "${ input.key }"},
		 "rate_limit": {"key": "${ input.key }", "limit": %d, "period": "%s"}}]}`, steps.url, limit, period))
	e.startWorker()
	e.startWorker()
	e.startWorker()
	var ids []uuid.UUID
	for i := range runs {
		ids = append(ids, e.startRun("throttled", map[string]any{"key": "slow", "i": i}))
	}
	other := e.startRun("throttled", map[string]any{"key": "other"})
	otherStarted := time.Now()
	for _, id := range append(ids, other) {
		r := e.waitRun(id, 60*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, "run error: %s", runErrorText(r))
		require.Len(t, stepByKey(t, e.steps(id), "call").Attempts, 1, "waiting for a token used an attempt")
	}
	arr := steps.arrivals("slow")
	require.Len(t, arr, runs)
	slices.SortFunc(arr, func(a, b time.Time) int { return a.Compare(b) })
	// A bucket of limit tokens refilled at limit per period: by the time
	// of each request, at most limit + limit × elapsed / period requests
	// can have been let through (one more allowed for the clocks).
	for i, at := range arr {
		allowed := limit + float64(limit)*at.Sub(arr[0]).Seconds()/period.Seconds() + 1
		require.LessOrEqual(t, float64(i+1), allowed, "request %d came %s after the first", i+1, at.Sub(arr[0]))
	}
	spread := arr[len(arr)-1].Sub(arr[0])
	want := time.Duration(runs-limit) * period / limit
	require.GreaterOrEqual(t, spread, want-250*time.Millisecond, "%d requests spread over %s; the limit asks for %s", runs, spread, want)
	require.Less(t, steps.arrivals("other")[0].Sub(otherStarted), 3*time.Second, "another key waited for the throttled one")
	t.Logf("%d requests over %s (limit %d per %s)", runs, spread.Round(time.Millisecond), limit, period)
}

// A 429 with Retry-After pauses its key's bucket for that long.
func TestFlowRateLimitRetryAfterPausesBucket(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var arrivals []time.Time
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "2")
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "slow down"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{}})
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "paused", "steps": [
		{"name": "call", "type": "call", "url": "%s", "retry": {"initial_interval": "100ms"},
		 "rate_limit": {"name": "partner", "limit": 100, "period": "1s"}}]}`, srv.URL))
	e.startWorker()
	a := e.startRun("paused", map[string]any{"n": 1})
	ra := e.waitRun(a, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), ra.Status, runErrorText(ra))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, arrivals, 2)
	gap := arrivals[1].Sub(arrivals[0])
	require.GreaterOrEqual(t, gap, 1900*time.Millisecond, "the retry came %s after the 429 asking for 2s", gap)
}

// Due work of a higher priority is claimed first.
func TestFlowPriorityOrder(t *testing.T) {
	t.Parallel()
	rec, url := echoSteps(t)
	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "prio", "steps": [
		{"name": "s", "type": "call", "url": "%s", "input": {"p": "${ input.p }"}}]}`, url))
	var ids []uuid.UUID
	for _, p := range []int{10, 90} {
		for i := range 10 {
			code, run := e.startRunWith(map[string]any{"workflow": "prio", "input": map[string]any{"p": p, "i": i}, "priority": p})
			require.Equal(t, http.StatusCreated, code)
			require.Equal(t, p, *run.Priority)
			ids = append(ids, run.Id)
		}
	}
	// One worker taking one step at a time makes the order visible.
	e.startWorker("DURABLE_WORKER_CONCURRENCY=1")
	for _, id := range ids {
		r := e.waitRun(id, 60*time.Second)
		require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
	}
	var order []int
	for _, c := range rec.all() {
		var in struct{ P int }
		require.NoError(t, json.Unmarshal(c.Body.Input, &in))
		order = append(order, in.P)
	}
	require.Equal(t, append(slices.Repeat([]int{90}, 10), slices.Repeat([]int{10}, 10)...), order)

	// Bad priorities are refused, and nothing is started.
	for _, p := range []any{-1, 101, "high", 1.5, 1e12, nil, true} {
		code, _ := e.startRunWith(map[string]any{"workflow": "prio", "priority": p})
		require.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, code, "priority %v", p)
	}
	limit := 100
	list, err := e.client.ListRunsWithResponse(context.Background(), &client.ListRunsParams{Limit: &limit})
	require.NoError(t, err)
	require.Len(t, list.JSON200.Items, 20)
}

// Starts with the same debounce key within the period fold into one run,
// which gets the last start's input; max_wait bounds how long a stream of
// starts puts the run off.
func TestFlowDebounce(t *testing.T) {
	t.Parallel()
	rec, url := echoSteps(t)
	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "deb",
		"debounce": {"key": "${ input.user }", "period": "1s", "max_wait": "2s"},
		"steps": [{"name": "s", "type": "call", "url": "%s", "input": {"user": "${ input.user }", "n": "${ input.n }"}}]}`, url))
	e.startWorker()

	code, first := e.startRunWith(map[string]any{"workflow": "deb", "input": map[string]any{"user": "u1", "n": 1}})
	require.Equal(t, http.StatusCreated, code)
	for n := 2; n <= 3; n++ {
		code, r := e.startRunWith(map[string]any{"workflow": "deb", "input": map[string]any{"user": "u1", "n": n}})
		require.Equal(t, http.StatusOK, code, "a start within the period is folded")
		require.Equal(t, first.Id, r.Id)
	}
	code, other := e.startRunWith(map[string]any{"workflow": "deb", "input": map[string]any{"user": "u2", "n": 1}})
	require.Equal(t, http.StatusCreated, code)
	require.NotEqual(t, first.Id, other.Id)
	r := e.waitRun(first.Id, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status)
	require.JSONEq(t, `{"user": "u1", "n": 3}`, mustJSON(t, r.Input))
	e.waitRun(other.Id, 30*time.Second)

	// Once the run began, the next start makes a new run.
	code, later := e.startRunWith(map[string]any{"workflow": "deb", "input": map[string]any{"user": "u1", "n": 4}})
	require.Equal(t, http.StatusCreated, code)
	require.NotEqual(t, first.Id, later.Id)
	e.waitRun(later.Id, 30*time.Second)

	// A start every 300 ms would put the run off for ever; max_wait (2s)
	// begins it.
	began := time.Now()
	var streamIDs []uuid.UUID
	for time.Since(began) < 4*time.Second {
		_, r := e.startRunWith(map[string]any{"workflow": "deb", "input": map[string]any{"user": "u3", "n": 1}})
		if !slices.Contains(streamIDs, r.Id) {
			streamIDs = append(streamIDs, r.Id)
		}
		time.Sleep(300 * time.Millisecond)
	}
	require.GreaterOrEqual(t, len(streamIDs), 2, "a stream of starts for 4s never began a run")
	var u3 []stepCall
	for _, c := range rec.all() {
		if bytes.Contains(c.Body.Input, []byte(`"u3"`)) {
			u3 = append(u3, c)
		}
	}
	require.NotEmpty(t, u3)
	require.Less(t, u3[0].At.Sub(began), 2*time.Second+1500*time.Millisecond, "the first u3 run began %s after its first start (max_wait 2s)", u3[0].At.Sub(began))
	require.Len(t, callsWithUser(rec, "u1"), 2)
}

func callsWithUser(rec *recorder, user string) []stepCall {
	var out []stepCall
	for _, c := range rec.all() {
		if bytes.Contains(c.Body.Input, []byte(`"`+user+`"`)) {
			out = append(out, c)
		}
	}
	return out
}

// Cancelling a queued run ends it and takes it out of its queue;
// cancelling the run that holds a key's place admits the next one at once,
// though the cancelled run's request is still in flight (its result will
// be ignored): the limit counts active runs.
func TestFlowCancelQueuedAndHolder(t *testing.T) {
	t.Parallel()
	steps := newKeyedSteps(t, 0)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hung := make(chan struct{}, 1)
	steps.hang = func(_ string, n int) bool {
		if n == 1 {
			hung <- struct{}{}
			return true
		}
		return false
	}
	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "one", "concurrency": [{"key": "${ input.key }", "limit": 1}],
		"steps": [{"name": "s", "type": "call", "url": "%s", "timeout": "30s", "input": {"key": "${ input.key }"}}]}`, steps.url))
	e.startWorker()
	holder := e.startRun("one", map[string]any{"key": "k"})
	select {
	case <-hung:
	case <-time.After(30 * time.Second):
		t.Fatal("the first run's request did not arrive")
	}
	second := e.startRun("one", map[string]any{"key": "k", "n": 2})
	third := e.startRun("one", map[string]any{"key": "k", "n": 3})
	require.Equal(t, client.RunStatus("queued"), e.run(second).Status)

	cancel := func(id uuid.UUID) {
		res, err := e.client.CancelRunWithResponse(context.Background(), id, client.CancelRunRequest{})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	}
	cancel(second)
	r := e.run(second)
	require.Equal(t, client.RunStatus("cancelled"), r.Status)
	require.Nil(t, r.Blocked)
	require.Equal(t, 1, dbCount(t, db, `SELECT count(*) FROM flow_queue`), "only the third run is queued")
	require.Equal(t, client.RunStatus("queued"), e.run(third).Status)

	cancel(holder)
	r = e.waitRun(third, 30*time.Second)
	require.Equal(t, client.RunStatus("succeeded"), r.Status, runErrorText(r))
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM flow_queue`))
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM flow_slots`))
}

// A workflow's concurrency key that cannot be evaluated on a start's input
// refuses the start with a problem; nothing is created.
func TestFlowKeyRefusesStart(t *testing.T) {
	t.Parallel()
	_, url := echoSteps(t)
	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "keyed", "concurrency": [{"key": "${ input.customer }", "limit": 2}],
		"steps": [{"name": "s", "type": "call", "url": "%s"}]}`, url))
	for _, input := range []any{
		map[string]any{},                                      // no such key
		map[string]any{"customer": []any{1, 2}},               // not a string
		map[string]any{"customer": string(make([]byte, 300))}, // too long
	} {
		code, _ := e.startRunWith(map[string]any{"workflow": "keyed", "input": input})
		require.Equal(t, http.StatusUnprocessableEntity, code, "input %v", input)
	}
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM runs`))
	// A definition with bad flow fields is refused with every problem.
	res, err := e.client.CreateWorkflowWithBodyWithResponse(context.Background(), "application/json", bytes.NewReader([]byte(
		`{"name": "bad", "concurrency": [{"key": "x", "limit": 0}], "debounce": {"period": "-1s"},
		  "steps": [{"name": "s", "type": "call", "url": "https://example.com", "rate_limit": {"limit": 1, "period": "1ms"}}]}`)))
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), string(res.Body))
	for _, path := range []string{"/concurrency/0/key", "/concurrency/0/limit", "/debounce/key", "/debounce/period", "/steps/0/rate_limit/period"} {
		require.Contains(t, string(res.Body), `"`+path+`"`)
	}
}

// TestFlowRetryTakesItsPlace: a retried run takes its place under its
// workflow's concurrency limit again. While another run of its key holds
// the only place the retry is refused (409) and nothing changes; once
// that run is cancelled the retry goes on from the failed step and holds
// the place itself.
func TestFlowRetryTakesItsPlace(t *testing.T) {
	t.Parallel()
	steps := rtServer(t)
	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	e.createWorkflow(fmt.Sprintf(`{"name": "placed", "concurrency": [{"key": "${ input.key }", "limit": 1}],
		"steps": [{"name": "a", "type": "call", "url": "%s/a"}, {"name": "nap", "type": "sleep", "duration": "1h"}]}`, steps.url))
	e.startWorker()
	steps.setBroken("a", true)
	failed := e.startRun("placed", map[string]any{"key": "k"})
	require.Equal(t, client.RunStatus("failed"), e.waitRun(failed, 15*time.Second).Status)
	steps.setBroken("a", false)
	holder := e.startRun("placed", map[string]any{"key": "k"})
	e.waitRun(holder, 15*time.Second, "waiting")

	before, events := e.run(failed), len(e.history(failed))
	code, body := rtRetry(t, e, failed, `{}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "concurrency limits have no room")
	after := e.run(failed)
	require.Equal(t, client.RunStatus("failed"), after.Status)
	require.Equal(t, before.Attempt, after.Attempt)
	require.Len(t, e.history(failed), events)
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM flow_queue`), "a refused retry queues nothing")

	res, err := e.client.CancelRunWithResponse(context.Background(), holder, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	code, body = rtRetry(t, e, failed, `{}`)
	require.Equal(t, http.StatusOK, code, body)
	e.waitRun(failed, 15*time.Second, "waiting")
	require.Equal(t, 3, steps.count("a"), "the failed run's a, the holder's, and the retried a")
	require.Equal(t, 1, dbCount(t, db, `SELECT count(*) FROM flow_slots`), "the retried run holds the key's place")
}
