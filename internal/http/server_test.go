package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/api"
	durablehttp "github.com/durablehq/durable/internal/http"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/postgres/pgtest"
)

// testBundle is what a test of the HTTP API works with: a real server on
// loopback over a fresh database of its own.
type testBundle struct {
	db     *postgres.DB
	server *durablehttp.Server
	url    string
	spec   *openapi3.T
}

type setupOption func(*durablehttp.Config, *orchestrator.Limits)

func setup(t *testing.T, opts ...setupOption) *testBundle {
	t.Helper()
	return setupOver(t, pgtest.New(t), opts...)
}

// setupOver serves the API over db.
func setupOver(t *testing.T, db *postgres.DB, opts ...setupOption) *testBundle {
	t.Helper()
	ctx := context.Background()
	spec, err := api.Load(ctx)
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	limits := orchestrator.DefaultLimits()
	cfg := durablehttp.Config{Spec: spec, Logger: logger, Ready: db.Ping}
	for _, o := range opts {
		o(&cfg, &limits)
	}
	cfg.API = orchestrator.NewAPI(db, limits, logger)
	server := durablehttp.NewServer(cfg)
	ts := httptest.NewServer(validateResponses(t, spec, server))
	t.Cleanup(ts.Close)
	return &testBundle{db: db, server: server, url: ts.URL, spec: spec}
}

// validateResponses checks every answer of the server against the OpenAPI
// document, failing the test on any answer the document does not describe.
func validateResponses(t *testing.T, spec *openapi3.T, next http.Handler) http.Handler {
	// The document's servers name the default local address; test servers
	// listen elsewhere, and the API matches paths alone (its validator does
	// not check servers either).
	anyServer := *spec
	anyServer.Servers = nil
	router, err := gorillamux.NewRouter(&anyServer)
	require.NoError(t, err)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		res := rec.Result()
		resBody := rec.Body.Bytes()

		route, params, err := router.FindRoute(r)
		if err == nil {
			input := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{
					Request: r, PathParams: params, Route: route,
					Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
				},
				Status:  res.StatusCode,
				Header:  res.Header,
				Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			}
			input.SetBodyBytes(resBody)
			if verr := openapi3filter.ValidateResponse(r.Context(), input); verr != nil {
				t.Errorf("%s %s answered %d, which the OpenAPI document does not describe: %v\nbody: %s",
					r.Method, r.URL, res.StatusCode, verr, truncate(resBody))
			}
		} else if !refusesUndocumented(r, res) {
			t.Errorf("%s %s is not in the OpenAPI document (%v) but answered %d", r.Method, r.URL.Path, err, res.StatusCode)
		}
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(resBody)
	})
}

// refusesUndocumented reports whether res is an acceptable answer to a
// request the OpenAPI document has no operation for: a problem document
// saying there is no such endpoint (404), that the method is not allowed
// (405), or, under /v1, that a key is required first (401).
func refusesUndocumented(r *http.Request, res *http.Response) bool {
	if res.Header.Get("Content-Type") != "application/problem+json" {
		return false
	}
	switch res.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return true
	case http.StatusUnauthorized:
		return strings.HasPrefix(r.URL.Path, "/v1/")
	}
	return false
}

func truncate(b []byte) string {
	if len(b) > 500 {
		return string(b[:500]) + "…"
	}
	return string(b)
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", truncate(r.body))
}

// problem decodes a problem document and checks its status and media type.
func (r response) problem(t *testing.T, status int) problemDoc {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", truncate(r.body))
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	var p problemDoc
	r.decode(t, &p)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Type)
	require.NotEmpty(t, p.Title)
	return p
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"errors"`
}

// paths returns the paths of the problem's errors, sorted.
func (p problemDoc) paths() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Path)
	}
	sort.Strings(out)
	return out
}

// do sends a request with a raw body (JSON content type unless headers say
// otherwise; an empty header value removes the header) and reads the answer.
func (b *testBundle) do(t *testing.T, method, path string, body []byte, headers ...string) response {
	t.Helper()
	res, err := b.try(method, path, body, headers...)
	require.NoError(t, err)
	return res
}

// try is do for other goroutines than the test's: it returns the error
// instead of failing the test.
func (b *testBundle) try(method, path string, body []byte, headers ...string) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return b.send(req, headers...)
}

// send sends req with the given header pairs (an empty value removes the
// header) and reads the answer.
func (b *testBundle) send(req *http.Request, headers ...string) (response, error) {
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	resBody, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: resBody}, nil
}

// createWorkflow posts a definition and requires it to be accepted.
func (b *testBundle) createWorkflow(t *testing.T, def string) workflowVersion {
	t.Helper()
	res := b.do(t, http.MethodPost, "/v1/workflows", []byte(def))
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, res.status, "body: %s", truncate(res.body))
	var v workflowVersion
	res.decode(t, &v)
	return v
}

type workflowVersion struct {
	Name        string          `json:"name"`
	Version     int             `json:"version"`
	Definition  json.RawMessage `json:"definition"`
	ContentHash string          `json:"content_hash"`
}

// twoStepWorkflow is the definition of DESIGN.md's first session.
const twoStepWorkflow = `{
  "name": "greet",
  "steps": [
    {"name": "lookup", "type": "call", "url": "http://127.0.0.1:9000/lookup"},
    {"name": "send", "type": "call", "url": "http://127.0.0.1:9000/send",
     "input": {"email": "${ steps.lookup.output.email }"},
     "retry": {"max_attempts": 5}}
  ]}`

// TestRoutesMatchSpec holds the router and the OpenAPI document together:
// every route is documented and every documented operation is routed.
func TestRoutesMatchSpec(t *testing.T) {
	t.Parallel()
	b := setup(t)
	routes, err := b.server.Routes()
	require.NoError(t, err)
	routed := map[string]bool{}
	for _, r := range routes {
		routed[r] = true
	}
	documented := map[string]bool{}
	for path, item := range b.spec.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for r := range routed {
		require.True(t, documented[r], "route %s is not in api/openapi.yaml", r)
	}
	for d := range documented {
		require.True(t, routed[d], "api/openapi.yaml documents %s, which is not routed", d)
	}
}
