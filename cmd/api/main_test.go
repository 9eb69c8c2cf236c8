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
	"github.com/durablehq/durable/internal/postgres/pgtest"
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

// TestAPIKeys checks that configured keys are required and that help lists
// every setting.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := "a-long-enough-test-key"
	m, logs := start(t, pgtest.URL(t), map[string]string{"DURABLE_API_KEYS": key})
	require.NotContains(t, logs.String(), "DEVELOPMENT MODE")

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

func TestHelpListsSettings(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	err := NewMain().Run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out)
	require.Error(t, err)
	for _, v := range []string{"DATABASE_URL", "DURABLE_ADDR", "DURABLE_PUBLIC_URL", "DURABLE_API_KEYS", "DURABLE_MAX_INPUT_BYTES"} {
		require.Contains(t, out.String(), v)
	}
}
