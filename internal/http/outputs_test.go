package http_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNullOutputs runs a workflow whose steps answer without an output, so
// that the run's and the steps' outputs are JSON null, and a foreach with a
// null result and lanes: the run, its steps and its history answer as the
// spec says (every response of these tests is validated against it).
func TestNullOutputs(t *testing.T) {
	t.Parallel()
	steps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(steps.Close)
	b := setup(t)
	startStepWorker(t, b)
	b.createWorkflow(t, `{"name": "quiet", "steps": [
	  {"name": "each", "type": "foreach", "items": "${ [1, 2] }", "steps": [
	    {"name": "one", "type": "call", "url": "`+steps.URL+`/one"}]},
	  {"name": "last", "type": "call", "url": "`+steps.URL+`/last"}]}`)
	r := b.startRun(t, `{"workflow": "quiet"}`)
	require.Eventually(t, func() bool { return b.getRun(t, r.ID).Status == "succeeded" }, 20*time.Second, 20*time.Millisecond)
	res := b.do(t, http.MethodGet, "/v1/runs/"+r.ID, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, string(res.body), `"output":null`)
	res = b.do(t, http.MethodGet, "/v1/runs/"+r.ID+"/steps", nil)
	require.Equal(t, http.StatusOK, res.status, truncate(res.body))
	require.Contains(t, string(res.body), `"results":[null,null]`)
	res = b.do(t, http.MethodGet, "/v1/runs/"+r.ID+"/history", nil)
	require.Equal(t, http.StatusOK, res.status, truncate(res.body))
}
