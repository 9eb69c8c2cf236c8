package httpstep

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
)

// Request is one attempt of a call step.
type Request struct {
	URL     string
	Method  string            // "POST" when empty
	Headers map[string]string // user headers from the definition
	Body    []byte            // the JSON request body, already encoded
	// WebhookID is stable across the attempts of one step execution: it is
	// the endpoint's idempotency key. Required.
	WebhookID string
	// Timeout bounds the attempt, from dialling to the last byte of the
	// answer; 0 means DefaultTimeout.
	Timeout time.Duration
	// Traceparent and Tracestate are the W3C trace context of the attempt's
	// span; each is optional, and dropped if not a valid header value.
	Traceparent string
	Tracestate  string
}

// Outcome classifies an attempt.
type Outcome int

// The outcomes of an attempt. The zero Outcome is none of them, so that a
// zero Result never passes for a success.
const (
	Succeeded Outcome = iota + 1 // the step is done
	Accepted                     // 202: the step goes on; it ends with a callback
	Retryable                    // the attempt failed; another may succeed
	Permanent                    // the attempt failed; retrying will not help
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Accepted:
		return "accepted"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is what an attempt came to.
type Result struct {
	Outcome    Outcome
	HTTPStatus int             // 0 when no response
	Output     json.RawMessage // 2xx: the "output" member (nil if absent)
	Context    json.RawMessage // 2xx: the "context" member, a JSON object, nil if absent or null
	Logs       json.RawMessage // 2xx: the "logs" member, a JSON array, nil if absent or null
	// Error describes a failure (Retryable or Permanent) as a JSON object:
	// {"message": "...", "status": 503, "body": "<first 4 KiB of the body>"}
	// or, when the failure body is a JSON object with an "error" member,
	// {"message": ..., "status": ..., "error": <that member>}. "status" is
	// absent when there was no answer, "body" when the body was empty.
	Error json.RawMessage
	// RetryAfter is the delay a Retry-After header asked for (delta seconds
	// or an HTTP date), at most 24h; 0 if none.
	RetryAfter time.Duration
	Duration   time.Duration // from the start of the attempt to its end
}

const (
	errorBodyBytes = 4 << 10
	maxRetryAfter  = 24 * time.Hour
	// ownWordsRunes bounds what a failure's message quotes of the answer;
	// the error's "error" or "body" keeps more.
	ownWordsRunes = 200
)

// errTimeout is the cause of an attempt's context when its timeout expires.
var errTimeout = errors.New("step timeout")

// Invoke makes one attempt of r and classifies it, following the step
// protocol: it never retries, never follows a redirect and never logs.
func (c *Client) Invoke(ctx context.Context, r Request) Result {
	start := time.Now()
	res := c.invoke(ctx, r)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) invoke(ctx context.Context, r Request) Result {
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return failure(Permanent, 0, "the step URL is not an absolute http or https URL")
	}
	host := u.Host // never the path or query: they may carry secrets
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	if !validToken(method) {
		return failure(Permanent, 0, fmt.Sprintf("the method %q is not a valid HTTP method", method))
	}
	if r.WebhookID == "" {
		return failure(Permanent, 0, "the request has no webhook id")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	actx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()

	body := r.Body
	if body == nil {
		body = []byte{}
	}
	req, err := retryablehttp.NewRequestWithContext(actx, method, r.URL, body)
	if err != nil {
		return failure(Permanent, 0, "the step URL is not an absolute http or https URL")
	}
	for k, v := range r.Headers {
		if !validToken(k) {
			return failure(Permanent, 0, fmt.Sprintf("the header name %q is not valid", k))
		}
		if !validHeaderValue(v) {
			return failure(Permanent, 0, fmt.Sprintf("the value of header %s is not valid", k))
		}
		req.Header.Set(k, v)
	}
	if r.Traceparent != "" && validHeaderValue(r.Traceparent) {
		req.Header.Set("Traceparent", r.Traceparent)
		if r.Tracestate != "" && validHeaderValue(r.Tracestate) {
			req.Header.Set("Tracestate", r.Tracestate)
		}
	}
	// The protocol's own headers come last: a definition cannot override them.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Webhook-Id", r.WebhookID)
	ts := c.now()
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("Webhook-Signature", c.secrets.SignatureHeader(r.WebhookID, ts, body))
	req.Header.Set("Idempotency-Key", r.WebhookID)

	resp, err := c.http.Do(req)
	if err != nil {
		outcome, msg := describeError(ctx, actx, err, host, timeout)
		return failure(outcome, 0, msg)
	}
	defer resp.Body.Close()
	res, err := c.classify(resp)
	if err != nil {
		outcome, msg := describeError(ctx, actx, err, host, timeout)
		return failure(outcome, resp.StatusCode, msg+" (while reading the answer)")
	}
	return res
}

// classify reads and classifies an answer. It returns an error only when
// the body of a 2xx answer could not be read.
func (c *Client) classify(resp *http.Response) (Result, error) {
	code := resp.StatusCode
	res := Result{HTTPStatus: code, RetryAfter: c.retryAfter(resp.Header.Get("Retry-After"))}
	if code == http.StatusAccepted {
		// The body means nothing; drain a little of it so that the
		// connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, errorBodyBytes)
		res.Outcome = Accepted
		return res, nil
	}
	if code >= 200 && code <= 299 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
		if err != nil {
			return Result{}, err
		}
		if int64(len(b)) > c.maxBytes {
			return failure(Permanent, code, fmt.Sprintf("the step answered %d with a response body that exceeds %d bytes", code, c.maxBytes)), nil
		}
		return succeeded(res, b), nil
	}

	// A failure: keep the body, bounded, and see whether it overrides the
	// classification.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	complete := int64(len(b)) <= c.maxBytes
	var outcome Outcome
	msg := "the step answered " + statusText(code)
	switch {
	case code >= 300 && code <= 399:
		outcome = Permanent
		msg += ": redirects are not followed"
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500 && code <= 599:
		outcome = Retryable
	case code >= 400 && code <= 499:
		outcome = Permanent
	default:
		outcome = Permanent
		msg = fmt.Sprintf("the step answered an unexpected status %d", code)
	}
	var env struct {
		Error json.RawMessage `json:"error"`
		Retry *bool           `json:"retry"`
	}
	var errMember json.RawMessage
	if complete && isJSONObject(b) && json.Unmarshal(b, &env) == nil {
		if env.Retry != nil {
			if *env.Retry {
				outcome = Retryable
				msg += " (the step asked to be retried)"
			} else {
				outcome = Permanent
				msg += " (the step asked not to be retried)"
			}
		}
		if len(env.Error) > 0 && string(env.Error) != "null" && len(env.Error) <= errorBodyBytes {
			errMember = env.Error
		}
	}
	if said := ownWords(errMember, b, resp.Header.Get("Content-Type")); said != "" {
		msg += ": " + said
	}
	f := failureBody{Message: msg, Status: code}
	if errMember != nil {
		f.Error = errMember
	} else {
		f.Body = truncateUTF8(b, errorBodyBytes)
	}
	res.Outcome = outcome
	res.Error = f.encode()
	return res, nil
}

