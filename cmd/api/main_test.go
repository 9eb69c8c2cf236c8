package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/db/migrations"
	"github.com/durablehq/durable/internal/config"
	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/signing"
)

// syncBuffer collects the program's log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the real program on port 0 against databaseURL.
func start(t *testing.T, databaseURL string, env map[string]string) (*Main, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return map[string]string{"DATABASE_URL": databaseURL, "DURABLE_ADDR": "127.0.0.1:0"}[k]
	}
	m := NewMain()
	require.NoError(t, m.Run(context.Background(), nil, getenv, logs), "logs:\n%s", logs)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, logs
}

func newClient(t *testing.T, m *Main) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses("http://" + m.Addr().String())
	require.NoError(t, err)
	return c
}

// TestFirstSession walks DESIGN.md's first session through the generated
// client, as a user would: post a workflow, start a run idempotently, read
// it back, list it, cancel it, and read its history.
func TestFirstSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, logs := start(t, pgtest.URL(t), nil)
	require.Contains(t, logs.String(), "DEVELOPMENT MODE")
	require.Regexp(t, `no DURABLE_SIGNING_SECRET is configured.* secret="?whsec_`, logs.String(), "development prints the secret to check signatures with")
	c := newClient(t, m)

	var def client.WorkflowDefinition
	require.NoError(t, json.Unmarshal([]byte(`{
	  "name": "greet",
	  "steps": [
	    {"name": "lookup", "type": "call", "url": "http://127.0.0.1:9000/lookup"},
	    {"name": "send", "type": "call", "url": "http://127.0.0.1:9000/send",
	     "input": {"email": "${ steps.lookup.output.email }"},
	     "retry": {"max_attempts": 5}}
	  ]}`), &def))
	created, err := c.CreateWorkflowWithResponse(ctx, def)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	require.Equal(t, 1, created.JSON201.Version)
	require.True(t, strings.HasPrefix(created.JSON201.ContentHash, "sha256:"))

	again, err := c.CreateWorkflowWithResponse(ctx, def)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, again.StatusCode())
	require.Equal(t, 1, again.JSON200.Version)

	key := "order-42"
	body := client.StartRunRequest{Workflow: "greet", Input: map[string]any{"user_id": 42}}
	started, err := c.StartRunWithResponse(ctx, &client.StartRunParams{IdempotencyKey: &key}, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, started.StatusCode(), string(started.Body))
	run := started.JSON201
	require.Equal(t, client.RunStatus("pending"), run.Status)
	require.Equal(t, client.WorkflowRef{Name: "greet", Version: 1}, run.Workflow)
	require.Equal(t, map[string]any{"user_id": float64(42)}, run.Input)

	same, err := c.StartRunWithResponse(ctx, &client.StartRunParams{IdempotencyKey: &key}, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, same.StatusCode())
	require.Equal(t, run.Id, same.JSON200.Id)

	other := client.StartRunRequest{Workflow: "greet", Input: map[string]any{"user_id": 43}}
	conflict, err := c.StartRunWithResponse(ctx, &client.StartRunParams{IdempotencyKey: &key}, other)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, conflict.StatusCode())

	got, err := c.GetRunWithResponse(ctx, run.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.StatusCode())
	require.Equal(t, run.Id, got.JSON200.Id)

	pending := []client.RunStatus{"pending"}
	list, err := c.ListRunsWithResponse(ctx, &client.ListRunsParams{Status: &pending})
	require.NoError(t, err)
	require.Len(t, list.JSON200.Items, 1)

	cancelled, err := c.CancelRunWithResponse(ctx, run.Id, client.CancelRunRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, cancelled.StatusCode(), string(cancelled.Body))
	require.Equal(t, client.RunStatus("cancelled"), cancelled.JSON200.Status)

	history, err := c.ListRunHistoryWithResponse(ctx, run.Id, nil)
	require.NoError(t, err)
	var types []string
	for _, e := range history.JSON200.Items {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"run_created", "run_cancelled"}, types)

	steps, err := c.ListRunStepsWithResponse(ctx, run.Id, nil)
	require.NoError(t, err)
	require.Empty(t, steps.JSON200.Items)

	ready, err := c.GetReadinessWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ready.StatusCode())
}

// TestConcurrentStartsMigrateOnce starts several programs at once on one
// empty database: the migration lock lets exactly one apply each migration
// and all of them come up.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	const n = 4
	logs := make([]*syncBuffer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, logs[i] = start(t, url, nil)
		}()
	}
	wg.Wait()
	applied := 0
	for _, l := range logs {
		applied += strings.Count(l.String(), "migration applied")
	}
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	require.Equal(t, len(files), applied, "each migration is applied exactly once")
}

