package httpstep_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/signing"
)

// loopback lets the tests call their httptest servers on 127.0.0.1.
var loopback = []string{"127.0.0.0/8"}

type testBundle struct {
	secret  string
	secrets *signing.Secrets
	client  *httpstep.Client
}

func setup(t testing.TB, cfg httpstep.Config) *testBundle {
	t.Helper()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	secrets, err := signing.ParseSecrets(secret)
	require.NoError(t, err)
	if cfg.Secrets == nil {
		cfg.Secrets = secrets
	}
	client, err := httpstep.New(cfg)
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return &testBundle{secret: secret, secrets: secrets, client: client}
}

// seen is what a test server received.
type seen struct {
	mu     sync.Mutex
	n      int
	header http.Header
	body   []byte
	method string
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// server starts a server on 127.0.0.1 that records what it receives and
// answers with h.
func server(t testing.TB, h http.HandlerFunc) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.n++
		s.header, s.body, s.method = r.Header.Clone(), body, r.Method
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func request(url string) httpstep.Request {
	return httpstep.Request{URL: url, Body: []byte(`{"step":"charge"}`), WebhookID: "msg_2b7Yq", Timeout: 5 * time.Second}
}

func errorOf(t *testing.T, r httpstep.Result) map[string]any {
	t.Helper()
	require.NotNil(t, r.Error, "no error in %+v", r)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Error, &m))
	return m
}

func TestClassification(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})

	big := strings.Repeat("x", 5000)
	cases := []struct {
		name    string
		status  int
		body    string
		want    httpstep.Outcome
		message string // part of the error's message, for failures
	}{
		{"200 object", 200, `{"output": {"id": 7}}`, httpstep.Succeeded, ""},
		{"201 object", 201, `{}`, httpstep.Succeeded, ""},
		{"204 empty", 204, ``, httpstep.Succeeded, ""},
		{"200 empty", 200, ``, httpstep.Succeeded, ""},
		{"200 white space", 200, " \n", httpstep.Succeeded, ""},
		{"200 text", 200, `ok`, httpstep.Permanent, "the step answered 200 with a body that is not a JSON object"},
		{"200 array", 200, `[1]`, httpstep.Permanent, "not a JSON object"},
		{"200 null", 200, `null`, httpstep.Permanent, "not a JSON object"},
		{"200 bad JSON", 200, `{"output": `, httpstep.Permanent, "not a JSON object"},
		{"200 context not object", 200, `{"context": [1]}`, httpstep.Permanent, `"context" that is not a JSON object`},
		{"200 logs not array", 200, `{"logs": {"level": "info"}}`, httpstep.Permanent, `"logs" that are not a JSON array`},
		{"202", 202, `whatever, even not JSON`, httpstep.Accepted, ""},
		{"202 empty", 202, ``, httpstep.Accepted, ""},
		{"400", 400, `bad`, httpstep.Permanent, "the step answered 400 Bad Request"},
		{"401", 401, ``, httpstep.Permanent, "401 Unauthorized"},
		{"404", 404, `nope`, httpstep.Permanent, "404 Not Found"},
		{"409", 409, `{}`, httpstep.Permanent, "409 Conflict"},
		{"422", 422, big, httpstep.Permanent, "422 Unprocessable Entity"},
		{"408", 408, ``, httpstep.Retryable, "408 Request Timeout"},
		{"429", 429, ``, httpstep.Retryable, "429 Too Many Requests"},
		{"500", 500, `boom`, httpstep.Retryable, "500 Internal Server Error"},
		{"502", 502, ``, httpstep.Retryable, "502 Bad Gateway"},
		{"503", 503, ``, httpstep.Retryable, "503 Service Unavailable"},
		{"504", 504, ``, httpstep.Retryable, "504 Gateway Timeout"},
		{"599", 599, ``, httpstep.Retryable, "the step answered 599"},
		{"300", 300, ``, httpstep.Permanent, "redirects are not followed"},
		{"304", 304, ``, httpstep.Permanent, "redirects are not followed"},
		{"500 retry false", 500, `{"error": {"code": "card_declined"}, "retry": false}`, httpstep.Permanent, "asked not to be retried"},
		{"503 retry false alone", 503, `{"retry": false}`, httpstep.Permanent, "asked not to be retried"},
		{"400 retry true", 400, `{"error": {"code": "not_yet"}, "retry": true}`, httpstep.Retryable, "asked to be retried"},
		{"409 retry true", 409, `{"retry": true}`, httpstep.Retryable, "409 Conflict"},
		{"200 retry false ignored", 200, `{"output": 1, "retry": false}`, httpstep.Succeeded, ""},
		{"500 retry not a bool", 500, `{"retry": "no"}`, httpstep.Retryable, "500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, answer(c.status, c.body))
			r := b.client.Invoke(t.Context(), request(srv.URL))
			require.Equal(t, c.want, r.Outcome, "%s", r.Error)
			require.Equal(t, c.status, r.HTTPStatus)
			require.Positive(t, r.Duration)
			if c.want == httpstep.Succeeded || c.want == httpstep.Accepted {
				require.Nil(t, r.Error)
				return
			}
			e := errorOf(t, r)
			require.Contains(t, e["message"], c.message)
			require.EqualValues(t, c.status, e["status"])
		})
	}
}