// succeeded classifies the complete body b of a 2xx answer other than 202.
func succeeded(res Result, b []byte) Result {
	code := res.HTTPStatus
	if len(bytes.TrimSpace(b)) == 0 {
		res.Outcome = Succeeded
		return res
	}
	var env map[string]json.RawMessage
	if !isJSONObject(b) || json.Unmarshal(b, &env) != nil {
		return failure(Permanent, code, fmt.Sprintf("the step answered %d with a body that is not a JSON object", code))
	}
	res.Output = env["output"]
	if v := env["context"]; v != nil && string(v) != "null" {
		if !isJSONObject(v) {
			return failure(Permanent, code, fmt.Sprintf("the step answered %d with a \"context\" that is not a JSON object", code))
		}
		res.Context = v
	}
	if v := env["logs"]; v != nil && string(v) != "null" {
		if first(v) != '[' {
			return failure(Permanent, code, fmt.Sprintf("the step answered %d with \"logs\" that are not a JSON array", code))
		}
		res.Logs = v
	}
	res.Outcome = Succeeded
	return res
}

// ownWords is what a failure answer says of itself, for the error's
// message, so that a run's error tells why without opening its details:
// the "error" member (errMember) when it is a string, else its "message",
// "detail" or "title" (RFC 9457), else the member as JSON; without one, the
// same members of a JSON object body, else the body as text. An HTML body
// is markup, not a message, and is quoted only in "body". The words are
// made one line of at most [ownWordsRunes] characters; empty means none.
func ownWords(errMember json.RawMessage, body []byte, contentType string) string {
	if errMember != nil {
		return oneLine(described(errMember))
	}
	body = bytes.TrimSpace(body)
	if isJSONObject(body) && json.Valid(body) {
		return oneLine(described(body))
	}
	if mediaType, _, _ := mime.ParseMediaType(contentType); mediaType == "text/html" {
		return ""
	}
	return oneLine(string(body))
}

