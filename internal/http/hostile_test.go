package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeExact decodes a JSON document keeping numbers as written.
func decodeExact(t *testing.T, doc []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v), "doc: %s", truncate(doc))
	return v
}

// sameValue reports whether two decoded JSON values are equal, numbers by
// their exact decimal value (1e2 is 100, but 9007199254740993 is not
// 9007199254740992), and says where they differ.
func sameValue(a, b any, at string) error {
	switch a := a.(type) {
	case json.Number:
		bn, ok := b.(json.Number)
		if !ok {
			return fmt.Errorf("%s: %v is not a number", at, b)
		}
		ra, oka := new(big.Rat).SetString(a.String())
		rb, okb := new(big.Rat).SetString(bn.String())
		if !oka || !okb || ra.Cmp(rb) != 0 {
			return fmt.Errorf("%s: %.60s is not %.60s", at, bn, a)
		}
		return nil
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(bm) != len(a) {
			return fmt.Errorf("%s: %.60v is not %.60v", at, b, a)
		}
		for k, v := range a {
			if err := sameValue(v, bm[k], at+"/"+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		bs, ok := b.([]any)
		if !ok || len(bs) != len(a) {
			return fmt.Errorf("%s: %.60v is not %.60v", at, b, a)
		}
		for i := range a {
			if err := sameValue(a[i], bs[i], fmt.Sprintf("%s/%d", at, i)); err != nil {
				return err
			}
		}
		return nil
	default:
		if a != b {
			return fmt.Errorf("%s: %q is not %q", at, fmt.Sprint(b), fmt.Sprint(a))
		}
		return nil
	}
}

// requireRoundTrip starts a run with input and checks that the run keeps
// exactly the value sent, or that the server refuses it clearly (4xx, not
// 5xx) and keeps nothing.
func requireRoundTrip(t *testing.T, b *testBundle, input string) {
	t.Helper()
	before := b.state(t)
	res := b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet", "input": `+input+`}`))
	if res.status != http.StatusCreated {
		require.True(t, res.status >= 400 && res.status < 500, "status %d: %s", res.status, truncate(res.body))
		requireProblem(t, res, res.status)
		require.Equal(t, before, b.state(t), "a refused input leaves nothing behind")
		t.Logf("refused %.60s: %s", input, truncate(res.body))
		return
	}
	var created run
	res.decode(t, &created)
	want := decodeExact(t, []byte(input))
	require.NoError(t, sameValue(want, decodeExact(t, created.Input), ""), "the answer to the start")
	require.NoError(t, sameValue(want, decodeExact(t, b.getRun(t, created.ID).Input), ""), "the stored run")
}

func TestInputRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	for name, input := range map[string]string{
		"emoji":            `{"faces": "😀👍🏽🇫🇷", "family": "👩‍👩‍👧", "astral": "𝄞􏿿"}`,
		"scripts":          `{"cjk": "漢字かなカナ", "rtl": "مرحبا بالعالم", "combining": "é", "greek": "Ωμέγα", "zalgo": "Z̷̢̛a̴l̶g̵o̸"}`,
		"escapes":          `{"escaped": "\u00e9\ud83d\ude00", "controls": "\t\n\r\b\f\u001f", "quotes": "\"'\\/", "separators": "\u2028\u2029", "bom": "\ufeff", "last BMP": "\uffff"}`,
		"unicode keys":     `{"ключ": 1, "😀": 2, "": 3, "a\"b": 4, "c/d~e": 5}`,
		"markup":           `{"html": "<script>alert(1)</script>&amp;", "url": "https://x.example/?a=1&b=<2>"}`,
		"SQL":              `{"sql": "'; DROP TABLE runs; --", "or": "\" OR 1=1 --", "comment": "*/ SELECT pg_sleep(10) /*"}`,
		"huge numbers":     `[1e400, -1e400, 1E-400, 12345678901234567890123, -12345678901234567890123, 1.7976931348623157e309]`,
		"precise numbers":  `[9007199254740993, 3.141592653589793238462643383279502884197, 0.1, 1.50, 1E2, 0.0, 100e-2, 123456789012345678901234567890.123456789]`,
		"negative zero":    `[-0, -0.0]`,
		"number in object": `{"id": 12345678901234567890123, "amount": 0.30000000000000000000001}`,
		"long string":      `"` + string(bytes.Repeat([]byte("ab"), 50_000)) + `"`,
		"wide":             `[` + string(bytes.Repeat([]byte(`{"k": [1, "s", null, true]},`), 5000)) + `0]`,
		"moderately deep":  string(bytes.Repeat([]byte("["), 1000)) + string(bytes.Repeat([]byte("]"), 1000)),
	} {
		t.Run(name, func(t *testing.T) {
			requireRoundTrip(t, b, input)
		})
	}
}

// TestInputExtremeNumbers sends numbers beyond what PostgreSQL's numeric
// (and so jsonb) can hold.
func TestInputExtremeNumbers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	for _, input := range []string{`1e200000`, `-1e200000`, `1e-20000`, `{"a": [1, 2e131072]}`} {
		t.Run(input, func(t *testing.T) {
			requireRoundTrip(t, b, input)
			b.requireHealthy(t)
		})
	}
}