func TestSucceededEnvelope(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	srv, _ := server(t, answer(200, `{"output": {"email": "a@b.c"}, "context": {"total": 12},
		"logs": [{"level": "info", "message": "charged"}], "extra": true}`))
	r := b.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Succeeded, r.Outcome)
	require.Equal(t, 200, r.HTTPStatus)
	require.JSONEq(t, `{"email": "a@b.c"}`, string(r.Output))
	require.JSONEq(t, `{"total": 12}`, string(r.Context))
	require.JSONEq(t, `[{"level": "info", "message": "charged"}]`, string(r.Logs))
	require.Nil(t, r.Error)

	// Members are optional; an explicit null output is kept, null context
	// and logs mean none.
	srv2, _ := server(t, answer(200, `{"output": null, "context": null, "logs": null}`))
	r = b.client.Invoke(t.Context(), request(srv2.URL))
	require.Equal(t, httpstep.Succeeded, r.Outcome)
	require.Equal(t, "null", string(r.Output))
	require.Nil(t, r.Context)
	require.Nil(t, r.Logs)

	srv3, _ := server(t, answer(200, `{"context": {"a": 1}}`))
	r = b.client.Invoke(t.Context(), request(srv3.URL))
	require.Equal(t, httpstep.Succeeded, r.Outcome)
	require.Nil(t, r.Output)
	require.JSONEq(t, `{"a": 1}`, string(r.Context))

	srv4, _ := server(t, answer(204, ``))
	r = b.client.Invoke(t.Context(), request(srv4.URL))
	require.Equal(t, httpstep.Succeeded, r.Outcome)
	require.Nil(t, r.Output)
}

func TestFailureEnvelope(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})

	srv, _ := server(t, answer(503, "upstream is down"))
	r := b.client.Invoke(t.Context(), request(srv.URL))
	require.JSONEq(t, `{"message": "the step answered 503 Service Unavailable: upstream is down", "status": 503, "body": "upstream is down"}`, string(r.Error))

	srv, _ = server(t, answer(422, `{"error": {"code": "invalid_card", "detail": "expired"}}`, "Content-Type", "application/json"))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.JSONEq(t, `{"message": "the step answered 422 Unprocessable Entity: expired", "status": 422,
		"error": {"code": "invalid_card", "detail": "expired"}}`, string(r.Error))

	// A JSON body without "error" is kept as text.
	srv, _ = server(t, answer(404, `{"detail": "no such order"}`))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	require.JSONEq(t, `{"message": "the step answered 404 Not Found: no such order", "status": 404, "body": "{\"detail\": \"no such order\"}"}`, string(r.Error))

	// Only the first 4 KiB of a long body is kept, without cutting a character.
	long := strings.Repeat("é", 3000) // 6000 bytes
	srv, _ = server(t, answer(500, long))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	e := errorOf(t, r)
	require.Len(t, e["body"], 4096)
	require.Equal(t, strings.Repeat("é", 2048), e["body"])

	// An empty body leaves "body" out.
	srv, _ = server(t, answer(500, ""))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	require.JSONEq(t, `{"message": "the step answered 500 Internal Server Error", "status": 500}`, string(r.Error))
}