// described is the words of v, valid JSON: a string itself, an object's
// first string member of "message", "detail" and "title", else v compacted.
func described(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(v, &members) == nil {
		for _, k := range []string{"message", "detail", "title"} {
			if json.Unmarshal(members[k], &s) == nil && strings.TrimSpace(s) != "" {
				return s
			}
		}
	}
	var compact bytes.Buffer
	if json.Compact(&compact, v) != nil {
		return ""
	}
	return compact.String()
}

// oneLine makes s fit a message: of its first 4 KiB (what "body" keeps),
// valid UTF-8, each run of white space and control characters one space,
// at most [ownWordsRunes] characters, an ellipsis marking a cut.
func oneLine(s string) string {
	s = truncateUTF8([]byte(s), errorBodyBytes)
	words := strings.FieldsFunc(strings.ToValidUTF8(s, "\uFFFD"), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	})
	s = strings.Join(words, " ")
	n := 0
	for i := range s {
		if n == ownWordsRunes {
			return strings.TrimRight(s[:i], " ") + "…"
		}
		n++
	}
	return s
}

// failureBody is the JSON form of Result.Error.
type failureBody struct {
	Message string          `json:"message"`
	Status  int             `json:"status,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
	Body    string          `json:"body,omitempty"`
}

func (f failureBody) encode() json.RawMessage {
	b, err := json.Marshal(f)
	if err != nil {
		// Only an invalid error member could fail; it was parsed already.
		f.Error = nil
		b, _ = json.Marshal(f)
	}
	return b
}

func failure(o Outcome, status int, msg string) Result {
	return Result{Outcome: o, HTTPStatus: status, Error: failureBody{Message: msg, Status: status}.encode()}
}

// describeError classifies a failed exchange and describes it without the
// URL. parent is the caller's context, attempt the attempt's.
func describeError(parent, attempt context.Context, err error, host string, timeout time.Duration) (Outcome, string) {
	var refused *refusedError
	switch {
	case errors.As(err, &refused):
		return Permanent, refused.Error()
	case attempt.Err() != nil && context.Cause(attempt) == errTimeout && parent.Err() == nil:
		return Retryable, "the step did not answer within " + timeout.String()
	case parent.Err() != nil:
		return Retryable, "the call was cancelled before the step answered"
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return Retryable, fmt.Sprintf("the step's host %s was not found", host)
		}
		return Retryable, fmt.Sprintf("the step's host %s could not be resolved", host)
	case errors.Is(err, syscall.ECONNREFUSED):
		return Retryable, fmt.Sprintf("connection refused by %s", host)
	case errors.Is(err, syscall.ECONNRESET):
		return Retryable, fmt.Sprintf("connection reset by %s", host)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Retryable, fmt.Sprintf("%s is unreachable", host)
	case errors.As(err, &certErr):
		return Retryable, fmt.Sprintf("the TLS certificate of %s is not valid: %v", host, certErr.Err)
	case errors.As(err, &recordErr):
		return Retryable, fmt.Sprintf("%s did not answer with TLS", host)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Retryable, fmt.Sprintf("%s closed the connection before answering", host)
	case errors.As(err, &netErr) && netErr.Timeout():
		return Retryable, fmt.Sprintf("the connection to %s timed out", host)
	}
	// Unwrap *url.Error, whose message holds the whole URL.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return Retryable, fmt.Sprintf("could not call %s: %v", host, err)
}

// retryAfter parses a Retry-After value: delta seconds or an HTTP date.
func (c *Client) retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(c.now())
	}
	return min(max(d, 0), maxRetryAfter)
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

func first(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func isJSONObject(b []byte) bool { return first(b) == '{' }

// truncateUTF8 returns at most n bytes of b as a string, not cutting a
// character in two.
func truncateUTF8(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[:n]
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return string(b)
}

// validToken reports whether s is an RFC 9110 token, as header names and
// methods must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s may be sent as a header value: no
// control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
