package workflow

import (
	"context"
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		canonicalBase,
		doc(`{"name": "charge", "type": "call", "url": "https://pay.example/charge",
			"method": "POST", "headers": {"X-Tenant": "acme", "X-Id": "${ ctx.id }"}, "timeout": "30s",
			"retry": {"max_attempts": 5, "initial_interval": "1s", "backoff_coefficient": 2,
			          "max_interval": "1m", "non_retryable_statuses": [409]},
			"input": {"amount": "${ ctx.total }", "lit": "$${ x }", "list": [1, 2.5, null, true]},
			"compensate": {"url": "https://pay.example/refund"}}`),
		doc(`{"name": "route", "type": "branch", "on": "${ input.tier }",
			"cases": [{"value": "gold", "steps": [{"name": "a", "type": "sleep", "duration": "1s"}]},
			          {"if": "${ ctx.total > 100 }", "steps": [{"name": "b", "type": "sleep", "until": "2026-01-01T00:00:00Z"}]}],
			"default": [{"name": "c", "type": "sleep", "until": "${ ctx.at }"}]}`),
		doc(`{"name": "notify", "type": "parallel", "merge": "deep_merge", "on_error": "complete_all",
			"branches": [{"name": "email", "steps": [{"name": "e", "type": "wait_for_event", "event": "x", "key": "${ ctx.id }", "lookback": "0s"}]},
			             {"name": "sms", "steps": [{"name": "s", "type": "wait_for_event", "all": [{"event": "a", "key": "${ ctx.id }"}]}]}]}`),
		doc(`{"name": "ship", "type": "foreach", "items": "${ ctx.items }", "mode": "concurrent",
			"concurrency": 5, "collect_as": "shipments", "on_error": "collect",
			"steps": [{"name": "one", "type": "call_workflow", "workflow": "ship-one", "version": 2, "input": {"item": "${ item }", "i": "${ index }"}}]}`),
		doc(`{"name": "poll", "type": "loop", "while": "${ iteration == 0 || steps.check.output.state != 'done' }", "max_iterations": 100,
			"steps": [{"name": "check", "type": "call", "url": "https://jobs.example/status", "input": {"attempt": "${ iteration }"}},
			          {"name": "inner", "type": "loop", "while": "${ iteration < 2 }", "max_iterations": 2, "steps": [{"name": "pause", "type": "sleep", "duration": "1s"}]}]}`),
		doc(`{"name": "review", "type": "wait_for_input", "kind": "form", "prompt": "Shipping",
			"schema": {"type": "object", "required": ["address"], "properties": {"address": {"type": "string", "format": "email"}}},
			"timeout": "72h", "on_timeout": "continue"}`),
		doc(`{"name": "pick", "type": "wait_for_input", "kind": "choice", "options": ["a", "b"]}`),
		doc(`{"name": "ok", "type": "wait_for_input", "kind": "approval", "on_reject": "continue"}`),
		`{"name": "x", "timeout": "1h", "output": "${ steps.s.output }", "steps": [{"name": "s", "type": "sleep", "duration": "1s"}]}`,
		`{"name": "x", "steps": [{"name": "s", "type": "sleep", "duration": "1s", "description": "\u00e9\ud800\u0001"}]}`,
		// Invalid documents.
		`{}`,
		`[]`,
		``,
		`{"name": "x", "name": "y"}`,
		`{"name": "x", "steps": [{"name": "s", "type": "call", "url": "ftp://x", "input": "a ${ b }"}]}`,
		`{"name": "x", "steps": [{"name": "s", "type": "sleep", "duration": "${ }"}]} trailing`,
		`{"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"name": "x", "steps": [{"name": "s", "type": "call", "url": "https://h/", "input": 1e999}]}`,
		"{\"name\": \"\xff\"}",
		`{"name": "x", "steps": [{"name": "s", "type": "call", "url": "https://h/", "input": {"a": "${ steps.nope + item }"}}]}`,
		`{"name": "x", "steps": [{"name": "s", "type": "wait_for_input", "kind": "form", "schema": {"$ref": "http://169.254.169.254/"}}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b, DefaultLimits())
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse returned %T, not a *ValidationError: %v", err, err)
			}
			if len(verr.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			return
		}
		again, err := Parse(d.Canonical(), DefaultLimits())
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", d.Canonical(), err)
		}
		if again.Hash() != d.Hash() {
			t.Fatalf("canonical form is not stable:\n%s\n%s", d.Canonical(), again.Canonical())
		}
		// Rendering must never panic, whatever the data.
		a := Activation{Input: map[string]any{"tier": "gold"}, Ctx: map[string]any{"total": 1.5}}
		d.Walk(func(_ string, s *Step) bool {
			if s.Call != nil {
				_, _ = s.Call.Input.Render(context.Background(), a)
				_, _ = s.Call.RenderHeaders(context.Background(), a)
			}
			if s.Branch != nil {
				_, _, _ = s.Branch.Select(context.Background(), a)
			}
			return true
		})
		_, _ = d.Output.Render(context.Background(), a)
	})
}
