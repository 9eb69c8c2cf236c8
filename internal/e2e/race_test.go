package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file race a step's callback against a cancellation and
// against the step's callback timeout, many times at once, and check that
// exactly one side wins every time.

// Goroutine-safe API helpers: they return errors instead of failing the
// test, so that many iterations can run in goroutines of one test.

func fetchRun(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID) (client.Run, error) {
	res, err := c.GetRunWithResponse(ctx, id)
	if err != nil {
		return client.Run{}, err
	}
	if res.JSON200 == nil {
		return client.Run{}, fmt.Errorf("get run %s: %d %s", id, res.StatusCode(), res.Body)
	}
	return *res.JSON200, nil
}

func fetchSteps(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID) ([]client.StepExecution, error) {
	limit := 1000
	res, err := c.ListRunStepsWithResponse(ctx, id, &client.ListRunStepsParams{Limit: &limit})
	if err != nil {
		return nil, err
	}
	if res.JSON200 == nil {
		return nil, fmt.Errorf("list steps of %s: %d %s", id, res.StatusCode(), res.Body)
	}
	return res.JSON200.Items, nil
}

func fetchHistory(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID) ([]client.HistoryEvent, error) {
	limit := 1000
	res, err := c.ListRunHistoryWithResponse(ctx, id, &client.ListRunHistoryParams{Limit: &limit})
	if err != nil {
		return nil, err
	}
	if res.JSON200 == nil {
		return nil, fmt.Errorf("list history of %s: %d %s", id, res.StatusCode(), res.Body)
	}
	return res.JSON200.Items, nil
}

// terminalRun reports whether a run's status is final.
func terminalRun(r client.Run) bool {
	switch r.Status {
	case "succeeded", "failed", "cancelled", "timed_out", "compensated", "compensation_failed":
		return true
	}
	return false
}

// pollRun polls a run until done says so, for at most timeout.
func pollRun(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID, timeout time.Duration, done func(client.Run) bool) (client.Run, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := fetchRun(ctx, c, id)
		if err != nil {
			return r, err
		}
		if done(r) {
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("run %s is still %s after %s", id, r.Status, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRunErr starts a run without failing the test.
func startRunErr(ctx context.Context, c *client.ClientWithResponses, workflow string, input any) (uuid.UUID, error) {
	res, err := c.StartRunWithResponse(ctx, nil, client.StartRunRequest{Workflow: workflow, Input: &input})
	if err != nil {
		return uuid.Nil, err
	}
	if res.JSON201 == nil {
		return uuid.Nil, fmt.Errorf("start run: %d %s", res.StatusCode(), res.Body)
	}
	return res.JSON201.Id, nil
}

// callbackToken extracts the token from a step request's callback URL.
func callbackToken(callbackURL string) (string, error) {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "", err
	}
	token, ok := strings.CutPrefix(u.Path, "/v1/callbacks/")
	if !ok || token == "" {
		return "", fmt.Errorf("callback URL %q has no token", callbackURL)
	}
	return token, nil
}

// postCallback completes a step through the generated client and returns
// the status code.
func postCallback(ctx context.Context, c *client.ClientWithResponses, token string, body client.CallbackRequest) (int, error) {
	res, err := c.CompleteCallbackWithResponse(ctx, token, body)
	if err != nil {
		return 0, err
	}
	return res.StatusCode(), nil
}

// stepHub hands each run's step requests to whoever waits for them, in
// whichever order the request and the waiter arrive.
type stepHub struct {
	mu sync.Mutex
	ch map[uuid.UUID]chan stepCall
}

func (h *stepHub) of(run uuid.UUID) chan stepCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = map[uuid.UUID]chan stepCall{}
	}
	c, ok := h.ch[run]
	if !ok {
		c = make(chan stepCall, 8)
		h.ch[run] = c
	}
	return c
}

func (h *stepHub) wait(ctx context.Context, run uuid.UUID, timeout time.Duration) (stepCall, error) {
	select {
	case c := <-h.of(run):
		return c, nil
	case <-time.After(timeout):
		return stepCall{}, fmt.Errorf("no step request for run %s within %s", run, timeout)
	case <-ctx.Done():
		return stepCall{}, ctx.Err()
	}
}

// countHistory counts a run's history events of a type (and step, if set).
func countHistory(events []client.HistoryEvent, typ, step string) int {
	n := 0
	for _, h := range events {
		if h.Type == typ && (step == "" || (h.Step != nil && *h.Step == step)) {
			n++
		}
	}
	return n
}

