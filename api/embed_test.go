package api

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
)

// TestLoad checks that the embedded document is valid OpenAPI 3.1 and
// describes the step protocol in its webhooks section.
func TestLoad(t *testing.T) {
	t.Parallel()
	doc, err := Load(context.Background())
	require.NoError(t, err)
	require.True(t, doc.IsOpenAPI31OrLater())
	require.Contains(t, doc.Webhooks, "stepInvocation")
	require.NotNil(t, doc.Webhooks["stepInvocation"].Post.RequestBody)
	for _, schema := range []string{"Problem", "Run", "WorkflowDefinition", "StepRequest", "StepResult", "CallbackRequest"} {
		require.Contains(t, doc.Components.Schemas, schema)
	}
}

// TestWorkflowDefinitionSchemaAcceptsEveryStepType checks that the request
// schema of POST /v1/workflows, which the API validates every request
// against, lets definitions of every step type through to the parser,
// loops included.
func TestWorkflowDefinitionSchemaAcceptsEveryStepType(t *testing.T) {
	t.Parallel()
	doc, err := Load(context.Background())
	require.NoError(t, err)
	schema := doc.Components.Schemas["WorkflowDefinition"].Value
	valid := func(definition string) error {
		var v any
		require.NoError(t, json.Unmarshal([]byte(definition), &v))
		return schema.VisitJSON(v, openapi3.MultiErrors())
	}
	require.NoError(t, valid(`{"name": "poll-job", "steps": [
		{"name": "submit", "type": "call", "url": "https://jobs.example/submit"},
		{"name": "poll", "type": "loop", "while": "${ iteration == 0 || steps.check.output.state != 'done' }",
		 "max_iterations": 100, "steps": [
			{"name": "check", "type": "call", "url": "https://jobs.example/status"},
			{"name": "again", "type": "loop", "while": "${ iteration < 2 }", "max_iterations": 2,
			 "steps": [{"name": "pause", "type": "sleep", "duration": "10s"}]}]},
		{"name": "ship", "type": "foreach", "items": "${ input.items }", "steps": [
			{"name": "label", "type": "call", "url": "https://ship.example/label"}]}]}`))
	require.Error(t, valid(`{"steps": [{"name": "poll", "type": "loop"}]}`), "the schema is checked at all")
}
