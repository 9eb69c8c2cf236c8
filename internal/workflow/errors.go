package workflow

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one reason a definition, or a value checked against one, is
// invalid.
type Problem struct {
	// Path is an RFC 6901 JSON Pointer to the offending value, such as
	// "/steps/2/retry/max_attempts". The empty string means the whole
	// document or value.
	Path string `json:"path"`
	// Message says what is wrong, in lowercase and without a trailing period.
	Message string `json:"message"`
}

// String formats the problem as "path: message", using "/" for the root.
func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "/"
	}
	return path + ": " + p.Message
}

// ValidationError is returned by [Parse] for a definition that is invalid.
// Problems lists every problem found, in document order as far as possible,
// never fewer than one.
type ValidationError struct {
	Problems []Problem
}

// Error summarises the problems: the first in full and how many more there are.
func (e *ValidationError) Error() string {
	switch len(e.Problems) {
	case 0:
		return "invalid workflow definition"
	case 1:
		return "invalid workflow definition: " + e.Problems[0].String()
	default:
		return fmt.Sprintf("invalid workflow definition: %s (and %d more problems)",
			e.Problems[0], len(e.Problems)-1)
	}
}

// ErrCostLimitExceeded is wrapped by the [EvalError] of an expression whose
// evaluation was stopped because it exceeded its cost budget (see
// [Limits.CostLimit]). Running it again with the same data fails the same way,
// so callers should not retry it.
var ErrCostLimitExceeded = errors.New("expression cost limit exceeded")

// EvalError reports an expression that failed at run time: a missing key, a
// type error, an exceeded cost limit, a cancelled context or a result that
// cannot be represented as JSON.
type EvalError struct {
	// Path is the JSON Pointer of the expression in the definition.
	Path string
	// Expr is the expression as written, including "${" and "}".
	Expr string
	// Err is the cause. It wraps [ErrCostLimitExceeded] when the cost limit
	// was exceeded and the context's error when the context ended.
	Err error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("evaluate %s at %s: %v", e.Expr, displayPath(e.Path), e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

func displayPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// problems collects the problems of one validation. It stops collecting after
// maxProblems so that a hostile document (a megabyte of duplicate keys, say)
// cannot produce an answer far larger than itself.
type problems struct {
	list []Problem
	full bool
}

const maxProblems = 1000

func (ps *problems) add(path, format string, args ...any) {
	if ps.full {
		return
	}
	if len(ps.list) == maxProblems {
		ps.list = append(ps.list, Problem{Path: "", Message: fmt.Sprintf("too many problems; only the first %d are listed", maxProblems)})
		ps.full = true
		return
	}
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// pointer appends one reference token to a JSON Pointer, escaping "~" and "/"
// as RFC 6901 requires.
func pointer(base, token string) string {
	if strings.ContainsAny(token, "~/") {
		token = strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
	}
	return base + "/" + token
}

func pointerAt(base string, i int) string {
	return fmt.Sprintf("%s/%d", base, i)
}
