package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// This file tests the dashboard in a real browser: Debian's chromium
// driven by playwright-core (tools/browser/dashboard.mjs) through the
// built api and worker. Both are installed when missing; when they cannot
// be, the test is skipped — and fails instead where DURABLE_REQUIRE_BROWSER
// is set, as .ci/run sets it (see docs/dashboard.md).

const chromium = "/usr/bin/chromium"

// browserTools returns the directory of the browser script, installing
// chromium (apt-get) and playwright-core (npm ci, from the lock) when
// missing.
func browserTools(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "tools", "browser")
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("DURABLE_REQUIRE_BROWSER") != "" {
			t.Fatalf("the browser tests cannot run: "+format, args...)
		}
		t.Skipf("the browser tests cannot run (set DURABLE_REQUIRE_BROWSER to fail instead): "+format, args...)
	}
	browserInstall.Do(func() {
		if _, err := os.Stat(chromium); err != nil {
			cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "chromium")
			if out, err := cmd.CombinedOutput(); err != nil {
				browserInstall.err = fmt.Errorf("install chromium (apt-get install chromium): %v\n%s", err, lastLines(out))
				return
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
			cmd := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts")
			if out, err := cmd.CombinedOutput(); err != nil {
				browserInstall.err = fmt.Errorf("install playwright-core (npm ci): %v\n%s", err, lastLines(out))
			}
		}
	})
	if browserInstall.err != nil {
		unavailable("%v", browserInstall.err)
	}
	return dir
}

var browserInstall struct {
	sync.Once
	err error
}

