package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/workflow"
)

func TestPlanRetry(t *testing.T) {
	def := parse(t, shapes)
	ok := Execution{Status: "succeeded"}
	failed := Execution{Status: "failed"}
	cancelled := Execution{Status: "cancelled"}
	tests := []struct {
		name  string
		execs map[string]Execution
		from  string
		want  RetryPlan
		err   string
	}{{
		name:  "the first step failed: the run starts again",
		execs: map[string]Execution{"a": failed},
		want:  RetryPlan{Delete: []string{"a"}, Advance: []string{""}},
	}, {
		name:  "a later call failed: the run goes on after the last success",
		execs: map[string]Execution{"a": ok, "b": ok, "p": ok, "f": ok, "l": ok, "z": failed},
		want:  RetryPlan{Delete: []string{"z"}, Advance: []string{"l"}},
	}, {
		name:  "cancelled between steps: the next one starts",
		execs: map[string]Execution{"a": ok},
		want:  RetryPlan{Advance: []string{"a"}},
	}, {
		name: "a branch of a parallel failed: only its lane runs again, from its failed step",
		execs: map[string]Execution{"a": ok, "b": ok, "p": failed,
			"p[x]": ok, "x1": ok, "p[y]": failed, "y1": ok, "y2": failed},
		want: RetryPlan{Delete: []string{"y2"}, Lanes: []string{"p[y]"}, Blocks: []BlockRetry{{Key: "p"}}, Advance: []string{"y1"}},
	}, {
		name: "a foreach item failed fast: it and its cancelled sibling run again, the unopened item waits its turn (one at a time)",
		execs: map[string]Execution{"a": ok, "b": ok, "p": ok, "f": {Status: "failed", Started: 2, Total: 3},
			"f[0]": failed, "f[0].f1": failed, "f[1]": cancelled, "f[1].f1": ok, "f[1].m": cancelled},
		want: RetryPlan{
			Delete: []string{"f[0].f1", "f[1].m"}, Lanes: []string{"f[0]", "f[1]"},
			Blocks: []BlockRetry{{Key: "f"}}, Advance: []string{"f[0]", "f[1].f1"},
		},
	}, {
		name:  "a block whose lanes all succeeded runs again whole",
		execs: map[string]Execution{"a": ok, "b": ok, "p": failed, "p[x]": ok, "p[y]": ok},
		want:  RetryPlan{Delete: []string{"p"}, Advance: []string{"b"}},
	}, {
		name:  "a loop runs again whole",
		execs: map[string]Execution{"a": ok, "b": ok, "p": ok, "f": ok, "l": failed, "l[0].l1": failed},
		want:  RetryPlan{Delete: []string{"l"}, Advance: []string{"f"}},
	}, {
		name:  "from_step reruns that step and those after it",
		execs: map[string]Execution{"a": ok, "b": ok, "p": ok, "f": failed},
		from:  "b",
		want:  RetryPlan{Delete: []string{"b", "p", "f"}, Advance: []string{"a"}},
	}, {
		name:  "from_step at the first step",
		execs: map[string]Execution{"a": ok, "b": failed},
		from:  "a",
		want:  RetryPlan{Delete: []string{"a", "b"}, Advance: []string{""}},
	}, {
		name:  "from_step unknown",
		execs: map[string]Execution{"a": failed},
		from:  "nope",
		err:   `the workflow has no top-level step "nope"`,
	}, {
		name:  "from_step nested is not a top-level step",
		execs: map[string]Execution{"a": failed},
		from:  "x1",
		err:   `the workflow has no top-level step "x1"`,
	}, {
		name:  "from_step after the failed step",
		execs: map[string]Execution{"a": ok, "b": failed},
		from:  "p",
		err:   `step "p" comes after step "b", which did not succeed`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanRetry(def, tt.execs, tt.from)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRunRetryable(t *testing.T) {
	for _, s := range workflow.RunStatuses {
		want := s == workflow.RunFailed || s == workflow.RunTimedOut || s == workflow.RunCancelled || s == workflow.RunCompensationFailed
		require.Equal(t, want, RunRetryable(s), s)
	}
}
