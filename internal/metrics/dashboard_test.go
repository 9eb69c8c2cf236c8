package metrics

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres/pgtest"
)

// The Grafana dashboard in deploy/grafana names only metrics that exist:
// every metric of every panel's query is one a process serves.
func TestDashboardNamesServedMetrics(t *testing.T) {
	m := New()
	m.WatchDatabase(context.Background(), pgtest.New(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Vectors show once they have a child.
	m.RunStarted("w")
	m.RunFinished("w", "succeeded")
	m.StepEnded("w", "s", "succeeded")
	m.AttemptTook("w", "s", 0)
	m.CallbackAnswered("succeeded")
	m.ScheduleFired("w")
	m.RequestServed("GET", "/x", 200, 0)
	families, err := m.reg.Gather()
	require.NoError(t, err)
	served := map[string]bool{}
	for _, f := range families {
		served[f.GetName()] = true
	}

	raw, err := os.ReadFile("../../deploy/grafana/durable.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	name := regexp.MustCompile(`\b(durable|pgxpool|go|process)_[a-z_]+`)
	queries := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			queries++
			for _, n := range name.FindAllString(target.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(n, suffix); ok && served[base] {
						n = base
					}
				}
				require.True(t, served[n], "panel %q queries %s, which no process serves", p.Title, n)
			}
		}
	}
	require.Greater(t, queries, 20)
}
