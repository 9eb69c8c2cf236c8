package http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/api"
)

// TestRequestProblems checks the paths of the problems made from the
// validator's errors, for bodies checked by either of kin-openapi's
// validators: CancelRunRequest goes to the JSON Schema 2020-12 one, whose
// report carries pointers from the body's root, and StartRunRequest (which
// has a $ref) to the built-in one.
func TestRequestProblems(t *testing.T) {
	t.Parallel()
	spec, err := api.Load(context.Background())
	require.NoError(t, err)
	// Paths alone, as the API's validator matches them: the document's
	// servers name an address the test's requests are not made to.
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	require.NoError(t, err)
	const cancel = "/v1/runs/0190a4c2-7d3e-7000-8000-000000000000/cancel"

	for _, tt := range []struct {
		path, body string
		status     int
		want       []string
	}{
		{cancel, `{"reason": 5}`, 422, []string{"/reason"}},
		{cancel, `{"reason": "` + strings.Repeat("a", 1025) + `"}`, 422, []string{"/reason"}},
		{cancel, `{"bogus": 1}`, 422, []string{"/bogus"}},
		{cancel, `{"bogus": 1, "b'o/g~": 2, "a,b": 3}`, 422, []string{"/a,b", "/b'o~1g~0", "/bogus"}},
		{cancel, `{"reason": 5, "x": 1}`, 422, []string{"/reason", "/x"}},
		{cancel, `null`, 422, []string{""}},
		{"/v1/runs", `{"workflow": 5, "bogus": 1}`, 422, []string{"/bogus", "/workflow"}},
		{"/v1/runs", `{"workflow": "greet", "version": "1"}`, 422, []string{"/version"}},
		{"/v1/runs?x=1", `{}`, 422, []string{"/workflow"}},
		{"/v1/runs?limit=0", ``, 400, []string{"query:limit"}},
		{"/v1/runs?status=pending,bogus", ``, 400, []string{"query:status/1"}},
	} {
		t.Run(tt.path+" "+tt.body, func(t *testing.T) {
			method := http.MethodPost
			if tt.body == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			route, params, err := router.FindRoute(r)
			require.NoError(t, err)
			err = openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
				Request: r, PathParams: params, Route: route, QueryParams: r.URL.Query(),
				Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			})
			require.Error(t, err)
			status, problems := requestProblems(err)
			require.Equal(t, tt.status, status, "%v", problems)
			var paths []string
			for _, p := range problems {
				require.NotEmpty(t, p.Message)
				paths = append(paths, p.Path)
			}
			slices.Sort(paths)
			require.Equal(t, tt.want, slices.Compact(paths), "%v", problems)
		})
	}
}
