package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/workflow"
)

type bodyKey struct{}

// requestBody returns the body [readBody] read, or nil.
func requestBody(r *http.Request) []byte {
	b, _ := r.Context().Value(bodyKey{}).([]byte)
	return b
}

// readBody reads the whole request body up front, refusing one over limit
// bytes (413), one that is not JSON (415) and one that is not UTF-8 or not
// exactly one JSON value (400), so that neither the validator nor a handler
// ever sees it. A limit of 0 means the endpoint takes no body, which is then
// ignored.
func readBody(limit int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if limit == 0 {
				next.ServeHTTP(w, r)
				return
			}
			if r.ContentLength > int64(limit) {
				writeProblem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the request body exceeds the limit of %d bytes", limit), nil)
				return
			}
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				writeProblem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the request body exceeds the limit of %d bytes", limit), nil)
				return
			case err != nil:
				writeProblem(w, r, http.StatusBadRequest, "malformed", "the request body could not be read", nil)
				return
			}
			if len(b) > 0 {
				mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
				if err != nil || mediaType != "application/json" {
					writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "the request body must be application/json", nil)
					return
				}
				if !utf8.Valid(b) {
					writeProblem(w, r, http.StatusBadRequest, "malformed", "the request body is not valid UTF-8", nil)
					return
				}
				// The validator and the handlers decode the first JSON value
				// and ignore what follows it: `{"workflow": "a"} junk` must
				// be refused, not start a run.
				if !json.Valid(b) {
					writeProblem(w, r, http.StatusBadRequest, "malformed", "the request is malformed", []fault.Problem{{Path: "", Message: "the request body is not valid JSON"}})
					return
				}
				// Refused rather than altered: jsonb cannot hold \u0000, and
				// decoding would turn unpaired surrogates into U+FFFD.
				var unstorable *workflow.StorableError
				if errors.As(workflow.CheckStorable(b), &unstorable) {
					writeProblem(w, r, http.StatusUnprocessableEntity, "invalid", "the request is invalid", []fault.Problem{{Path: unstorable.Path, Message: unstorable.Error()}})
					return
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, b)))
		})
	}
}