func findStep(steps []client.StepExecution, key string) (client.StepExecution, bool) {
	for _, s := range steps {
		if s.Key == key {
			return s, true
		}
	}
	return client.StepExecution{}, false
}

// raceConcurrency bounds the iterations of a race test that run at once:
// enough to overlap them, few enough that the API's latency stays in tens
// of milliseconds, which the races' timing assumes.
const raceConcurrency = 10

// raceEach runs fn for each iteration, at most raceConcurrency at once,
// and returns when all have ended.
func raceEach(iterations int, fn func(i int)) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, raceConcurrency)
	for i := range iterations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			fn(i)
		}()
	}
	wg.Wait()
}

// raceOutcome is what one iteration of a race observed.
type raceOutcome struct {
	i        int
	run      client.Run
	callback int           // the callback's HTTP status
	cancel   int           // the cancellation's HTTP status (callback vs cancel only)
	offset   time.Duration // when the callback was posted, from the deadline
	early    bool          // posted without waiting for the 202 to be recorded
	steps    []client.StepExecution
	history  []client.HistoryEvent
	err      error
}

func (o raceOutcome) String() string {
	return fmt.Sprintf("iteration %d: run %s %s, callback %d, cancel %d, offset %s, early %t, history %v",
		o.i, o.run.Id, o.run.Status, o.callback, o.cancel, o.offset, o.early, historyKeys(o.history))
}