func lastLines(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// dashAPI calls the REST API with the deployment's key.
type dashAPI struct {
	t   *testing.T
	url string
	key string
}

func (a dashAPI) do(method, path string, body any, want int) map[string]any {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(a.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	require.NoError(a.t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	require.Equal(a.t, want, res.StatusCode, "%s %s: %s", method, path, raw)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return out
}

func (a dashAPI) waitStatus(id string, want ...string) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run := a.do(http.MethodGet, "/v1/runs/"+id, nil, http.StatusOK)
		for _, w := range want {
			if run["status"] == w {
				return run
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s is %v, not %v", id, run["status"], want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDashboardInBrowser goes through every page of the dashboard in
// chromium with real data: login (a wrong key refused), CSRF refusals, the
// workflows with their graph, the runs with their counts, a run whose
// status changes on screen when its callback completes it (no reload), a
// form answered in the inbox (the API's validation message shown, then a
// valid answer resuming the run), a bulk cancel of the runs a filter
// matches (its dry-run count shown, then confirmed, its operation's
// progress shown), the runs ticked on the list cancelled, a failed run retried from its page with an edited
// input (a bad patch refused on its field first) until it succeeds, a callback URL opened in the browser
// showing the same form, a schedule triggered from its page, the events
// with the waits they resumed — and no console error on any page (a CSP
// violation is one). Screenshots go to DURABLE_SCREENSHOTS when set (make
// screenshots: docs/img).
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	tools := browserTools(t)
	const key = "dash-test-key-0123456789"

	var mu sync.Mutex
	callbacks := map[string]string{} // run id → callback URL of its async step
	steps, _ := stServer(t, func(w http.ResponseWriter, r *http.Request, c stepCall) {
		if strings.HasSuffix(r.URL.Path, "/flaky") && !strings.Contains(string(c.Body.Input), `"fixed":true`) {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"code": "broken", "message": "the input is not fixed"}})
			return
		}
		if strings.HasSuffix(r.URL.Path, "/ship") {
			mu.Lock()
			callbacks[c.Body.RunID.String()] = c.Body.CallbackURL
			mu.Unlock()
			writeJSON(w, http.StatusAccepted, map[string]any{})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"output": c.Body.Input, "logs": []any{map[string]any{"level": "info", "message": "echoed " + c.Body.Step}}})
	})
	e := newEnv(t, "DURABLE_API_KEYS="+key)
	e.startWorker()
	api := dashAPI{t: t, url: e.apiURL, key: key}

	api.do(http.MethodPost, "/v1/workflows", map[string]any{"name": "orders", "steps": []any{
		map[string]any{"name": "charge", "type": "call", "url": steps.URL + "/charge", "input": map[string]any{"amount": "${ input.amount }"}},
		map[string]any{"name": "ship", "type": "call", "url": steps.URL + "/ship", "callback_timeout": "1h"},
		map[string]any{"name": "notify", "type": "parallel", "branches": []any{
			map[string]any{"name": "email", "steps": []any{map[string]any{"name": "mail", "type": "call", "url": steps.URL + "/mail"}}},
			map[string]any{"name": "sms", "steps": []any{map[string]any{"name": "text", "type": "call", "url": steps.URL + "/text"}}},
		}},
	}}, http.StatusCreated)
	api.do(http.MethodPost, "/v1/workflows", map[string]any{"name": "review", "steps": []any{
		map[string]any{"name": "assess", "type": "wait_for_input", "kind": "form", "prompt": "Assess the claim",
			"schema": map[string]any{"type": "object", "required": []any{"note", "score"}, "properties": map[string]any{
				"note":   map[string]any{"type": "string", "title": "Note", "minLength": 3},
				"score":  map[string]any{"type": "integer", "title": "Score", "minimum": 1, "maximum": 5},
				"urgent": map[string]any{"type": "boolean", "title": "Urgent"},
			}}},
		map[string]any{"name": "file", "type": "call", "url": steps.URL + "/file", "input": map[string]any{"assessment": "${ steps.assess.output }"}},
	}}, http.StatusCreated)
	api.do(http.MethodPost, "/v1/workflows", map[string]any{"name": "approve", "steps": []any{
		map[string]any{"name": "ok", "type": "wait_for_input", "kind": "approval", "prompt": "Ship order 42?"},
	}}, http.StatusCreated)
	api.do(http.MethodPost, "/v1/workflows", map[string]any{"name": "paid", "steps": []any{
		map[string]any{"name": "payment", "type": "wait_for_event", "event": "payment.received", "key": "${ input.order }"},
	}}, http.StatusCreated)

	api.do(http.MethodPost, "/v1/workflows", map[string]any{"name": "flaky", "steps": []any{
		map[string]any{"name": "prepare", "type": "call", "url": steps.URL + "/prepare"},
		map[string]any{"name": "try", "type": "call", "url": steps.URL + "/flaky", "retry": map[string]any{"max_attempts": 1},
			"input": map[string]any{"fixed": "${ input.fixed }"}},
	}}, http.StatusCreated)
	for _, name := range []string{"hold", "park"} {
		api.do(http.MethodPost, "/v1/workflows", map[string]any{"name": name, "steps": []any{
			map[string]any{"name": "forever", "type": "wait_for_event", "event": "never.sent", "key": "${ input.n }"},
		}}, http.StatusCreated)
	}

	start := func(wf string, input any) string {
		return api.do(http.MethodPost, "/v1/runs", map[string]any{"workflow": wf, "input": input}, http.StatusCreated)["id"].(string)
	}
	shipped := start("orders", map[string]any{"amount": 42})
	for i := range 3 {
		start("orders", map[string]any{"amount": i})
	}
	review := start("review", nil)
	approve := start("approve", nil)
	paid := start("paid", map[string]any{"order": "o-17"})
	flaky := start("flaky", map[string]any{"fixed": false})
	var held, parked []string
	for i := range 3 {
		held = append(held, start("hold", map[string]any{"n": i}))
	}
	for i := range 2 {
		parked = append(parked, start("park", map[string]any{"n": i}))
	}
	api.waitStatus(shipped, "waiting", "running")
	var shipCallback string
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		shipCallback = callbacks[shipped]
		return shipCallback != ""
	}, 30*time.Second, 50*time.Millisecond)
	api.waitStatus(review, "waiting")
	approval := api.waitStatus(approve, "waiting")
	approveURL := approval["waiting_for"].([]any)[0].(map[string]any)["callback_url"].(string)
	api.waitStatus(paid, "waiting")
	api.waitStatus(flaky, "failed")
	for _, id := range append(held, parked...) {
		api.waitStatus(id, "waiting")
	}
	api.do(http.MethodPost, "/v1/events", map[string]any{"name": "payment.received", "key": "o-17", "payload": map[string]any{"amount": 42}}, http.StatusCreated)
	api.waitStatus(paid, "succeeded")
	schedule := api.do(http.MethodPost, "/v1/schedules", map[string]any{
		"name": "nightly-orders", "workflow": "orders", "cron": "30 2 * * *", "timezone": "Europe/Paris", "input": map[string]any{"amount": 1},
	}, http.StatusCreated)["id"].(string)

	shots := os.Getenv("DURABLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if !filepath.IsAbs(shots) {
		_, file, _, _ := runtime.Caller(0)
		shots = filepath.Join(filepath.Dir(file), "..", "..", shots)
	}
	params, err := json.Marshal(map[string]any{
		"url": e.apiURL, "key": key, "chromium": chromium, "shots": shots,
		"shipped": shipped, "shipCallback": shipCallback, "review": review,
		"approve": approve, "approveURL": approveURL, "paid": paid, "schedule": schedule,
		"flaky": flaky, "held": held, "parked": parked,
	})
	require.NoError(t, err)
	cmd := exec.Command("node", filepath.Join(tools, "dashboard.mjs"))
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "DASHBOARD_TEST="+string(params))
	out, err := cmd.CombinedOutput()
	t.Logf("browser script:\n%s", out)
	require.NoError(t, err, "the browser script failed")

	// What the browser did, as the API sees it.
	require.Equal(t, "succeeded", api.waitStatus(shipped, "succeeded")["status"])
	reviewed := api.waitStatus(review, "succeeded")
	require.Equal(t, "succeeded", reviewed["status"])
	api.waitStatus(approve, "succeeded")
	var assess map[string]any
	for _, s := range api.do(http.MethodGet, "/v1/runs/"+review+"/steps", nil, http.StatusOK)["items"].([]any) {
		if s.(map[string]any)["key"] == "assess" {
			assess = s.(map[string]any)["output"].(map[string]any)
		}
	}
	require.Equal(t, map[string]any{"note": "looks fine", "score": float64(4), "urgent": true}, assess["value"])
	for _, id := range held {
		require.Equal(t, "cancelled", api.do(http.MethodGet, "/v1/runs/"+id, nil, http.StatusOK)["status"], "the bulk cancel from the runs page cancelled run %s", id)
	}
	for _, id := range parked {
		require.Equal(t, "cancelled", api.do(http.MethodGet, "/v1/runs/"+id, nil, http.StatusOK)["status"], "the selected run %s was cancelled", id)
	}
	fixed := api.do(http.MethodGet, "/v1/runs/"+flaky, nil, http.StatusOK)
	require.Equal(t, "succeeded", fixed["status"])
	require.Equal(t, map[string]any{"fixed": true}, fixed["input"], "the retry's edited input")
	fires := api.do(http.MethodGet, "/v1/schedules/"+schedule, nil, http.StatusOK)["fires"].([]any)
	require.Len(t, fires, 1, "the page's trigger fired the schedule once")
}
