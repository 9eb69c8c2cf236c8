package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// parsePages parses each page's template together with the layout and the
// shared parts: a page is the template named "layout", its content the
// page file's "content".
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("parse dashboard layout: %w", err)
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string]*template.Template)
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" || name == "parts" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("parse dashboard page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

var funcs = template.FuncMap{
	"pretty":   pretty,
	"ts":       timestamp,
	"inzone":   inZone,
	"ago":      ago,
	"duration": duration,
	"count":    countLabel,
	"has":      func(m map[string]bool, k string) bool { return m[k] },
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}

// pretty indents JSON for reading; what is not JSON is shown as it is.
func pretty(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func deref(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil {
			return time.Time{}, false
		}
		return *t, true
	}
	return time.Time{}, false
}

// timestamp is a time in UTC, to the second, as the API shows times.
func timestamp(v any) string {
	t, ok := deref(v)
	if !ok {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// inZone is a time in a schedule's zone, with the zone's abbreviation.
func inZone(v any, zone string) string {
	t, ok := deref(v)
	if !ok {
		return ""
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return timestamp(t)
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

func ago(v any) string {
	t, ok := deref(v)
	if !ok {
		return ""
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + duration(-d)
	}
	return duration(d) + " ago"
}

// duration is a duration rounded for people: 850ms, 12s, 3m20s, 5h2m.
func duration(v any) string {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case int64:
		d = time.Duration(x)
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

// countLabel shows a bounded count: at its bound, "10,000+".
func countLabel(n, bound int) string {
	if n >= bound {
		return thousands(bound-1) + "+"
	}
	return thousands(n)
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
