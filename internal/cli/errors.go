package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/durablehq/durable/client"
)

// exitError ends the command with code, after printing err (unless it is
// nil: the command has said everything already).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a mistake on the command line: exit code 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// maxBody bounds what the command reads of one answer: the API's largest
// (a page of 1,000 steps with their inputs and outputs) stays far below.
const maxBody = 256 << 20

// read returns the body of an answer of the API, or an error with exit
// code 3: the request could not be made (err), or the API answered a
// status other than 2xx, whose problem document the error carries.
func (a *app) read(res *http.Response, err error) ([]byte, error) {
	if err != nil {
		return nil, &exitError{code: ExitAPI, err: fmt.Errorf("cannot reach the API at %s: %w", a.url, err)}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, &exitError{code: ExitAPI, err: fmt.Errorf("read the API's answer: %w", err)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, &exitError{code: ExitAPI, err: problemError(res, body)}
	}
	return body, nil
}

// problemError says what an answer other than 2xx means, readably: the
// problem's title and status, its detail, then each of its errors as
// "path: message" on a line of its own.
func problemError(res *http.Response, body []byte) error {
	var p client.Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Title == "" {
		text := strings.TrimSpace(string(body))
		if text == "" {
			return fmt.Errorf("the API answered %s", printable(res.Status))
		}
		return fmt.Errorf("the API answered %s: %s", printable(res.Status), printable(oneLine(text, 200)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d)", p.Title, res.StatusCode)
	if p.Detail != nil && *p.Detail != "" {
		b.WriteString(": " + *p.Detail)
	}
	if p.Errors != nil {
		for _, e := range *p.Errors {
			path := e.Path
			if path == "" {
				path = "/"
			}
			fmt.Fprintf(&b, "\n  %s: %s", path, e.Message)
		}
	}
	if ra := res.Header.Get("Retry-After"); ra != "" {
		fmt.Fprintf(&b, "\n  (retry after %s s)", ra)
	}
	return errors.New(printable(b.String()))
}

// decode reads an answer's body into v; an answer that does not fit the
// contract is an API error.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return &exitError{code: ExitAPI, err: fmt.Errorf("the API's answer is not what its contract says: %w", err)}
	}
	return nil
}
