package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// Workflow and step names are the user's: past the bounds, new names are
// counted under "_other", so that no number of workflows or steps makes
// the metrics grow without end.
func TestLabelsAreBounded(t *testing.T) {
	m := New()
	for i := range maxWorkflows + 10 {
		m.RunStarted(fmt.Sprintf("wf-%d", i))
	}
	require.Equal(t, maxWorkflows+1, testutil.CollectAndCount(m.runsStarted))
	require.Equal(t, 10.0, testutil.ToFloat64(m.runsStarted.WithLabelValues(other)))
	require.Equal(t, 1.0, testutil.ToFloat64(m.runsStarted.WithLabelValues("wf-0")))

	for i := range maxStepsPerWorkflow + 5 {
		m.StepEnded("wf-0", fmt.Sprintf("step-%d", i), "succeeded")
	}
	m.StepEnded("wf-0", "step-0", "succeeded")
	require.Equal(t, maxStepsPerWorkflow+1, testutil.CollectAndCount(m.steps))
	require.Equal(t, 5.0, testutil.ToFloat64(m.steps.WithLabelValues("wf-0", other, "succeeded")))
	require.Equal(t, 2.0, testutil.ToFloat64(m.steps.WithLabelValues("wf-0", "step-0", "succeeded")))

	// A workflow beyond the bound has its steps counted as "_other" too.
	m.StepEnded("wf-new", "x", "failed")
	require.Equal(t, 1.0, testutil.ToFloat64(m.steps.WithLabelValues(other, other, "failed")))
}

func TestRequestLabelsAreBounded(t *testing.T) {
	m := New()
	m.RequestServed("BREW", "", 404, 0)
	m.RequestServed("GET", "/v1/runs/{id}", 200, 0)
	require.Equal(t, 1.0, testutil.ToFloat64(m.httpRequests.WithLabelValues("OTHER", "unmatched", "404")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.httpRequests.WithLabelValues("GET", "/v1/runs/{id}", "200")))
}
