package workflow

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const flowCall = `{"name": "c", "type": "call", "url": "https://example.com/c"`

// flowDoc is a definition with top-level fields extra and one call step
// with fields step.
func flowDoc(extra, step string) string {
	d := `{"name": "f", "steps": [` + flowCall
	if step != "" {
		d += ", " + step
	}
	d += `}]`
	if extra != "" {
		d += ", " + extra
	}
	return d + `}`
}

func TestParseFlowControl(t *testing.T) {
	t.Parallel()
	d := mustParse(t, flowDoc(
		`"concurrency": [{"key": "${ input.customer_id }", "limit": 1}, {"key": "${ input.region }", "limit": 5}],
		 "debounce": {"key": "${ input.user }", "period": "10s", "max_wait": "1m"}`,
		`"concurrency": [{"key": "${ input.customer_id }", "limit": 2}],
		 "rate_limit": {"name": "partner-api", "key": "${ input.customer_id }", "limit": 100, "period": "1m"}`))
	require.Len(t, d.Concurrency, 2)
	require.Equal(t, 1, d.Concurrency[0].Limit)
	require.Equal(t, 5, d.Concurrency[1].Limit)
	key, err := FlowKey(context.Background(), d.Concurrency[0].Key, Activation{Input: map[string]any{"customer_id": "acme"}})
	require.NoError(t, err)
	require.Equal(t, "acme", key)
	require.Equal(t, Debounce{Key: d.Debounce.Key, Period: Duration(10 * time.Second), MaxWait: Duration(time.Minute)}, *d.Debounce)

	c := d.Steps[0].Call
	require.True(t, c.HasFlowLimits())
	require.Equal(t, 2, c.Concurrency[0].Limit)
	require.Equal(t, "partner-api", c.RateLimit.Name)
	require.Equal(t, 100, c.RateLimit.Limit)
	require.Equal(t, Duration(time.Minute), c.RateLimit.Period)

	plain := mustParse(t, flowDoc("", ""))
	require.Empty(t, plain.Concurrency)
	require.Nil(t, plain.Debounce)
	require.False(t, plain.Steps[0].Call.HasFlowLimits())

	// max_wait defaults to ten periods; a rate limit's key is optional.
	d = mustParse(t, flowDoc(`"debounce": {"key": "${ input.user }", "period": "2s"}`, `"rate_limit": {"limit": 1, "period": "1s"}`))
	require.Equal(t, Duration(20*time.Second), d.Debounce.MaxWait)
	require.Nil(t, d.Steps[0].Call.RateLimit.Key)
}

func TestFlowKeyBounds(t *testing.T) {
	t.Parallel()
	d := mustParse(t, flowDoc(`"concurrency": [{"key": "${ input.k }", "limit": 1}]`, ""))
	key := d.Concurrency[0].Key
	_, err := FlowKey(context.Background(), key, Activation{Input: map[string]any{"k": strings.Repeat("x", MaxFlowKeyBytes+1)}})
	require.ErrorContains(t, err, "at most 256")
	_, err = FlowKey(context.Background(), key, Activation{Input: map[string]any{"k": []any{1}}})
	require.ErrorContains(t, err, "must evaluate to a string")
	got, err := FlowKey(context.Background(), key, Activation{Input: map[string]any{"k": int64(42)}})
	require.NoError(t, err)
	require.Equal(t, "42", got)
}

func TestParseFlowControlProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		extra, step string
		want        []want
	}{
		{"concurrency not a list", `"concurrency": {"key": "${ input.a }", "limit": 1}`, "",
			[]want{{"/concurrency", "must be an array"}}},
		{"concurrency empty", `"concurrency": []`, "", []want{{"/concurrency", "1 to 4 limits"}}},
		{"too many limits", `"concurrency": [` + strings.Repeat(`{"key": "${ input.a }", "limit": 1},`, 4) + `{"key": "${ input.a }", "limit": 1}]`, "",
			[]want{{"/concurrency", "1 to 4 limits"}}},
		{"limit missing key and limit", `"concurrency": [{}]`, "",
			[]want{{"/concurrency/0/key", "is required"}, {"/concurrency/0/limit", "is required"}}},
		{"limit zero", `"concurrency": [{"key": "${ input.a }", "limit": 0}]`, "",
			[]want{{"/concurrency/0/limit", "from 1 to 1000000"}}},
		{"limit not an integer", `"concurrency": [{"key": "${ input.a }", "limit": 1.5}]`, "",
			[]want{{"/concurrency/0/limit", "from 1 to 1000000"}}},
		{"key not an expression", `"concurrency": [{"key": "customer", "limit": 1}]`, "",
			[]want{{"/concurrency/0/key", `must be an expression of the form "${ expr }"`}}},
		{"key does not compile", `"concurrency": [{"key": "${ input. }", "limit": 1}]`, "",
			[]want{{"/concurrency/0/key", "Syntax error"}}},
		{"key of a wrong type", `"concurrency": [{"key": "${ [1] }", "limit": 1}]`, "",
			[]want{{"/concurrency/0/key", "string or an integer"}}},
		{"unknown field in a limit", `"concurrency": [{"key": "${ input.a }", "limit": 1, "per": "run"}]`, "",
			[]want{{"/concurrency/0/per", `unknown field "per"`}}},
		{"step limit", "", `"concurrency": [{"key": "${ input.a }", "limit": -1}]`,
			[]want{{"/steps/0/concurrency/0/limit", "from 1 to 1000000"}}},
		{"rate limit missing fields", "", `"rate_limit": {}`,
			[]want{{"/steps/0/rate_limit/limit", "is required"}, {"/steps/0/rate_limit/period", "is required"}}},
		{"rate limit period too short", "", `"rate_limit": {"limit": 1, "period": "10ms"}`,
			[]want{{"/steps/0/rate_limit/period", "from 100ms to 24h0m0s"}}},
		{"rate limit period too long", "", `"rate_limit": {"limit": 1, "period": "25h"}`,
			[]want{{"/steps/0/rate_limit/period", "from 100ms to 24h0m0s"}}},
		{"rate limit bad name", "", `"rate_limit": {"name": "Partner API", "limit": 1, "period": "1s"}`,
			[]want{{"/steps/0/rate_limit/name", "must match"}}},
		{"rate limit too large", "", `"rate_limit": {"limit": 1000001, "period": "1s"}`,
			[]want{{"/steps/0/rate_limit/limit", "from 1 to 1000000"}}},
		{"rate limit not an object", "", `"rate_limit": 10`,
			[]want{{"/steps/0/rate_limit", "must be an object"}}},
		{"debounce missing fields", `"debounce": {}`, "",
			[]want{{"/debounce/key", "is required"}, {"/debounce/period", "is required"}}},
		{"debounce max_wait shorter than period", `"debounce": {"key": "${ input.a }", "period": "10s", "max_wait": "5s"}`, "",
			[]want{{"/debounce/max_wait", "not be shorter than the period"}}},
		{"debounce too long", `"debounce": {"key": "${ input.a }", "period": "25h"}`, "",
			[]want{{"/debounce/period", "at most 24h0m0s"}}},
		{"debounce zero", `"debounce": {"key": "${ input.a }", "period": "0s"}`, "",
			[]want{{"/debounce/period", "greater than zero"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireProblems(t, problemsOf(t, flowDoc(tt.extra, tt.step), Limits{}), tt.want...)
		})
	}

	// Only call steps take step limits.
	requireProblems(t, problemsOf(t, doc(`{"name": "s", "type": "sleep", "duration": "1s", "rate_limit": {"limit": 1, "period": "1s"}}`), Limits{}),
		want{"/steps/0/rate_limit", `unknown field "rate_limit"`})
}