// TestCallbackRacesCancel posts a parked step's callback and cancels its run
// at the same moment, many times: exactly one of them wins every time.
func TestCallbackRacesCancel(t *testing.T) {
	t.Parallel()
	const iterations = 50

	hub := &stepHub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec recorder
		c := rec.readStep(t, r)
		switch c.Path {
		case "/wait":
			hub.of(c.Body.RunID) <- c
			w.WriteHeader(http.StatusAccepted)
		default:
			writeJSON(w, http.StatusOK, map[string]any{"output": "after"})
		}
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "cbcancel", "steps": [
		{"name": "wait", "type": "call", "url": "%[1]s/wait", "timeout": "10s", "callback_timeout": "1m", "retry": {"max_attempts": 1}},
		{"name": "after", "type": "call", "url": "%[1]s/after", "timeout": "10s", "retry": {"max_attempts": 1}}]}`, srv.URL))
	e.startWorker()
	e.startWorker()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	out := make([]raceOutcome, iterations)
	raceEach(iterations, func(i int) {
		out[i] = raceCallbackCancel(ctx, e.client, hub, i)
	})

	var callbackWon, cancelAfter, early int
	cancelWon := map[int]int{}
	for _, o := range out {
		require.NoError(t, o.err, "iteration %d", o.i)
		wait, ok := findStep(o.steps, "wait")
		require.True(t, ok, "%s", o)
		succeeded := countHistory(o.history, "step_succeeded", "wait")
		terminal := countHistory(o.history, "run_succeeded", "") + countHistory(o.history, "run_cancelled", "") + countHistory(o.history, "run_failed", "")
		require.Equal(t, 1, terminal, "the run did not end exactly once: %s", o)
		require.LessOrEqual(t, succeeded, 1, "step_succeeded recorded twice: %s", o)
		require.False(t, succeeded > 0 && wait.Status == "cancelled", "the step both succeeded and was cancelled: %s", o)
		switch o.callback {
		case http.StatusOK:
			callbackWon++
			require.Equal(t, client.StepExecutionStatus("succeeded"), wait.Status, "callback answered 200: %s", o)
			require.Equal(t, 1, succeeded, "callback answered 200: %s", o)
			switch o.cancel {
			case http.StatusOK: // cancelled after the step succeeded
				cancelAfter++
				require.Equal(t, client.RunStatus("cancelled"), o.run.Status, "%s", o)
				require.Equal(t, 1, countHistory(o.history, "run_cancelled", ""), "%s", o)
			case http.StatusConflict: // the run had finished
				require.Equal(t, client.RunStatus("succeeded"), o.run.Status, "%s", o)
				require.Equal(t, 1, countHistory(o.history, "run_succeeded", ""), "%s", o)
			default:
				t.Fatalf("cancel answered %d: %s", o.cancel, o)
			}
		case http.StatusConflict, http.StatusGone:
			cancelWon[o.callback]++
			require.Equal(t, http.StatusOK, o.cancel, "neither the callback nor the cancellation won: %s", o)
			require.Equal(t, client.StepExecutionStatus("cancelled"), wait.Status, "the callback lost: %s", o)
			require.Zero(t, succeeded, "the callback lost but the step succeeded: %s", o)
			require.Equal(t, client.RunStatus("cancelled"), o.run.Status, "%s", o)
			require.Equal(t, 1, countHistory(o.history, "run_cancelled", ""), "%s", o)
		default:
			t.Fatalf("callback answered %d: %s", o.callback, o)
		}
		if o.early {
			early++
		}
	}
	t.Logf("%d iterations in %s: callback won %d (then cancelled %d), cancel won %d (callback answered 409: %d, 410: %d); %d raced the recording of the 202",
		iterations, time.Since(begin).Round(time.Millisecond), callbackWon, cancelAfter,
		cancelWon[http.StatusConflict]+cancelWon[http.StatusGone], cancelWon[http.StatusConflict], cancelWon[http.StatusGone], early)
}

// raceCallbackCancel is one iteration of TestCallbackRacesCancel.
func raceCallbackCancel(ctx context.Context, c *client.ClientWithResponses, hub *stepHub, i int) (o raceOutcome) {
	o.i = i
	id, err := startRunErr(ctx, c, "cbcancel", map[string]any{"i": i})
	if err != nil {
		o.err = err
		return o
	}
	call, err := hub.wait(ctx, id, 30*time.Second)
	if err != nil {
		o.err = err
		return o
	}
	token, err := callbackToken(call.Body.CallbackURL)
	if err != nil {
		o.err = err
		return o
	}
	if i%2 == 0 {
		// Race a step that is parked (its 202 recorded)...
		if _, err := pollRun(ctx, c, id, 20*time.Second, func(r client.Run) bool { return r.Status == "waiting" }); err != nil {
			o.err = err
			return o
		}
	} else {
		// ...or one whose 202 the worker may still be recording.
		o.early = true
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	var cbErr, cancelErr error
	wg.Add(2)
	// Vary who starts first, and by how much: the callback checks its token
	// before its transaction, so it needs a head start to win at times.
	lead := time.Duration(i%10)*7*time.Millisecond - 14*time.Millisecond // -14ms…49ms
	go func() {
		defer wg.Done()
		<-start
		if lead < 0 {
			time.Sleep(-lead)
		}
		succeeded := client.CallbackRequestStatus("succeeded")
		o.callback, cbErr = postCallback(ctx, c, token, client.CallbackRequest{Status: &succeeded, Output: map[string]any{"i": i}})
	}()
	go func() {
		defer wg.Done()
		<-start
		if lead > 0 {
			time.Sleep(lead)
		}
		reason := "race"
		res, err := c.CancelRunWithResponse(ctx, id, client.CancelRunRequest{Reason: &reason})
		if err != nil {
			cancelErr = err
			return
		}
		o.cancel = res.StatusCode()
	}()
	close(start)
	wg.Wait()
	if o.err = errors.Join(cbErr, cancelErr); o.err != nil {
		return o
	}
	return finishRace(ctx, c, id, o)
}

// finishRace waits for the run to end and reads what it recorded.
func finishRace(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID, o raceOutcome) raceOutcome {
	o.run, o.err = pollRun(ctx, c, id, 20*time.Second, terminalRun)
	if o.err != nil {
		return o
	}
	// A worker may still hold a lease it will find lost; give it a moment
	// to (wrongly) record something.
	time.Sleep(300 * time.Millisecond)
	if o.run, o.err = fetchRun(ctx, c, id); o.err != nil {
		return o
	}
	if o.steps, o.err = fetchSteps(ctx, c, id); o.err != nil {
		return o
	}
	o.history, o.err = fetchHistory(ctx, c, id)
	return o
}

// TestCallbackRacesTimeout posts a parked step's callback at about its
// callback deadline, many times: either the callback wins and the step
// succeeds, or the step times out and the callback is refused — never both.
func TestCallbackRacesTimeout(t *testing.T) {
	t.Parallel()
	const (
		iterations      = 50
		callbackTimeout = 300 * time.Millisecond
		// Callbacks are posted from early before the deadline to late after
		// it: the API takes tens of milliseconds under this load, so a
		// callback posted a little early may arrive late.
		earliest = -100 * time.Millisecond
		latest   = 60 * time.Millisecond
	)

	hub := &stepHub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec recorder
		c := rec.readStep(t, r)
		hub.of(c.Body.RunID) <- c
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool)
	e.createWorkflow(fmt.Sprintf(`{"name": "cbtimeout", "steps": [
		{"name": "wait", "type": "call", "url": "%s/wait", "timeout": "10s", "callback_timeout": "%s", "retry": {"max_attempts": 1}}]}`,
		srv.URL, callbackTimeout))
	e.startWorker()
	e.startWorker()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	out := make([]raceOutcome, iterations)
	raceEach(iterations, func(i int) {
		offset := earliest + time.Duration(i)*(latest-earliest)/(iterations-1)
		out[i] = raceCallbackTimeout(ctx, e.client, hub, i, offset)
	})

	var won int
	lost := map[int]int{}
	var lateWin, earlyLoss []string
	for _, o := range out {
		require.NoError(t, o.err, "iteration %d", o.i)
		wait, ok := findStep(o.steps, "wait")
		require.True(t, ok, "%s", o)
		succeeded := countHistory(o.history, "step_succeeded", "wait")
		timedOut := countHistory(o.history, "step_timed_out", "wait")
		require.LessOrEqual(t, succeeded+timedOut, 1, "the step both succeeded and timed out: %s", o)
		switch o.callback {
		case http.StatusOK:
			won++
			require.Equal(t, 1, succeeded, "callback answered 200: %s", o)
			require.Zero(t, timedOut, "callback answered 200 but the step timed out: %s", o)
			require.Equal(t, client.StepExecutionStatus("succeeded"), wait.Status, "%s", o)
			require.Equal(t, []string{"succeeded"}, attemptStatuses(wait), "%s", o)
			require.Equal(t, client.RunStatus("succeeded"), o.run.Status, "%s", o)
			// The deadline is the database's clock, on this machine: a
			// callback sent after it arrives after it, and has expired.
			require.LessOrEqual(t, o.offset, 5*time.Millisecond, "a callback sent %s after the step's deadline was accepted: %s", o.offset, o)
			if o.offset > 0 {
				lateWin = append(lateWin, o.offset.String())
			}
		case http.StatusGone, http.StatusConflict:
			lost[o.callback]++
			require.Equal(t, 1, timedOut, "callback answered %d but the step did not time out: %s", o.callback, o)
			require.Zero(t, succeeded, "callback answered %d but the step succeeded: %s", o.callback, o)
			require.Equal(t, client.StepExecutionStatus("failed"), wait.Status, "%s", o)
			require.Equal(t, []string{"timed_out"}, attemptStatuses(wait), "%s", o)
			require.Equal(t, client.RunStatus("failed"), o.run.Status, "%s", o)
			if o.offset < -20*time.Millisecond {
				earlyLoss = append(earlyLoss, o.offset.Round(time.Millisecond).String())
			}
		default:
			t.Fatalf("callback answered %d: %s", o.callback, o)
		}
	}
	t.Logf("%d iterations in %s: callback won %d, timeout won %d (callback answered 410: %d, 409: %d); callbacks sent after the deadline that won: %v; sent >20ms before it that lost (API latency): %v",
		iterations, time.Since(begin).Round(time.Millisecond), won, lost[http.StatusGone]+lost[http.StatusConflict], lost[http.StatusGone], lost[http.StatusConflict], lateWin, earlyLoss)
}

// raceCallbackTimeout is one iteration of TestCallbackRacesTimeout: it
// posts the callback offset from the parked step's deadline.
func raceCallbackTimeout(ctx context.Context, c *client.ClientWithResponses, hub *stepHub, i int, offset time.Duration) (o raceOutcome) {
	o.i, o.offset = i, offset
	id, err := startRunErr(ctx, c, "cbtimeout", map[string]any{"i": i})
	if err != nil {
		o.err = err
		return o
	}
	call, err := hub.wait(ctx, id, 30*time.Second)
	if err != nil {
		o.err = err
		return o
	}
	token, err := callbackToken(call.Body.CallbackURL)
	if err != nil {
		o.err = err
		return o
	}
	// The deadline counts from when the 202 is recorded: read it back.
	var deadline time.Time
	for deadline.IsZero() {
		steps, err := fetchSteps(ctx, c, id)
		if err != nil {
			o.err = err
			return o
		}
		if s, ok := findStep(steps, "wait"); ok && s.Status != "running" && s.Deadline != nil {
			deadline = *s.Deadline
			break
		}
		if time.Since(call.At) > 10*time.Second {
			o.err = fmt.Errorf("the step of run %s was not parked within 10s", id)
			return o
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline.Add(offset)))
	o.callback, o.err = postCallback(ctx, c, token, client.CallbackRequest{Status: status("succeeded"), Output: map[string]any{"i": i}})
	if o.err != nil {
		return o
	}
	return finishRace(ctx, c, id, o)
}
