// Package fault classifies the errors Durable's services return, so that each
// boundary (HTTP today, the CLI later) can translate them in exactly one
// place. An error without a [Kind] is internal: it is logged, and the client
// sees a generic message.
package fault

import (
	"errors"
	"fmt"
)

// Kind says what went wrong from the caller's point of view.
type Kind int

// The kinds of error a caller can act on.
const (
	Internal     Kind = iota // a bug or an unavailable dependency; never shown in detail
	Malformed                // the request cannot be read: bad syntax, a bad parameter
	Invalid                  // the request is well-formed but not acceptable
	NotFound                 // the named resource does not exist
	Conflict                 // the resource's current state forbids the request
	TooLarge                 // a size limit was exceeded
	Gone                     // the resource existed but has expired
	Unauthorized             // credentials are missing or wrong
	Unavailable              // a dependency (the database) cannot be reached now; the same request may succeed later
)

// Problem points at one offending part of a request, as an RFC 6901 JSON
// Pointer into the request body (or the name of a parameter).
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is an error a caller may see: its Message is safe to show.
type Error struct {
	Kind     Kind
	Message  string
	Problems []Problem
}

func (e *Error) Error() string { return e.Message }

// New returns an *Error of the given kind with a formatted message.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// WithProblems returns an Invalid (or other kind) error that lists problems.
func WithProblems(kind Kind, message string, problems []Problem) *Error {
	return &Error{Kind: kind, Message: message, Problems: problems}
}

// KindOf reports the kind of err: the Kind of the first *Error in its chain,
// or Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err carries an *Error of the given kind.
func Is(err error, kind Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}
