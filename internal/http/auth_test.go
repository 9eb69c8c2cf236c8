package http_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, withAPIKeys("primary-key-0123456789", "rotated-key-9876543210"))
	auth := []string{"Authorization", "Bearer primary-key-0123456789"}

	res := b.do(t, http.MethodPost, "/v1/workflows", []byte(twoStepWorkflow), auth...)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	res = b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet"}`), auth...)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	var r run
	res.decode(t, &r)
	before := b.state(t, auth...)

	endpoints := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/workflows", twoStepWorkflow},
		{http.MethodGet, "/v1/workflows", ""},
		{http.MethodGet, "/v1/workflows/greet", ""},
		{http.MethodGet, "/v1/workflows/greet/versions", ""},
		{http.MethodGet, "/v1/workflows/greet/versions/1", ""},
		{http.MethodPost, "/v1/runs", `{"workflow": "greet"}`},
		{http.MethodGet, "/v1/runs", ""},
		{http.MethodGet, "/v1/runs/" + r.ID, ""},
		{http.MethodGet, "/v1/runs/" + r.ID + "/steps", ""},
		{http.MethodGet, "/v1/runs/" + r.ID + "/history", ""},
		{http.MethodPost, "/v1/runs/" + r.ID + "/cancel", `{"reason": "no key"}`},
		// Without a key, the key is checked before the request.
		{http.MethodGet, "/v1/runs/not-a-uuid", ""},
		{http.MethodPost, "/v1/runs", `{"workflow": 5}`},
	}
	refused := []struct {
		name, authorization, challenge string
	}{
		{"no key", "", `Bearer realm="durable"`},
		{"empty bearer", "Bearer ", `Bearer realm="durable"`},
		{"bearer alone", "Bearer", `Bearer realm="durable"`},
		{"wrong key", "Bearer wrong-key", `Bearer realm="durable", error="invalid_token"`},
		{"key of another case", "Bearer PRIMARY-KEY-0123456789", `Bearer realm="durable", error="invalid_token"`},
		{"key with more", "Bearer primary-key-0123456789x", `Bearer realm="durable", error="invalid_token"`},
		{"key prefix", "Bearer primary-key", `Bearer realm="durable", error="invalid_token"`},
		{"key without a scheme", "primary-key-0123456789", `Bearer realm="durable"`},
		{"basic", "Basic " + base64.StdEncoding.EncodeToString([]byte("user:primary-key-0123456789")), `Bearer realm="durable"`},
		{"SQL", "Bearer ' OR 1=1 --", `Bearer realm="durable", error="invalid_token"`},
	}
	for _, e := range endpoints {
		for _, a := range refused {
			t.Run(e.method+" "+e.path+" "+a.name, func(t *testing.T) {
				var body []byte
				if e.body != "" {
					body = []byte(e.body)
				}
				res := b.do(t, e.method, e.path, body, "Authorization", a.authorization)
				requireProblem(t, res, http.StatusUnauthorized)
				require.Equal(t, a.challenge, res.header.Get("WWW-Authenticate"))
			})
		}
	}
	require.Equal(t, before, b.state(t, auth...), "refused requests change nothing")
	require.Equal(t, "pending", b.getRunWith(t, r.ID, auth...).Status)

	// Every configured key works, whatever the case of the scheme.
	for _, authorization := range []string{
		"Bearer primary-key-0123456789",
		"Bearer rotated-key-9876543210",
		"bearer primary-key-0123456789",
		"BEARER rotated-key-9876543210",
	} {
		t.Run(authorization, func(t *testing.T) {
			for _, e := range endpoints {
				var body []byte
				if e.body != "" {
					body = []byte(e.body)
				}
				res := b.do(t, e.method, e.path, body, "Authorization", authorization)
				require.NotEqual(t, http.StatusUnauthorized, res.status, "%s %s: %s", e.method, e.path, truncate(res.body))
				require.Less(t, res.status, 500, "%s %s: %s", e.method, e.path, truncate(res.body))
			}
		})
	}

	// The probes need no key.
	for _, path := range []string{"/healthz", "/readyz"} {
		res := b.do(t, http.MethodGet, path, nil)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", path, truncate(res.body))
		require.JSONEq(t, `{"status": "ok"}`, string(res.body))
	}
	// So do the metrics, which Prometheus scrapes without credentials;
	// they count the refused requests by route, never by path.
	res = b.do(t, http.MethodGet, "/metrics", nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, string(res.body), `durable_http_requests_total{code="401",method="GET",route="/v1/runs/{id}"}`)
	require.NotContains(t, string(res.body), "Bearer")
}

// getRunWith reads a run with the given headers.
func (b *testBundle) getRunWith(t *testing.T, id string, headers ...string) run {
	t.Helper()
	res := b.do(t, http.MethodGet, "/v1/runs/"+id, nil, headers...)
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	var r run
	res.decode(t, &r)
	return r
}

func TestReadiness(t *testing.T) {
	t.Parallel()

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.do(t, http.MethodGet, "/readyz", nil)
		require.Equal(t, http.StatusOK, res.status)
		require.Equal(t, "application/json", res.header.Get("Content-Type"))
		require.JSONEq(t, `{"status": "ok"}`, string(res.body))
	})

	t.Run("not ready", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withReady(func(context.Context) error { return errors.New("database migrations are pending") }))
		p := requireProblem(t, b.do(t, http.MethodGet, "/readyz", nil), http.StatusServiceUnavailable)
		require.Contains(t, p.Detail, "database migrations are pending")
		b.requireHealthy(t) // alive, though not ready
	})

	t.Run("database closed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.db.Close()
		requireProblem(t, b.do(t, http.MethodGet, "/readyz", nil), http.StatusServiceUnavailable)
		b.requireHealthy(t)
	})

	t.Run("ready gets the request's context", func(t *testing.T) {
		t.Parallel()
		// The request's context ends when the client goes away; a
		// background context, which has no Done channel, never does.
		var cancellable atomic.Bool
		b := setup(t, withReady(func(ctx context.Context) error {
			cancellable.Store(ctx.Done() != nil)
			return nil
		}))
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/readyz", nil).status)
		require.True(t, cancellable.Load())
	})
}