// TestAPIKeys checks that configured keys are required, and that with
// them the development signing secret stays out of the logs.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := "a-long-enough-test-key"
	m, logs := start(t, pgtest.URL(t), map[string]string{"DURABLE_API_KEYS": key})
	require.NotContains(t, logs.String(), "DEVELOPMENT MODE")
	require.Contains(t, logs.String(), "no DURABLE_SIGNING_SECRET is configured")
	require.NotContains(t, logs.String(), "whsec_")

	anonymous := newClient(t, m)
	res, err := anonymous.ListWorkflowsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode())

	authed, err := client.NewClientWithResponses("http://"+m.Addr().String(), client.WithRequestEditorFn(
		func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	require.NoError(t, err)
	res, err = authed.ListWorkflowsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode())
}

// TestConfiguredSecretNotLogged starts the API with a signing secret of
// its own, in development mode and with API keys: neither logs it.
func TestConfiguredSecretNotLogged(t *testing.T) {
	t.Parallel()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	url := pgtest.URL(t)
	for _, keys := range []string{"", "a-long-enough-test-key"} {
		_, logs := start(t, url, map[string]string{"DURABLE_SIGNING_SECRET": secret, "DURABLE_API_KEYS": keys})
		require.NotContains(t, logs.String(), "whsec_")
		require.NotContains(t, logs.String(), strings.TrimPrefix(secret, "whsec_"))
		require.NotContains(t, logs.String(), "DURABLE_SIGNING_SECRET")
	}
}

// TestHelpListsSettings checks that api -h lists the API's settings, not
// the worker's, and names api migrate.
func TestHelpListsSettings(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	err := NewMain().Run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out)
	require.ErrorIs(t, err, config.ErrHelp)
	for _, v := range []string{"DATABASE_URL", "DURABLE_ADDR", "DURABLE_PUBLIC_URL", "DURABLE_API_KEYS", "DURABLE_MAX_INPUT_BYTES", "DURABLE_PPROF_ADDR", "-version"} {
		require.Contains(t, out.String(), v)
	}
	for _, v := range []string{"DURABLE_WORKER_CONCURRENCY", "DURABLE_POLL_INTERVAL", "DURABLE_ALLOW_HOSTS", "DURABLE_METRICS_ADDR"} {
		require.NotContains(t, out.String(), v)
	}
	require.Contains(t, out.String(), "api migrate [flags]   apply pending database migrations and exit")
}

// TestVersion checks that -version stops the program before it touches
// the database; main prints version.Line.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-version"}, {"migrate", "-version"}} {
		var out syncBuffer
		getenv := func(k string) string {
			return map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}[k]
		}
		err := NewMain().Run(context.Background(), args, getenv, &out)
		require.ErrorIs(t, err, config.ErrVersion, args)
		require.Empty(t, out.String())
	}
}

// TestProfiles checks that DURABLE_PPROF_ADDR serves Go's profiles on an
// address of their own, and that the API's address never serves them.
func TestProfiles(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	get := func(url string) int {
		res, err := http.Get(url)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}

	m, _ := start(t, url, nil)
	require.Nil(t, m.ProfilesAddr(), "off by default")
	require.Equal(t, http.StatusNotFound, get("http://"+m.Addr().String()+"/debug/pprof/"))

	m, logs := start(t, url, map[string]string{"DURABLE_PPROF_ADDR": "127.0.0.1:0"})
	require.NotNil(t, m.ProfilesAddr())
	require.NotEqual(t, m.Addr().String(), m.ProfilesAddr().String())
	require.Contains(t, logs.String(), "serving Go profiles")
	require.Equal(t, http.StatusOK, get("http://"+m.ProfilesAddr().String()+"/debug/pprof/"))
	require.Equal(t, http.StatusOK, get("http://"+m.ProfilesAddr().String()+"/debug/pprof/heap"))
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		require.Equal(t, http.StatusNotFound, get("http://"+m.Addr().String()+path), path)
	}

	// A port number alone is refused; an address in use (here the API's
	// own) fails the start.
	for bad, want := range map[string]string{"6060": "DURABLE_PPROF_ADDR (-pprof-addr): not a host:port", m.Addr().String(): "profiles: listen on " + m.Addr().String()} {
		var out syncBuffer
		other := NewMain()
		err := other.Run(context.Background(), nil, func(k string) string {
			return map[string]string{"DATABASE_URL": url, "DURABLE_ADDR": "127.0.0.1:0", "DURABLE_PPROF_ADDR": bad}[k]
		}, &out)
		require.ErrorContains(t, err, want)
		require.NoError(t, other.Close())
	}
}