// TestInputLoneSurrogate sends strings whose \u escapes are lone UTF-16
// surrogates, which name no character: the run must keep them exactly or
// refuse them, not replace them.
func TestInputLoneSurrogate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	for _, tc := range []struct{ input, escape, path string }{
		{`"\ud800"`, `\ud800`, "/input"},
		{`{"a": "x\udc00y"}`, `\udc00`, "/input/a"},
		{`["\ud83d"]`, `\ud83d`, "/input/0"},
	} {
		input, escape := tc.input, tc.escape
		t.Run(input, func(t *testing.T) {
			before := b.state(t)
			res := b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet", "input": `+input+`}`))
			if res.status == http.StatusCreated {
				// encoding/json decodes a lone surrogate as U+FFFD, so
				// only the raw text tells whether it was kept.
				var r run
				res.decode(t, &r)
				require.Contains(t, strings.ToLower(string(r.Input)), escape, "the input must be kept as sent")
				return
			}
			requireProblem(t, res, http.StatusUnprocessableEntity, tc.path)
			require.Equal(t, before, b.state(t))
		})
	}
}

// TestInputNull starts a run whose input is null, which the OpenAPI
// document treats as no input: an empty object.
func TestInputNull(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet", "input": null}`)
	require.JSONEq(t, `{}`, string(b.getRun(t, r.ID).Input))
}

func TestHostileIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	keys := []string{
		`'; DROP TABLE runs; --`,
		`" OR 1=1 --`,
		`%00`,
		`../../etc/passwd`,
		`<script>alert(1)</script>`,
		`\x00\\`,
		`*`,
		`%`,
		`_`,
	}
	created := map[string]string{}
	for _, key := range keys {
		r := b.startRun(t, `{"workflow": "greet"}`, "Idempotency-Key", key)
		require.Equal(t, key, r.IdempotencyKey)
		require.Equal(t, key, b.getRun(t, r.ID).IdempotencyKey)
		created[key] = r.ID
	}
	// Each key finds its own run again: none matches another as a pattern.
	for _, key := range keys {
		res := b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet"}`), "Idempotency-Key", key)
		require.Equal(t, http.StatusOK, res.status, "key %q: %s", key, truncate(res.body))
		var r run
		res.decode(t, &r)
		require.Equal(t, created[key], r.ID, "key %q", key)
	}
	require.Len(t, b.state(t).Runs, len(keys), "the runs table is intact and holds one run per key")
}

// TestHostileQueriesAreHarmless sends query values that are not refused
// but must be treated as plain data.
func TestHostileQueriesAreHarmless(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	b.createWorkflow(t, workflowDef("zz", "http://127.0.0.1:9000/z"))
	r := b.startRun(t, `{"workflow": "greet"}`)
	before := b.state(t)

	for _, path := range []string{
		// A semicolon is not a query separator: the part is dropped.
		"/v1/runs?limit=1;DROP%20TABLE%20runs",
		"/v1/workflows?limit=2;DELETE%20FROM%20workflows",
		// A well-formed cursor whose position is an SQL string is a position.
		"/v1/workflows?cursor=" + forgedCursor(`{"l":"workflows","n":"'; DROP TABLE workflows; --"}`),
		"/v1/runs/" + r.ID + "/history?cursor=" + forgedCursor(`{"l":"history:`+r.ID+`","s":-1}`),
		"/v1/runs?workflow=" + url.QueryEscape("greet") + "&status=pending&created_after=" + url.QueryEscape("2000-01-01T00:00:00Z"),
	} {
		res := b.do(t, http.MethodGet, path, nil)
		if res.status != http.StatusOK {
			requireProblem(t, res, http.StatusBadRequest)
		}
	}
	require.Equal(t, before, b.state(t))
	b.requireHealthy(t)
}

// TestRegexRepetitionsInDefinitions: every regular expression with a
// repetition count made cel-go v0.31 panic, and the definition was answered
// 500. They are ordinary patterns; a pattern too large is a 422.
func TestRegexRepetitionsInDefinitions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, re := range []string{`a{2}`, `a{2,}`, `(ab){3}`, `x{0}`, `^[0-9]{4}-[0-9]{2}$`} {
		def := `{"name": "re", "steps": [{"name": "c", "type": "call", "url": "https://steps.example.com/c",
			"input": {"ok": "${ 'aaaa'.matches('` + re + `') }"}}]}`
		res := b.do(t, http.MethodPost, "/v1/workflows", []byte(def))
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, res.status, "%s: %s", re, truncate(res.body))
	}
	def := `{"name": "re", "steps": [{"name": "c", "type": "call", "url": "https://steps.example.com/c",
		"input": {"ok": "${ 'aaaa'.matches('a{1000}') }"}}]}`
	p := requireProblem(t, b.do(t, http.MethodPost, "/v1/workflows", []byte(def)), http.StatusUnprocessableEntity, "/steps/0/input/ok")
	require.Contains(t, p.Errors[0].Message, "regex program size 1002 exceeds limit of 500")
	b.requireHealthy(t)
}
