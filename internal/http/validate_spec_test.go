package http_test

import (
	"context"
	"errors"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/api"
)

// TestValidatorSeesNo2020Keywords guards the shortcut in newValidator:
// requests are validated with kin-openapi's OpenAPI 3.0 validator, which is
// only equivalent while no request schema uses a keyword that JSON Schema
// 2020-12 has and 3.0 lacks.
func TestValidatorSeesNo2020Keywords(t *testing.T) {
	t.Parallel()
	spec, err := api.Load(context.Background())
	require.NoError(t, err)
	found := errors.New("2020-12 keyword")
	check := func(where string, ref *openapi3.SchemaRef) {
		if ref == nil {
			return
		}
		err := ref.WalkSubtree(func(path string, r *openapi3.SchemaRef) error {
			s := r.Value
			if s == nil {
				return nil
			}
			if s.Const != nil || len(s.PrefixItems) != 0 || s.Contains != nil || len(s.PatternProperties) != 0 ||
				len(s.DependentSchemas) != 0 || s.PropertyNames != nil || s.UnevaluatedItems.Has != nil ||
				s.UnevaluatedItems.Schema != nil || s.UnevaluatedProperties.Has != nil || s.UnevaluatedProperties.Schema != nil ||
				s.If != nil || s.Then != nil || s.Else != nil || len(s.DependentRequired) != 0 || len(s.Defs) != 0 ||
				s.ContentSchema != nil {
				t.Errorf("%s%s uses a JSON Schema 2020-12 keyword; the request validator's 3.0 shortcut no longer holds", where, path)
				return found
			}
			return nil
		})
		if err != nil && !errors.Is(err, found) {
			t.Fatalf("walk %s: %v", where, err)
		}
	}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			for _, p := range append(item.Parameters, op.Parameters...) {
				check(where+" parameter "+p.Value.Name, p.Value.Schema)
			}
			if op.RequestBody != nil {
				for _, media := range op.RequestBody.Value.Content {
					check(where+" body", media.Schema)
				}
			}
		}
	}
}
