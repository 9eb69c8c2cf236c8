package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonKind is the JSON type of a [node].
type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

func (k jsonKind) String() string {
	switch k {
	case jsonNull:
		return "null"
	case jsonBool:
		return "a boolean"
	case jsonNumber:
		return "a number"
	case jsonString:
		return "a string"
	case jsonArray:
		return "an array"
	default:
		return "an object"
	}
}

// node is one value of a definition document. Unlike the map[string]any that
// encoding/json produces, it keeps object members in document order and
// numbers exactly as written, which validation messages and the canonical
// form both need.
type node struct {
	kind    jsonKind
	text    string // a string's value, or a number's literal as written
	num     any    // a number's value as int64 or float64, see numberValue
	boolean bool
	members []member // object members in document order, without duplicates
	elems   []*node
}

type member struct {
	key string
	val *node
}

// errAbort stops decoding after a problem that leaves nothing sensible to
// continue with (a syntax error, or nesting beyond the limit). The problem
// itself has already been recorded.
var errAbort = errors.New("abort")

// decodeDocument decodes doc into a tree, recording problems in ps. It
// returns nil when the document cannot be decoded at all.
//
// It works token by token so that it can refuse nesting beyond maxDepth
// before building anything (a megabyte of "[" costs a few dozen tokens, not a
// deep recursion) and report duplicate keys, which encoding/json silently
// resolves in favour of the last one.
func decodeDocument(doc []byte, maxDepth int, ps *problems) *node {
	if !utf8.Valid(doc) {
		ps.add("", "document is not valid UTF-8 (first invalid byte at offset %d)", invalidUTF8Offset(doc))
		return nil
	}
	d := &docDecoder{dec: json.NewDecoder(bytes.NewReader(doc)), maxDepth: maxDepth, ps: ps}
	d.dec.UseNumber()
	tok, err := d.dec.Token()
	if err == io.EOF {
		ps.add("", "document is empty")
		return nil
	}
	if err != nil {
		d.syntaxError("", err)
		return nil
	}
	n, err := d.value(tok, "", 1)
	if err != nil {
		return nil
	}
	if _, err := d.dec.Token(); err != io.EOF {
		ps.add("", "unexpected data after the JSON document (at byte offset %d)", d.dec.InputOffset())
		return nil
	}
	return n
}

type docDecoder struct {
	dec      *json.Decoder
	maxDepth int
	ps       *problems
}

func (d *docDecoder) value(tok json.Token, path string, depth int) (*node, error) {
	switch t := tok.(type) {
	case json.Delim:
		if t != '{' && t != '[' {
			// json.Decoder reports a misplaced delimiter as a syntax
			// error itself; this is only a guard.
			d.ps.add(path, "unexpected %q", string(t))
			return nil, errAbort
		}
		if depth > d.maxDepth {
			d.ps.add(path, "nesting exceeds the maximum depth of %d", d.maxDepth)
			return nil, errAbort
		}
		if t == '{' {
			return d.object(path, depth)
		}
		return d.array(path, depth)
	case string:
		if strings.IndexByte(t, 0) >= 0 {
			// PostgreSQL can store NUL neither in text nor in jsonb, so a
			// definition containing one could be accepted but never saved.
			d.ps.add(path, "string must not contain a NUL character (\\u0000)")
		}
		return &node{kind: jsonString, text: t}, nil
	case json.Number:
		num, err := numberValue(string(t))
		if err != nil {
			d.ps.add(path, "%v", err)
		}
		return &node{kind: jsonNumber, text: string(t), num: num}, nil
	case bool:
		return &node{kind: jsonBool, boolean: t}, nil
	case nil:
		return &node{kind: jsonNull}, nil
	default:
		d.ps.add(path, "unexpected JSON token %v", t)
		return nil, errAbort
	}
}

func (d *docDecoder) object(path string, depth int) (*node, error) {
	n := &node{kind: jsonObject}
	var seen map[string]bool
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			d.syntaxError(path, err)
			return nil, errAbort
		}
		key, ok := tok.(string)
		if !ok {
			d.ps.add(path, "object key must be a string")
			return nil, errAbort
		}
		mpath := pointer(path, key)
		if strings.IndexByte(key, 0) >= 0 {
			d.ps.add(mpath, "key must not contain a NUL character (\\u0000)")
		}
		tok, err = d.dec.Token()
		if err != nil {
			d.syntaxError(mpath, err)
			return nil, errAbort
		}
		val, err := d.value(tok, mpath, depth+1)
		if err != nil {
			return nil, err
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		if seen[key] {
			d.ps.add(mpath, "duplicate key %s", quote(key))
			continue
		}
		seen[key] = true
		n.members = append(n.members, member{key: key, val: val})
	}
	if _, err := d.dec.Token(); err != nil {
		d.syntaxError(path, err)
		return nil, errAbort
	}
	return n, nil
}

