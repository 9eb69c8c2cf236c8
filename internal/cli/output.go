package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// emit writes an answer of the API: as it is with -o json, as YAML with
// -o yaml, else the human view that text writes.
func (a *app) emit(body []byte, text func(w io.Writer) error) error {
	switch a.output {
	case outputJSON:
		return a.writeJSON(body)
	case outputYAML:
		y, err := yaml.JSONToYAML(body)
		if err != nil {
			return &exitError{code: ExitAPI, err: fmt.Errorf("the API's answer is not JSON: %w", err)}
		}
		_, err = a.env.Stdout.Write(y)
		return err
	default:
		return text(a.env.Stdout)
	}
}

// writeJSON writes a JSON document on a line of its own.
func (a *app) writeJSON(body []byte) error {
	body = bytes.TrimRight(body, "\n")
	_, err := a.env.Stdout.Write(append(body, '\n'))
	return err
}

// table writes aligned columns. With colour, every cell carries escape
// codes of the same length — a status [app.paint] coloured, any other the
// default colour — since tabwriter counts them as characters.
type table struct {
	tw    *tabwriter.Writer
	color bool
}

func (a *app) newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), color: a.color}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if strings.HasPrefix(c, "\x1b[") {
			continue // painted by us
		}
		c = printable(c)
		if t.color {
			c = colorDefault + c + colorReset
		}
		cells[i] = c
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printable replaces the control characters of text that came from the
// API — a step's error, an event's key, a problem's detail, any of which a
// step endpoint or a caller may have written — so that printing it cannot
// move the cursor, recolour or retitle the user's terminal, or break a
// table's alignment.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' {
			return '\uFFFD'
		}
		return r
	}, s)
}

// Colours, each of the same length, so that painted cells align.
const (
	colorRed     = "\x1b[31m"
	colorGreen   = "\x1b[32m"
	colorYellow  = "\x1b[33m"
	colorBlue    = "\x1b[34m"
	colorCyan    = "\x1b[36m"
	colorDefault = "\x1b[39m"
	colorReset   = "\x1b[0m"
)

// statusColors colour the states of runs, steps and attempts.
var statusColors = map[string]string{
	"succeeded":           colorGreen,
	"started":             colorGreen,
	"failed":              colorRed,
	"timed_out":           colorRed,
	"compensation_failed": colorRed,
	"cancelled":           colorYellow,
	"compensated":         colorYellow,
	"compensating":        colorYellow,
	"waiting":             colorCyan,
	"abandoned":           colorYellow,
	"running":             colorBlue,
	"accepted":            colorBlue,
	"pending":             colorDefault,
}

// paint colours a status word on a terminal (where NO_COLOR is not set).
// Every status is painted, the uncoloured ones with the default colour, so
// that a column of them stays aligned in a [table].
func (a *app) paint(status string) string {
	if !a.color {
		return status
	}
	c, ok := statusColors[status]
	if !ok {
		c = colorDefault
	}
	return c + status + colorReset
}

// bold emphasises a header line on a terminal.
func (a *app) bold(s string) string {
	if !a.color {
		return s
	}
	return "\x1b[1m" + s + colorReset
}

// timestamp formats a time for a detailed view: RFC 3339 in UTC, to the
// second.
func timestamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// age formats how long ago t was, as lists show it: 45s, 12m, 3h, 2d.
func age(t time.Time, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// span formats the time between two instants, the second nil for one not
// yet reached (then now is the end).
func span(from, to *time.Time, now time.Time) string {
	if from == nil {
		return "-"
	}
	end := now
	if to != nil {
		end = *to
	}
	return duration(end.Sub(*from))
}

// duration formats a duration readably at its scale: 850ms, 1.2s, 3m4s.
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// compact formats any JSON value on one line, at most limit characters
// (0: no limit).
func compact(v any, limit int) string {
	if v == nil {
		return "-"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if limit > 0 && len([]rune(s)) > limit {
		s = string([]rune(s)[:limit-1]) + "…"
	}
	return s
}

// orDash is s, or "-" for an empty or nil one.
func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// jsonArg reads a JSON value given on the command line as flag: the JSON
// itself, @FILE for a file's contents, or - for standard input. A value
// that is not JSON is a usage error.
func (a *app) jsonArg(flag, value string) (json.RawMessage, error) {
	var raw []byte
	switch {
	case value == "-":
		b, err := io.ReadAll(a.env.Stdin)
		if err != nil {
			return nil, usageErrorf("%s: read standard input: %v", flag, err)
		}
		raw = b
	case strings.HasPrefix(value, "@"):
		b, err := os.ReadFile(value[1:])
		if err != nil {
			return nil, usageErrorf("%s: %v", flag, err)
		}
		raw = b
	default:
		raw = []byte(value)
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, usageErrorf("%s is not valid JSON (give JSON, @FILE or - for standard input)", flag)
	}
	return json.RawMessage(raw), nil
}

// readFile reads a file named on the command line, - for standard input.
func (a *app) readFile(name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(a.env.Stdin)
		if err != nil {
			return nil, usageErrorf("read standard input: %v", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return b, nil
}
