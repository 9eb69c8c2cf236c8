package workflow

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseHostileInput(t *testing.T) {
	t.Parallel()

	const sleep = `{"name": "s", "type": "sleep", "duration": "1s"}`
	big := `{"name": "x", "steps": [` + sleep + `], "description": "` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name string
		doc  string
		want []want
	}{
		{"larger than the limit", big, []want{{"", "more than the limit of 1048576 bytes"}}},
		{"deeply nested arrays", strings.Repeat("[", 100_000), []want{{strings.Repeat("/0", 32), "nesting exceeds the maximum depth of 32"}}},
		{"deeply nested arrays in an object", `{"name": "x", "steps": [` + sleep + `], "output": ` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`,
			[]want{{"/output" + strings.Repeat("/0", 31), "nesting exceeds the maximum depth of 32"}}},
		{"deeply nested objects", strings.Repeat(`{"a":`, 100_000), []want{{strings.Repeat("/a", 32), "nesting exceeds the maximum depth of 32"}}},
		{"invalid UTF-8", `{"name": "x", "description": "` + "\xff\xfe" + `", "steps": [` + sleep + `]}`,
			[]want{{"", "not valid UTF-8 (first invalid byte at offset 30)"}}},
		{"duplicate keys", `{"name": "x", "name": "y", "steps": [{"name": "s", "type": "sleep", "duration": "1s", "duration": "2s"}]}`,
			[]want{{"/name", `duplicate key "name"`}, {"/steps/0/duration", `duplicate key "duration"`}}},
		{"huge numbers", `{"name": "x", "steps": [{"name": "c", "type": "call", "url": "https://h/", "input": {"a": 1e400, "b": -1e400, "c": ` + strings.Repeat("9", 400) + `},
			"retry": {"max_attempts": 100000000000000000000000, "backoff_coefficient": 1e999}}]}`, []want{
			{"/steps/0/input/a", "number 1e400 is out of range"},
			{"/steps/0/input/b", "number -1e400 is out of range"},
			{"/steps/0/input/c", "number 9999999999999999999999999999999999999999999999999999999999999999… is out of range"},
			{"/steps/0/retry/backoff_coefficient", "number 1e999 is out of range"},
			{"/steps/0/retry/max_attempts", "from 1 to 1000"},
		}},
		{"NUL in strings and keys", `{"name": "x", "description": "a\u0000b", "steps": [{"name": "s\u0000", "type": "sleep", "duration": "1s"}], "k\u0000": 1}`, []want{
			{"/description", "NUL"},
			{"/steps/0/name", "NUL"},
			{"/k\x00", "NUL"},
			{"/steps/0/name", "must be 1 to 64 letters"},
			{"/k\x00", "unknown field"},
		}},
		{"trailing data", `{"name": "x", "steps": [` + sleep + `]} {}`, []want{{"", "unexpected data after the JSON document"}}},
		{"trailing garbage", `{"name": "x", "steps": [` + sleep + `]}x`, []want{{"", "unexpected data after the JSON document"}}},
		{"empty", ``, []want{{"", "document is empty"}}},
		{"whitespace only", " \n\t", []want{{"", "document is empty"}}},
		{"truncated", `{"name": "x", "steps": [`, []want{{"/steps", "unexpected end of input"}}},
		{"syntax error", `{"name": "x", "steps": [}`, []want{{"/steps", "invalid JSON at byte offset 24: invalid character '}'"}}},
		{"missing colon", `{"name" "x"}`, []want{{"/name", "invalid JSON"}}},
		{"byte order mark", "\ufeff{}", []want{{"", "invalid JSON"}}},
		{"lone surrogate survives as replacement", `{"name": "\ud800", "steps": [` + sleep + `]}`, []want{{"/name", "lowercase"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			requireProblems(t, problemsOf(t, tt.doc, DefaultLimits()), tt.want...)
			require.Less(t, time.Since(start), 2*time.Second)
		})
	}
}

func TestParseTooManyProblems(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`{"name": "x", "steps": [{"name": "s", "type": "sleep", "duration": "1s"}]`)
	for range 5000 {
		b.WriteString(`, "name": "x"`)
	}
	b.WriteString(`}`)
	got := problemsOf(t, b.String(), DefaultLimits())
	require.Len(t, got, maxProblems+1)
	require.Equal(t, Problem{Path: "", Message: "too many problems; only the first 1000 are listed"}, got[maxProblems])
}

// largeValidDocument is a definition close to the size limit and full of
// distinct expressions: compiling them is the expensive part of Parse.
func largeValidDocument() string {
	var b strings.Builder
	b.WriteString(`{"name": "x", "steps": [`)
	for i := range 500 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"name": "s` + strconv.Itoa(i) + `", "type": "call", "url": "https://h/", "input": {`)
		for j := range 20 {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"k` + strconv.Itoa(j) + `": "${ ctx.v` + strconv.Itoa(i*20+j) + ` + input.a * 2 > 10 ? 'x' : 'y' }"`)
		}
		b.WriteString(`}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// A document within the limits is accepted however many expressions it
// holds; how long it takes is BenchmarkParseLargeValidDocument's to say
// (a timed assertion fails on a busy machine).
func TestParseLargeValidDocument(t *testing.T) {
	t.Parallel()
	doc := largeValidDocument()
	require.Less(t, len(doc), 1<<20)
	_, err := Parse([]byte(doc), DefaultLimits())
	require.NoError(t, err)
}

func BenchmarkParseLargeValidDocument(b *testing.B) {
	doc := []byte(largeValidDocument())
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(doc, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseTooManyExpressions(t *testing.T) {
	t.Parallel()
	got := problemsOf(t, doc(`{"name": "c", "type": "call", "url": "https://h/", "input": ["${ 1 }", "${ 2 }", "${ 3 }", "${ 4 }", "${ 5 }"]}`),
		Limits{MaxExpressions: 3})
	requireProblems(t, got, want{"/steps/0/input/3", "more than 3 expressions"})
}