func (d *docDecoder) array(path string, depth int) (*node, error) {
	n := &node{kind: jsonArray}
	for d.dec.More() {
		epath := pointerAt(path, len(n.elems))
		tok, err := d.dec.Token()
		if err != nil {
			d.syntaxError(epath, err)
			return nil, errAbort
		}
		val, err := d.value(tok, epath, depth+1)
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, val)
	}
	if _, err := d.dec.Token(); err != nil {
		d.syntaxError(path, err)
		return nil, errAbort
	}
	return n, nil
}

func (d *docDecoder) syntaxError(path string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		d.ps.add(path, "invalid JSON: unexpected end of input")
		return
	}
	if serr, ok := errors.AsType[*json.SyntaxError](err); ok {
		d.ps.add(path, "invalid JSON at byte offset %d: %s", serr.Offset, serr.Error())
		return
	}
	d.ps.add(path, "invalid JSON: %v", err)
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// field returns the value of the object member key, or nil.
func (n *node) field(key string) *node {
	for _, m := range n.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// appendCanonical appends the canonical form of n: object members sorted by
// key (bytewise, which for UTF-8 is code point order), no insignificant
// whitespace, numbers exactly as written and strings escaped minimally.
func (n *node) appendCanonical(b []byte) []byte {
	switch n.kind {
	case jsonNull:
		return append(b, "null"...)
	case jsonBool:
		return strconv.AppendBool(b, n.boolean)
	case jsonNumber:
		return append(b, n.text...)
	case jsonString:
		return appendJSONString(b, n.text)
	case jsonArray:
		b = append(b, '[')
		for i, e := range n.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendCanonical(b)
		}
		return append(b, ']')
	default:
		sorted := slices.Clone(n.members)
		slices.SortFunc(sorted, func(x, y member) int { return strings.Compare(x.key, y.key) })
		b = append(b, '{')
		for i, m := range sorted {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, m.key)
			b = append(b, ':')
			b = m.val.appendCanonical(b)
		}
		return append(b, '}')
	}
}

// appendJSONString escapes only what JSON requires: the quote, the backslash
// and control characters. Everything else, including non-ASCII text, is
// written as is, so one string has exactly one canonical spelling.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b = append(b, '\\', '"')
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// literal converts n to the value model of [DecodeJSON].
func (n *node) literal() any {
	switch n.kind {
	case jsonNull:
		return nil
	case jsonBool:
		return n.boolean
	case jsonNumber:
		return n.num
	case jsonString:
		return n.text
	case jsonArray:
		out := make([]any, len(n.elems))
		for i, e := range n.elems {
			out[i] = e.literal()
		}
		return out
	default:
		out := make(map[string]any, len(n.members))
		for _, m := range n.members {
			out[m.key] = m.val.literal()
		}
		return out
	}
}

// DecodeJSON decodes one JSON document into plain Go values: map[string]any,
// []any, string, bool, nil, and numbers as int64 when their value is an
// integer that fits, float64 otherwise. This is the value model that
// [Activation] expects and that [Expr.Eval] returns, and it makes
// input.user_id == 42 true whether the document said 42 or 42.0.
//
// Data after the document, and numbers beyond the range of float64, are
// errors.
func DecodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode json: unexpected data after the document")
	}
	v, _, err := normalize(v)
	if err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	return v, nil
}

// normalize converts json.Number and integral float64 values anywhere in v
// to the number model of [DecodeJSON]. It copies only the maps and slices it
// has to change and reports whether it changed anything, so values that are
// already normal cost one walk and no allocation.
func normalize(v any) (any, bool, error) {
	switch v := v.(type) {
	case json.Number:
		n, err := numberValue(string(v))
		return n, true, err
	case float64:
		n := normalizeFloat(v)
		_, isFloat := n.(float64)
		return n, !isFloat, nil
	case map[string]any:
		var out map[string]any
		for k, e := range v {
			ne, changed, err := normalize(e)
			if err != nil {
				return nil, false, err
			}
			if changed {
				if out == nil {
					out = maps.Clone(v)
				}
				out[k] = ne
			}
		}
		if out == nil {
			return v, false, nil
		}
		return out, true, nil
	case []any:
		var out []any
		for i, e := range v {
			ne, changed, err := normalize(e)
			if err != nil {
				return nil, false, err
			}
			if changed {
				if out == nil {
					out = slices.Clone(v)
				}
				out[i] = ne
			}
		}
		if out == nil {
			return v, false, nil
		}
		return out, true, nil
	default:
		return v, false, nil
	}
}

// numberValue converts a JSON number literal to int64 when its value is an
// integer in the int64 range, and to float64 otherwise.
func numberValue(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("number %s is out of range", abbrev(s))
	}
	return normalizeFloat(f), nil
}

// normalizeFloat returns f as an int64 when it is integral and in range.
// The bounds are exact powers of two, so the comparisons are exact too.
func normalizeFloat(f float64) any {
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f)
	}
	return f
}

// abbrev shortens s for use in a message: user-supplied text of any length
// must not make a problem list larger than the document it describes.
func abbrev(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quote abbreviates and quotes s for a message.
func quote(s string) string {
	return strconv.Quote(abbrev(s))
}
