package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// Template is a JSON mapping of a definition, such as a call step's input or
// the run's output. Any string in it (an object member's value or an array
// element, at any depth, never an object key) that is exactly one expression,
// "${ expr }", is replaced by the expression's value when the template is
// rendered, keeping the value's type: "${ ctx.total }" renders as a number,
// "${ input }" as an object. Every other value is literal.
//
// A literal string may not contain "${" except as the escape "$${", which
// renders as "${": "$${ not an expression }" renders as "${ not an
// expression }".
//
// A nil *Template renders as nil. Templates are immutable and safe for
// concurrent use.
type Template struct {
	root *tmplNode
	cfg  *evalConfig
}

type tmplKind uint8

const (
	tmplLiteral tmplKind = iota // a subtree without expressions
	tmplExpr
	tmplObject
	tmplArray
)

type tmplNode struct {
	kind    tmplKind
	literal any
	expr    *Expr
	keys    []string // object member names, parallel to elems
	elems   []*tmplNode
}

// Render returns the mapping with every expression replaced by its value, as
// JSON-compatible Go values (see [Expr.Eval]). The result shares nothing with
// the template and may be modified. The first expression that fails stops
// rendering with its [*EvalError].
func (t *Template) Render(ctx context.Context, a Activation) (any, error) {
	if t == nil {
		return nil, nil
	}
	ev, done, err := begin(ctx, a, t.cfg)
	defer done()
	if err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	return t.root.render(ev)
}

// RenderJSON is like [Template.Render] but returns the result encoded as
// JSON; a nil template gives "null".
func (t *Template) RenderJSON(ctx context.Context, a Activation) ([]byte, error) {
	v, err := t.Render(ctx, a)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode rendered template: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (n *tmplNode) render(ev *evaluation) (any, error) {
	switch n.kind {
	case tmplExpr:
		return n.expr.eval(ev)
	case tmplObject:
		out := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v, err := n.elems[i].render(ev)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case tmplArray:
		out := make([]any, len(n.elems))
		for i, e := range n.elems {
			v, err := e.render(ev)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	default:
		return deepCopy(n.literal), nil
	}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

// Text is a string field that is either literal or computed by one
// expression, such as a header value. The literal follows the rules of
// [Template]: "$${" in the definition is already resolved to "${".
type Text struct {
	// Literal is the value when Expr is nil.
	Literal string
	// Expr computes the value; it must yield a string.
	Expr *Expr
}

// Render returns the literal, or evaluates the expression, which must yield
// a string.
func (t Text) Render(ctx context.Context, a Activation) (string, error) {
	if t.Expr == nil {
		return t.Literal, nil
	}
	ev, done, err := begin(ctx, a, t.Expr.cfg)
	defer done()
	if err != nil {
		return "", t.Expr.fail(err)
	}
	return t.render(ev)
}

func (t Text) render(ev *evaluation) (string, error) {
	if t.Expr == nil {
		return t.Literal, nil
	}
	v, err := t.Expr.eval(ev)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", t.Expr.fail(fmt.Errorf("must evaluate to a string, got %s", jsonTypeName(v)))
	}
	return s, nil
}