// newValidator returns middleware that validates each request against the
// OpenAPI document before its handler runs, answering a problem document
// that lists every violation.
func newValidator(spec *openapi3.T, s *Server) func(http.Handler) http.Handler {
	// kin-openapi validates requests against an OpenAPI 3.1 document by
	// compiling a JSON Schema 2020-12 validator anew for every request, which
	// cost a third of the API's CPU under load. The schemas of our requests
	// use no keyword only 2020-12 has (TestValidatorSeesNo2020Keywords), so
	// the router is given a copy of the document marked 3.0, whose validator
	// walks the same schemas without compiling anything.
	fast := *spec
	fast.OpenAPI = "3.0.3"
	return nethttpmiddleware.OapiRequestValidatorWithOptions(&fast, &nethttpmiddleware.Options{
		Options: openapi3filter.Options{
			MultiError: true,
			// Authentication happens before validation, in [Server.authenticate].
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
		DoNotValidateServers:  true,
		SilenceServersWarning: true,
		// Handlers decode the body exactly as the client sent it; the
		// validator must not rewrite it (re-encoding would round numbers).
		DiscardValidatedValue: true,
		ErrorHandlerWithOpts: func(ctx context.Context, err error, w http.ResponseWriter, r *http.Request, opts nethttpmiddleware.ErrorHandlerOpts) {
			if opts.MatchedRoute == nil {
				writeProblem(w, r, http.StatusNotFound, "not-found", "no such endpoint", nil)
				return
			}
			status, problems := requestProblems(err)
			if status == 0 {
				s.writeError(w, r, err)
				return
			}
			detail := "the request is invalid"
			if status == http.StatusBadRequest {
				detail = "the request is malformed"
			}
			writeProblem(w, r, status, map[int]string{400: "malformed", 422: "invalid"}[status], detail, problems)
		},
	})
}

// unsupportedProperty finds the name in kin-openapi's message about a
// property the schema does not allow, so the problem can point at it.
var unsupportedProperty = regexp.MustCompile(`^property "(.*)" is unsupported$`)

// schemaDetail matches one line of the JSON Schema 2020-12 validator's
// report, "- at '/pointer': message", which kin-openapi passes on whole.
// The pointer is quoted like a Go string, with ' escaped as \'.
var schemaDetail = regexp.MustCompile(`^\s*- at '((?:[^'\\]|\\.)*)': (.*)$`)

// additionalProperties matches the 2020-12 validator's message about
// properties the schema does not allow, which names them all, quoted.
var additionalProperties = regexp.MustCompile(`^additional propert(?:y|ies) ((?:'(?:[^'\\]|\\.)*'(?:, )?)+) not allowed$`)

var quotedName = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'`)

// unquoteDetail undoes the validator's quoting of a pointer or a name.
func unquoteDetail(s string) string {
	u, err := strconv.Unquote(`"` + strings.NewReplacer(`\'`, `'`, `"`, `\"`).Replace(s) + `"`)
	if err != nil {
		return s
	}
	return u
}

// schemaProblems turns a schema error's reason into problems, splitting the
// 2020-12 validator's multi-line report into one problem per line. The
// report's pointers start at the validated value, so they are joined to
// root (the value's own prefix), not to path (where the error points);
// path is used for a reason that is not such a report.
func schemaProblems(root, path, reason string) []fault.Problem {
	var out []fault.Problem
	for _, line := range strings.Split(reason, "\n") {
		m := schemaDetail.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at := root + unquoteDetail(m[1])
		if names := additionalProperties.FindStringSubmatch(m[2]); names != nil {
			// One problem per property, each pointing at it.
			for _, q := range quotedName.FindAllStringSubmatch(names[1], -1) {
				name := unquoteDetail(q[1])
				out = append(out, fault.Problem{Path: at + "/" + escapePointer(name), Message: fmt.Sprintf("property %q is unsupported", name)})
			}
			continue
		}
		out = append(out, fault.Problem{Path: at, Message: m[2]})
	}
	if len(out) == 0 {
		out = append(out, fault.Problem{Path: path, Message: reason})
	}
	return out
}

func escapePointer(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

// requestProblems flattens a validation error into problems with paths. It
// answers 422 when only the body's content is invalid, 400 when the body is
// not JSON or a parameter is wrong, and 0 for errors it does not recognise.
func requestProblems(err error) (int, []fault.Problem) {
	var problems []fault.Problem
	status := 0
	raise := func(s int) {
		if s == http.StatusBadRequest || status == 0 {
			status = s
		}
	}
	var walk func(err error, prefix string, inBody bool)
	walk = func(err error, prefix string, inBody bool) {
		// A type switch, not errors.As: a RequestError unwraps to the
		// MultiError inside it, and the switch must see the outer one first
		// to know whether the problems are in the body.
		switch e := err.(type) {
		case nil:
		case openapi3.MultiError:
			for _, inner := range e {
				walk(inner, prefix, inBody)
			}
		case *openapi3filter.RequestError:
			switch {
			case e.Parameter != nil && e.Err != nil:
				walk(e.Err, e.Parameter.In+":"+e.Parameter.Name, false)
			case e.Parameter != nil:
				problems = append(problems, fault.Problem{Path: e.Parameter.In + ":" + e.Parameter.Name, Message: e.Reason})
				raise(http.StatusBadRequest)
			case e.RequestBody != nil && e.Err != nil:
				walk(e.Err, "", true)
			default:
				problems = append(problems, fault.Problem{Path: prefix, Message: e.Error()})
				raise(http.StatusBadRequest)
			}
		case *openapi3.SchemaError:
			path := prefix
			for _, p := range e.JSONPointer() {
				path += "/" + escapePointer(p)
			}
			if m := unsupportedProperty.FindStringSubmatch(e.Reason); m != nil {
				path += "/" + escapePointer(m[1])
			}
			problems = append(problems, schemaProblems(prefix, path, e.Reason)...)
			if inBody {
				raise(http.StatusUnprocessableEntity)
			} else {
				raise(http.StatusBadRequest)
			}
		default:
			var parseErr *openapi3filter.ParseError
			message := err.Error()
			switch {
			case errors.As(err, &parseErr) && inBody:
				message = "the request body is not valid JSON"
			case errors.As(err, &parseErr):
				message = "malformed value: " + parseErr.Reason
			case errors.Is(err, openapi3filter.ErrInvalidRequired) && inBody:
				message = "a request body is required"
			case errors.Is(err, openapi3filter.ErrInvalidRequired):
				message = "a value is required"
			}
			problems = append(problems, fault.Problem{Path: prefix, Message: message})
			raise(http.StatusBadRequest)
		}
	}
	walk(err, "", false)
	return status, problems
}