// TestFailureMessageQuotesTheEndpoint checks that a failure's message
// carries the endpoint's own words, bounded to one line, while "error" or
// "body" keeps the answer.
func TestFailureMessageQuotesTheEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback, MaxResponseBytes: 8 << 10})
	json := []string{"Content-Type", "application/json"}
	for _, c := range []struct {
		name    string
		status  int
		body    string
		headers []string
		message string
	}{
		{"error string", 500, `{"error": "upstream down"}`, json, "the step answered 500 Internal Server Error: upstream down"},
		{"error message", 422, `{"error": {"message": "card declined", "code": 7}}`, json, "the step answered 422 Unprocessable Entity: card declined"},
		{"error title", 409, `{"error": {"title": "Conflict", "detail": " "}}`, json, "the step answered 409 Conflict: Conflict"},
		{"error without words", 400, `{"error": {"code": "bad_sku", "sku": 3}}`, json, `the step answered 400 Bad Request: {"code":"bad_sku","sku":3}`},
		{"error and retry", 500, `{"error": "card declined", "retry": false}`, json, "the step answered 500 Internal Server Error (the step asked not to be retried): card declined"},
		{"problem document", 404, `{"type": "about:blank", "title": "Not Found", "detail": "no order 42"}`, []string{"Content-Type", "application/problem+json"}, "the step answered 404 Not Found: no order 42"},
		{"message member", 503, `{"message": "maintenance until 10:00"}`, json, "the step answered 503 Service Unavailable: maintenance until 10:00"},
		{"object without words", 500, `{"ok": false}`, json, `the step answered 500 Internal Server Error: {"ok":false}`},
		{"text", 502, "bad gateway\r\n\tupstream: payments\n", nil, "the step answered 502 Bad Gateway: bad gateway upstream: payments"},
		{"control characters", 500, "a\x00b\x1bc", nil, "the step answered 500 Internal Server Error: a b c"},
		{"invalid UTF-8", 500, "caf\xe9 ferm\xc3\xa9", nil, "the step answered 500 Internal Server Error: caf\uFFFD fermé"},
		{"broken JSON", 500, `{"error": "upstream`, json, `the step answered 500 Internal Server Error: {"error": "upstream`},
		{"HTML", 502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", nil, "the step answered 502 Bad Gateway"},
		{"white space only", 500, " \n\t ", nil, "the step answered 500 Internal Server Error"},
		{"empty error", 500, `{"error": ""}`, json, "the step answered 500 Internal Server Error"},
		{"redirect", 302, "see elsewhere", []string{"Location", "http://127.0.0.1:1/"}, "the step answered 302 Found: redirects are not followed: see elsewhere"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, answer(c.status, c.body, c.headers...))
			r := b.client.Invoke(t.Context(), request(srv.URL))
			require.Equal(t, c.message, errorOf(t, r)["message"])
		})
	}

	// At most 200 characters of one line, the details keeping the rest.
	long := strings.Repeat("é ", 150) + "\n" + strings.Repeat("x", 9000)
	srv, _ := server(t, answer(500, long))
	r := b.client.Invoke(t.Context(), request(srv.URL))
	e := errorOf(t, r)
	msg := e["message"].(string)
	said, ok := strings.CutPrefix(msg, "the step answered 500 Internal Server Error: ")
	require.True(t, ok, msg)
	require.Equal(t, strings.TrimSpace(strings.Repeat("é ", 100))+"…", said)
	require.NotContains(t, msg, "\n")
	require.Len(t, e["body"], 4096)

	srv, _ = server(t, answer(500, `{"error": "`+strings.Repeat("y", 300)+`"}`, json...))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	e = errorOf(t, r)
	require.Equal(t, "the step answered 500 Internal Server Error: "+strings.Repeat("y", 200)+"…", e["message"])
	require.Equal(t, strings.Repeat("y", 300), e["error"])
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback, UserAgent: "Durable/1.2.3"})
	srv, got := server(t, answer(200, `{}`))

	req := request(srv.URL + "/charge?tenant=acme")
	req.Headers = map[string]string{
		"X-Tenant":          "acme",
		"Authorization":     "Bearer user-token",
		"webhook-signature": "v1,forged",
		"Idempotency-Key":   "mine",
		"Content-Type":      "text/plain",
	}
	req.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req.Tracestate = "vendor=x,other=y"
	before := time.Now().Unix()
	r := b.client.Invoke(t.Context(), req)
	require.Equal(t, httpstep.Succeeded, r.Outcome, "%s", r.Error)

	h := got.header
	require.Equal(t, http.MethodPost, got.method)
	require.Equal(t, req.Body, got.body)
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.Equal(t, "Durable/1.2.3", h.Get("User-Agent"))
	require.Equal(t, "msg_2b7Yq", h.Get("webhook-id"))
	require.Equal(t, h.Get("webhook-id"), h.Get("Idempotency-Key"))
	require.Equal(t, req.Traceparent, h.Get("traceparent"))
	require.Equal(t, req.Tracestate, h.Get("tracestate"))
	require.Equal(t, "acme", h.Get("X-Tenant"))
	require.Equal(t, "Bearer user-token", h.Get("Authorization"))
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, ts, before)
	require.LessOrEqual(t, ts, time.Now().Unix())

	// The reference implementation verifies the request as it arrived.
	wh, err := standardwebhooks.NewWebhook(b.secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(got.body, h))
	require.NoError(t, b.secrets.Verify(h.Get("webhook-id"), h.Get("webhook-timestamp"), got.body, h.Get("webhook-signature")))
	require.Len(t, h.Values("webhook-signature"), 1)

	// No traceparent when none is given; another method when asked.
	req = request(srv.URL)
	req.Method = http.MethodPut
	r = b.client.Invoke(t.Context(), req)
	require.Equal(t, httpstep.Succeeded, r.Outcome)
	require.Empty(t, got.header.Get("traceparent"))
	require.Empty(t, got.header.Get("tracestate"))
	require.Equal(t, http.MethodPut, got.method)
	require.NoError(t, wh.Verify(got.body, got.header))
}

func TestWebhookIDStableAcrossAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	var ids []string
	var mu sync.Mutex
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"), r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(503)
	})
	for range 3 {
		require.Equal(t, httpstep.Retryable, b.client.Invoke(t.Context(), request(srv.URL)).Outcome)
	}
	require.Equal(t, []string{"msg_2b7Yq", "msg_2b7Yq", "msg_2b7Yq", "msg_2b7Yq", "msg_2b7Yq", "msg_2b7Yq"}, ids)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	b := setup(t, httpstep.Config{AllowHosts: loopback, Now: func() time.Time { return now }})
	for _, c := range []struct {
		value string
		want  time.Duration
	}{
		{"120", 2 * time.Minute},
		{"0", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999", 24 * time.Hour},
		{"18446744073709551616", 24 * time.Hour},
		{now.Add(30 * 24 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
		{"-5", 0},
		{"soon", 0},
		{"", 0},
	} {
		srv, _ := server(t, answer(429, "", "Retry-After", c.value))
		r := b.client.Invoke(t.Context(), request(srv.URL))
		require.Equal(t, httpstep.Retryable, r.Outcome)
		require.Equal(t, c.want, r.RetryAfter, "Retry-After: %q", c.value)
	}
	srv, _ := server(t, answer(503, "", "Retry-After", "7"))
	require.Equal(t, 7*time.Second, b.client.Invoke(t.Context(), request(srv.URL)).RetryAfter)
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	target, targetSeen := server(t, answer(200, `{"output": "pwned"}`))
	for _, status := range []int{301, 302, 303, 307, 308} {
		srv, _ := server(t, answer(status, "", "Location", target.URL+"/latest/meta-data"))
		r := b.client.Invoke(t.Context(), request(srv.URL))
		require.Equal(t, httpstep.Permanent, r.Outcome)
		require.Equal(t, status, r.HTTPStatus)
		require.Contains(t, errorOf(t, r)["message"], "redirects are not followed")
	}
	require.Zero(t, targetSeen.count(), "the redirect target saw a request")
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	req := request(srv.URL)
	req.Timeout = 100 * time.Millisecond
	start := time.Now()
	r := b.client.Invoke(t.Context(), req)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, httpstep.Retryable, r.Outcome)
	require.Zero(t, r.HTTPStatus)
	require.Equal(t, map[string]any{"message": "the step did not answer within 100ms"}, errorOf(t, r))
	require.GreaterOrEqual(t, r.Duration, 100*time.Millisecond)

	// A body that stalls after the headers times out as well.
	srv2, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"output": `)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	req = request(srv2.URL)
	req.Timeout = 100 * time.Millisecond
	r = b.client.Invoke(t.Context(), req)
	require.Equal(t, httpstep.Retryable, r.Outcome)
	require.Contains(t, errorOf(t, r)["message"], "the step did not answer within 100ms")
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	r := b.client.Invoke(ctx, request(srv.URL))
	require.Equal(t, httpstep.Retryable, r.Outcome)
	require.Contains(t, errorOf(t, r)["message"], "cancelled")
}

// closedPort returns the address of a port on 127.0.0.1 that nothing
// listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})

	addr := closedPort(t)
	r := b.client.Invoke(t.Context(), request("http://"+addr+"/step?token=s3cr3t"))
	require.Equal(t, httpstep.Retryable, r.Outcome)
	require.Zero(t, r.HTTPStatus)
	require.Equal(t, map[string]any{"message": "connection refused by " + addr}, errorOf(t, r))

	// A server that hangs up without answering.
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	r = b.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Retryable, r.Outcome)
	require.Contains(t, errorOf(t, r)["message"], "closed the connection")
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	srv, got := server(t, answer(200, `{}`))
	for name, c := range map[string]struct {
		mutate  func(*httpstep.Request)
		message string
	}{
		"ftp URL":         {func(r *httpstep.Request) { r.URL = "ftp://127.0.0.1/x?token=s3cr3t" }, "not an absolute http or https URL"},
		"relative URL":    {func(r *httpstep.Request) { r.URL = "/step?token=s3cr3t" }, "not an absolute http or https URL"},
		"bad URL":         {func(r *httpstep.Request) { r.URL = "http://[::1/x?token=s3cr3t" }, "not an absolute http or https URL"},
		"bad method":      {func(r *httpstep.Request) { r.Method = "PO ST" }, "not a valid HTTP method"},
		"bad header name": {func(r *httpstep.Request) { r.Headers = map[string]string{"X Bad": "1"} }, "header name"},
		"header CRLF":     {func(r *httpstep.Request) { r.Headers = map[string]string{"X-A": "1\r\nX-B: 2"} }, "value of header X-A"},
		"no webhook id":   {func(r *httpstep.Request) { r.WebhookID = "" }, "no webhook id"},
	} {
		req := request(srv.URL)
		c.mutate(&req)
		r := b.client.Invoke(t.Context(), req)
		require.Equal(t, httpstep.Permanent, r.Outcome, name)
		require.Contains(t, errorOf(t, r)["message"], c.message, name)
		require.NotContains(t, string(r.Error), "s3cr3t", name)
	}
	require.Zero(t, got.count())
}

func TestNoSecretsInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	strict := setup(t, httpstep.Config{})
	srv, _ := server(t, answer(500, "boom"))
	hung, _ := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	const query = "/v1/callbacks/cb-s3cr3t?token=s3cr3t&user=u:p"

	results := []httpstep.Result{
		b.client.Invoke(t.Context(), request(srv.URL+query)),
		b.client.Invoke(t.Context(), request("http://"+closedPort(t)+query)),
		strict.client.Invoke(t.Context(), request(srv.URL+query)),
		b.client.Invoke(t.Context(), request("http://user:s3cr3t@"+closedPort(t)+query)),
	}
	req := request(hung.URL + query)
	req.Timeout = 50 * time.Millisecond
	results = append(results, b.client.Invoke(t.Context(), req))
	for i, r := range results {
		require.NotEqual(t, httpstep.Succeeded, r.Outcome, i)
		require.NotContains(t, string(r.Error), "s3cr3t", i)
		require.NotContains(t, string(r.Error), "callbacks", i)
	}
}

func TestOversizedBody(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback, MaxResponseBytes: 1024})

	exact := `{"output": "` + strings.Repeat("a", 1024-14) + `"}`
	require.Len(t, exact, 1024)
	srv, _ := server(t, answer(200, exact))
	r := b.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Succeeded, r.Outcome, "%s", r.Error)

	srv, _ = server(t, answer(200, exact+" "))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.Equal(t, "the step answered 200 with a response body that exceeds 1024 bytes", errorOf(t, r)["message"])

	// A huge failure body keeps its first 4 KiB... of what the cap let in.
	srv, _ = server(t, answer(500, strings.Repeat("z", 1<<20)))
	r = b.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Retryable, r.Outcome)
	require.Len(t, errorOf(t, r)["body"], 1025)

	// The default cap is 1 MiB.
	d := setup(t, httpstep.Config{AllowHosts: loopback})
	srv, _ = server(t, answer(200, `{"output": "`+strings.Repeat("a", 1<<20)+`"}`))
	r = d.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.Contains(t, errorOf(t, r)["message"], "exceeds 1048576 bytes")
}

func TestSSRFGuard(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, answer(200, `{"output": 1}`))
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	// No allow-list: loopback is refused, before anything is sent.
	strict := setup(t, httpstep.Config{})
	r := strict.client.Invoke(t.Context(), request(srv.URL+"/step?token=s3cr3t"))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.Zero(t, r.HTTPStatus)
	require.Equal(t, map[string]any{"message": "the step's address 127.0.0.1 is a loopback address, which steps may not call; allow it with DURABLE_ALLOW_HOSTS"}, errorOf(t, r))

	r = strict.client.Invoke(t.Context(), request("http://localhost:"+port+"/"))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	msg := errorOf(t, r)["message"].(string)
	require.Contains(t, msg, "localhost resolves to ")
	require.Contains(t, msg, "a loopback address, which steps may not call; allow it with DURABLE_ALLOW_HOSTS")

	r = strict.client.Invoke(t.Context(), request("http://[::1]:"+port+"/"))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.Contains(t, errorOf(t, r)["message"], "::1 is a loopback address")
	r = strict.client.Invoke(t.Context(), request("http://0.0.0.0:"+port+"/"))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.Contains(t, errorOf(t, r)["message"], "0.0.0.0 is an unspecified address")
	require.Zero(t, seen.count(), "a refused step saw a request")

	// A host name in the allow-list is let through, whatever it resolves
	// to; an IP literal of the same address is not.
	named := setup(t, httpstep.Config{AllowHosts: []string{"LocalHost"}})
	for _, host := range []string{"localhost", "LOCALHOST"} {
		r = named.client.Invoke(t.Context(), request("http://"+host+":"+port+"/"))
		require.Equal(t, httpstep.Succeeded, r.Outcome, "%s: %s", host, r.Error)
	}
	require.Equal(t, 2, seen.count())
	r = named.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Permanent, r.Outcome)

	// A bare IP or a CIDR lets that address through.
	for _, allow := range []string{"127.0.0.1", "127.0.0.0/8", "127.0.0.1/32"} {
		c := setup(t, httpstep.Config{AllowHosts: []string{allow}})
		r = c.client.Invoke(t.Context(), request(srv.URL))
		require.Equal(t, httpstep.Succeeded, r.Outcome, allow)
	}
	c := setup(t, httpstep.Config{AllowHosts: []string{"127.0.0.2/32", "::1"}})
	r = c.client.Invoke(t.Context(), request(srv.URL))
	require.Equal(t, httpstep.Permanent, r.Outcome)
	require.Equal(t, 5, seen.count())
}

func TestErrorsDoNotDropPooledConnections(t *testing.T) {
	t.Parallel()
	b := setup(t, httpstep.Config{AllowHosts: loopback})
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(answer(200, `{}`))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	closed := "http://" + closedPort(t)

	for range 3 {
		require.Equal(t, httpstep.Succeeded, b.client.Invoke(t.Context(), request(srv.URL)).Outcome)
		require.Equal(t, httpstep.Retryable, b.client.Invoke(t.Context(), request(closed)).Outcome)
	}
	require.EqualValues(t, 1, conns.Load(), "the connection was not reused")
}

func TestNew(t *testing.T) {
	t.Parallel()
	secrets, err := signing.ParseSecrets("whsec_" + strings.Repeat("A", 32))
	require.NoError(t, err)
	_, err = httpstep.New(httpstep.Config{})
	require.ErrorContains(t, err, "no signing secrets")
	_, err = httpstep.New(httpstep.Config{Secrets: secrets, MaxResponseBytes: -1})
	require.Error(t, err)
	_, err = httpstep.New(httpstep.Config{Secrets: secrets, AllowHosts: []string{"10.0.0.0/33", "localhost:8080", "ok.example", "bad host", "300.1.1.1"}})
	require.ErrorContains(t, err, `"10.0.0.0/33" is not a valid CIDR`)
	require.ErrorContains(t, err, `"localhost:8080" is not a valid`)
	require.ErrorContains(t, err, `"bad host" is not a valid`)
	require.ErrorContains(t, err, `"300.1.1.1" is not a valid`)
	require.NotContains(t, err.Error(), "ok.example")
	_, err = httpstep.New(httpstep.Config{Secrets: secrets, AllowHosts: []string{"10.0.0.0/8", "::1/128", "::1", "[::1]", "fd00::/8", "127.0.0.1", "steps.internal", " ", ""}})
	require.NoError(t, err)
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "succeeded", httpstep.Succeeded.String())
	require.Equal(t, "accepted", httpstep.Accepted.String())
	require.Equal(t, "retryable", httpstep.Retryable.String())
	require.Equal(t, "permanent", httpstep.Permanent.String())
	require.Equal(t, "Outcome(0)", httpstep.Outcome(0).String())
}

func BenchmarkInvoke(b *testing.B) {
	bundle := setup(b, httpstep.Config{AllowHosts: loopback})
	srv, _ := server(b, answer(200, `{"output": {"id": 7}, "context": {"n": 1}}`))
	req := request(srv.URL)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := bundle.client.Invoke(context.Background(), req); r.Outcome != httpstep.Succeeded {
				b.Fatalf("%v: %s", r.Outcome, r.Error)
			}
		}
	})
}
