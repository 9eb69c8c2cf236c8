package workflow

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Errors of [CheckStorable].
var (
	ErrNULCharacter  = errors.New(`the text contains \u0000, which PostgreSQL cannot store`)
	ErrLoneSurrogate = errors.New(`the text contains a \u escape of an unpaired UTF-16 surrogate, which is not a character`)
)

// StorableError locates JSON text that Durable cannot store faithfully.
type StorableError struct {
	Path string // RFC 6901 JSON Pointer of the offending value or key
	Err  error  // ErrNULCharacter or ErrLoneSurrogate
}

func (e *StorableError) Error() string { return e.Err.Error() }
func (e *StorableError) Unwrap() error { return e.Err }

// container is one open object or array while scanning.
type container struct {
	object bool
	index  int    // arrays: the current element
	key    string // objects: the current member
	keyed  bool   // objects: a key was read for the current member
}

// CheckStorable reports valid JSON text that Durable cannot store
// faithfully, with a *StorableError that says where: the escape \u0000
// (PostgreSQL's jsonb refuses it) and \u escapes of unpaired surrogates (a
// decoder would silently turn them into U+FFFD). b must be valid JSON.
func CheckStorable(b []byte) error {
	var stack []container
	pointer := func(extra ...string) string {
		var sb strings.Builder
		for _, c := range stack {
			sb.WriteByte('/')
			if c.object {
				sb.WriteString(escapePointerToken(c.key))
			} else {
				sb.WriteString(strconv.Itoa(c.index))
			}
		}
		for _, e := range extra {
			sb.WriteString("/" + escapePointerToken(e))
		}
		return sb.String()
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			stack = append(stack, container{object: true})
		case '[':
			stack = append(stack, container{})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			top := &stack[len(stack)-1]
			if top.object {
				top.keyed = false
			} else {
				top.index++
			}
		case '"':
			end, err := scanString(b, i)
			raw := b[i : end+1]
			isKey := len(stack) > 0 && stack[len(stack)-1].object && !stack[len(stack)-1].keyed
			if isKey {
				var key string
				_ = json.Unmarshal(raw, &key)
				top := &stack[len(stack)-1]
				top.key, top.keyed = key, true
				if err != nil {
					stack = stack[:len(stack)-1]
					return &StorableError{Path: pointer(key), Err: err}
				}
			} else if err != nil {
				return &StorableError{Path: pointer(), Err: err}
			}
			i = end
		}
	}
	return nil
}

// scanString scans the JSON string starting at b[start] (a quote) and
// returns the index of its closing quote and the first unstorable escape.
func scanString(b []byte, start int) (int, error) {
	var found error
	pendingHigh := false // the previous character was a high-surrogate escape
	for i := start + 1; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			if pendingHigh && found == nil {
				found = ErrLoneSurrogate
			}
			return i, found
		}
		if c != '\\' {
			if pendingHigh && found == nil {
				found = ErrLoneSurrogate
			}
			pendingHigh = false
			continue
		}
		i++
		if i < len(b) && b[i] == 'u' && i+4 < len(b) {
			r, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 16)
			i += 4
			if err == nil && found == nil {
				switch {
				case r == 0:
					found = ErrNULCharacter
				case r >= 0xD800 && r <= 0xDBFF:
					if pendingHigh {
						found = ErrLoneSurrogate
					}
					pendingHigh = true
					continue
				case r >= 0xDC00 && r <= 0xDFFF:
					if !pendingHigh {
						found = ErrLoneSurrogate
					}
					pendingHigh = false
					continue
				}
			}
		}
		if pendingHigh && found == nil {
			found = ErrLoneSurrogate
		}
		pendingHigh = false
	}
	return len(b) - 1, found
}

func escapePointerToken(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
