package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaBase is the base URL of every form schema. Relative references
// resolve against it, and then fail to load like any other URL: it only
// needs to be absolute, and is trimmed from messages.
const (
	schemaBase = "https://durable.invalid/"
	schemaURL  = schemaBase + "form-schema.json"
)

var schemaPrinter = message.NewPrinter(language.English)

// errRemoteRef is why a form schema may not load anything: a definition is
// untrusted input, and loading a reference would make the server fetch a URL
// (or read a file) of the author's choosing.
var errRemoteRef = errors.New("references to other documents are not allowed; define the schema inline, using \"$defs\"")

type refusingLoader struct{}

func (refusingLoader) Load(string) (any, error) { return nil, errRemoteRef }

// compileSchema compiles a form schema, the value at path, and returns it,
// or the problems that make it invalid. Draft 2020-12 applies unless the
// schema names another with "$schema"; format assertions are on.
func compileSchema(n *node, path string) (*jsonschema.Schema, []Problem) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(refusingLoader{})
	if err := c.AddResource(schemaURL, n.schemaValue()); err != nil {
		return nil, []Problem{{Path: path, Message: fmt.Sprintf("invalid JSON Schema: %v", err)}}
	}
	s, err := c.Compile(schemaURL)
	if err == nil {
		return s, nil
	}
	if serr, ok := errors.AsType[*jsonschema.SchemaValidationError](err); ok {
		if verr, ok := errors.AsType[*jsonschema.ValidationError](serr.Err); ok {
			ps := schemaProblems(verr)
			for i := range ps {
				ps[i].Path = path + ps[i].Path
				ps[i].Message = "invalid JSON Schema: " + ps[i].Message
			}
			return nil, ps
		}
	}
	if lerr, ok := errors.AsType[*jsonschema.LoadURLError](err); ok {
		return nil, []Problem{{Path: path, Message: fmt.Sprintf("invalid JSON Schema: cannot load %s: %v",
			quote(strings.TrimPrefix(lerr.URL, schemaBase)), lerr.Err)}}
	}
	return nil, []Problem{{Path: path, Message: "invalid JSON Schema: " + strings.ReplaceAll(err.Error(), schemaBase, "")}}
}

// schemaValue converts n to the value model jsonschema expects, which keeps
// numbers as json.Number.
func (n *node) schemaValue() any {
	switch n.kind {
	case jsonNumber:
		return json.Number(n.text)
	case jsonArray:
		out := make([]any, len(n.elems))
		for i, e := range n.elems {
			out[i] = e.schemaValue()
		}
		return out
	case jsonObject:
		out := make(map[string]any, len(n.members))
		for _, m := range n.members {
			out[m.key] = m.val.schemaValue()
		}
		return out
	default:
		return n.literal()
	}
}

// schemaProblems flattens a validation error to its most specific causes,
// the leaves of its tree, with paths into the validated value, sorted by
// path.
func schemaProblems(verr *jsonschema.ValidationError) []Problem {
	var out []Problem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			p := Problem{Path: jsonPointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(schemaPrinter)}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(verr)
	// The validator visits object members in map order; sorting makes the
	// answer the same every time.
	slices.SortStableFunc(out, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func jsonPointer(tokens []string) string {
	var p string
	for _, t := range tokens {
		p = pointer(p, t)
	}
	return p
}

// ValidateInput checks a person's input for the step, as decoded JSON (see
// [DecodeJSON]; json.Number is accepted too): a boolean for an approval, one
// of the options for a choice, a string for text, and for a form an object
// valid against the schema. It returns nil for valid input, or the problems
// with paths into value ("" for value itself).
func (w *WaitForInputStep) ValidateInput(value any) []Problem {
	switch w.Kind {
	case InputApproval:
		if _, ok := value.(bool); !ok {
			return []Problem{{Message: "must be true (approve) or false (reject)"}}
		}
	case InputChoice:
		s, ok := value.(string)
		if !ok || !slices.Contains(w.Options, s) {
			return []Problem{{Message: "must be one of " + quoteList(w.Options)}}
		}
	case InputText:
		if _, ok := value.(string); !ok {
			return []Problem{{Message: "must be a string"}}
		}
	case InputForm:
		if _, ok := value.(map[string]any); !ok {
			return []Problem{{Message: "must be an object"}}
		}
		if err := w.schema.Validate(value); err != nil {
			if verr, ok := errors.AsType[*jsonschema.ValidationError](err); ok {
				return schemaProblems(verr)
			}
			return []Problem{{Message: err.Error()}}
		}
	}
	return nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quote(s)
	}
	return strings.Join(q, ", ")
}
