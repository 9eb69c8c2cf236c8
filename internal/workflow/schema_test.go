package workflow

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateInput(t *testing.T) {
	t.Parallel()
	d := mustParse(t, doc(
		`{"name": "approve", "type": "wait_for_input", "kind": "approval"}`,
		`{"name": "pick", "type": "wait_for_input", "kind": "choice", "options": ["red", "green"]}`,
		`{"name": "why", "type": "wait_for_input", "kind": "text"}`,
		`{"name": "form", "type": "wait_for_input", "kind": "form", "schema": {
			"type": "object", "required": ["address", "email"], "additionalProperties": false,
			"properties": {
				"address": {"type": "string", "minLength": 3},
				"email": {"type": "string", "format": "email"},
				"count": {"type": "integer", "maximum": 10},
				"tags": {"type": "array", "items": {"type": "string"}},
				"when": {"type": "string", "format": "date-time"}
			}}}`,
	))
	tests := []struct {
		step  string
		value string
		want  []Problem
	}{
		{"approve", `true`, nil},
		{"approve", `false`, nil},
		{"approve", `"yes"`, []Problem{{Path: "", Message: "must be true (approve) or false (reject)"}}},
		{"pick", `"green"`, nil},
		{"pick", `"blue"`, []Problem{{Path: "", Message: `must be one of "red", "green"`}}},
		{"pick", `1`, []Problem{{Path: "", Message: `must be one of "red", "green"`}}},
		{"why", `"because"`, nil},
		{"why", `null`, []Problem{{Path: "", Message: "must be a string"}}},
		{"form", `{"address": "1 Main St", "email": "a@example.com", "count": 3, "tags": ["x"], "when": "2026-01-02T03:04:05Z"}`, nil},
		{"form", `{"address": "1 Main St", "email": "a@example.com", "count": 3.0}`, nil},
		{"form", `[]`, []Problem{{Path: "", Message: "must be an object"}}},
		{"form", `{"address": "x", "email": "not-an-email", "count": 11, "tags": [1], "when": "yesterday", "extra": 1}`, []Problem{
			{Path: "", Message: "additional properties 'extra' not allowed"},
			{Path: "/address", Message: "minLength: got 1, want 3"},
			{Path: "/count", Message: "maximum: got 11, want 10"},
			{Path: "/email", Message: "'not-an-email' is not valid email: missing @"},
			{Path: "/tags/0", Message: "got number, want string"},
			{Path: "/when", Message: "'yesterday' is not valid date-time: less than 20 characters long"},
		}},
		{"form", `{}`, []Problem{{Path: "", Message: "missing properties 'address', 'email'"}}},
	}
	for _, tt := range tests {
		w := d.Step(tt.step).WaitForInput
		got := w.ValidateInput(mustDecode(t, tt.value))
		require.Equal(t, tt.want, got, "%s %s", tt.step, tt.value)
	}

	// Values decoded with json.Number are accepted as well.
	var v any
	dec := json.NewDecoder(strings.NewReader(`{"address": "1 Main St", "email": "a@example.com", "count": 10}`))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&v))
	require.Empty(t, d.Step("form").WaitForInput.ValidateInput(v))
}

func TestFormSchemaDrafts(t *testing.T) {
	t.Parallel()
	// Metaschemas ship with the library, so naming a draft loads nothing.
	for _, draft := range []string{
		"http://json-schema.org/draft-07/schema#",
		"https://json-schema.org/draft/2019-09/schema",
		"https://json-schema.org/draft/2020-12/schema",
	} {
		d := mustParse(t, doc(`{"name": "f", "type": "wait_for_input", "kind": "form", "schema": {
			"$schema": "`+draft+`", "type": "object", "properties": {"n": {"$ref": "#/$defs/n"}},
			"$defs": {"n": {"type": "integer"}}, "definitions": {}}}`))
		w := d.Steps[0].WaitForInput
		require.Empty(t, w.ValidateInput(map[string]any{"n": int64(1)}), draft)
		require.NotEmpty(t, w.ValidateInput(map[string]any{"n": "x"}), draft)
	}
}
