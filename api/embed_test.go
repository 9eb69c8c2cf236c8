package api

import (
	"context"
	"testing"

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
