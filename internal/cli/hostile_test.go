package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHostileAnswers: whatever a server answers — control characters that
// would clear or retitle the terminal, a body that is not JSON, one that
// does not fit the contract, a proxy's HTML page, a huge problem — the
// command prints it harmlessly and exits 3 when it is not a good answer.
func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	const id = "01a21aaf-0000-7000-8000-000000000001"
	evil := `\u001b]0;pwned\u0007\u001b[2J`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/runs/" + id:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id": "` + id + `", "workflow": {"name": "w", "version": 1}, "status": "waiting",
				"attempt": 1, "input": {}, "context": {"k": "` + evil + `"},
				"created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z",
				"error": {"message": "boom ` + evil + `", "code": "step_failed", "step": "s` + evil + `"},
				"waiting_for": [{"step": "ok", "type": "wait_for_input",
					"question": {"kind": "choice", "prompt": "` + evil + `?", "options": ["` + evil + `"]}}]}`))
		case "/v1/runs/" + id + "/steps":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"items": [{"id": "` + id + `", "key": "k` + evil + `", "name": "k", "type": "call",
				"status": "failed", "attempt": 1, "created_at": "2026-12-07T10:00:00Z", "error": "` + evil + `",
				"attempts": [{"attempt": 1, "status": "failed", "started_at": "2026-12-07T10:00:00Z", "error": {"message": "` + evil + `"}}]}]}`))
		case "/v1/runs":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"type": "x", "title": "Bad ` + evil + `", "status": 400, "detail": "` + evil + `",
				"errors": [{"path": "query:` + evil + `", "message": "` + strings.Repeat("long ", 10000) + `"}]}`))
		case "/v1/workflows":
			_, _ = w.Write([]byte("not json at all"))
		case "/v1/schedules":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"items": "not a list"}`))
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>\x1b[2J" + strings.Repeat("gateway ", 1000) + "</html>"))
		}
	}))
	t.Cleanup(srv.Close)
	cs := &contractServer{t: t, url: srv.URL}

	harmless := func(t *testing.T, s string) {
		t.Helper()
		require.NotContains(t, s, "\x1b")
		require.NotContains(t, s, "\x07")
	}
	for _, args := range [][]string{
		{"runs", "show", id},
		{"runs", "steps", id, "--attempts"},
	} {
		code, out, errOut := cs.run(args...)
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut)
		harmless(t, out+errOut)
		require.Contains(t, out, "\uFFFD", "%v", args)
	}
	code, out, errOut := cs.run("runs", "list")
	require.Equal(t, ExitAPI, code)
	harmless(t, out+errOut)
	require.Contains(t, errOut, "durable: Bad ")

	code, _, errOut = cs.run("workflows", "list")
	require.Equal(t, ExitAPI, code)
	require.Contains(t, errOut, "the API's answer is not what its contract says")
	code, _, errOut = cs.run("schedules", "list")
	require.Equal(t, ExitAPI, code)
	require.Contains(t, errOut, "the API's answer is not what its contract says")
	code, _, errOut = cs.run("operations", "list")
	require.Equal(t, ExitAPI, code)
	harmless(t, errOut)
	require.Contains(t, errOut, "durable: the API answered 502 Bad Gateway: <html>")
	require.Less(t, len(errOut), 300)
}
