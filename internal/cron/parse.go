package cron

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// descriptors maps each descriptor to its canonical spelling and the
// expression it stands for.
var descriptors = map[string]struct{ name, expr string }{
	"@yearly":   {"@yearly", "0 0 1 1 *"},
	"@annually": {"@yearly", "0 0 1 1 *"},
	"@monthly":  {"@monthly", "0 0 1 * *"},
	"@weekly":   {"@weekly", "0 0 * * 0"},
	"@daily":    {"@daily", "0 0 * * *"},
	"@midnight": {"@daily", "0 0 * * *"},
	"@hourly":   {"@hourly", "0 * * * *"},
}

// Parse parses a cron expression in the IANA time zone tz ("UTC" when tz is
// empty). The expression is five fields, a descriptor such as @daily, or
// `@every <duration>`; the package documentation gives the syntax. Errors are
// messages for the person who wrote the expression, such as
// `minute field "61": value out of range 0-59` or
// `unknown time zone "Mars/Base"`. Expressions that can never fire, such as
// "0 0 30 2 *", are errors too.
func Parse(expr, tz string) (*Schedule, error) {
	loc, err := loadLocation(tz)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(expr)
	if len(fields) == 0 {
		return nil, errors.New("empty cron expression")
	}
	if strings.HasPrefix(fields[0], "@") {
		return parseDescriptor(fields, loc)
	}
	if len(fields) != 5 {
		return nil, fmt.Errorf("expected 5 fields (minute hour day-of-month month day-of-week), got %d in %q", len(fields), strings.Join(fields, " "))
	}
	s := &Schedule{loc: loc}
	for i, spec := range []struct {
		f   field
		dst *bits
	}{
		{minuteField, &s.minute},
		{hourField, &s.hour},
		{domField, &s.dom},
		{monthField, &s.month},
		{dowField, &s.dow},
	} {
		if *spec.dst, err = spec.f.parse(fields[i]); err != nil {
			return nil, err
		}
		fields[i] = strings.ToUpper(fields[i])
	}
	s.domStar = strings.HasPrefix(fields[2], "*")
	s.dowStar = strings.HasPrefix(fields[4], "*")
	s.expr = strings.Join(fields, " ")
	if err := s.checkFires(fields); err != nil {
		return nil, err
	}
	return s, nil
}

func loadLocation(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if tz == "Local" {
		// The machine's zone differs between workers.
		return nil, fmt.Errorf("unknown time zone %q: name an IANA time zone such as \"Europe/Paris\"", tz)
	}
	if loc, ok := zones.Load(tz); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", tz)
	}
	zones.Store(tz, loc)
	return loc, nil
}

// zones caches loaded time zones by name: loading one reads and decodes a
// file, and schedules are parsed again and again. Only names that loaded are
// kept, so the cache is bounded by the time zone database.
var zones sync.Map // string → *time.Location

func parseDescriptor(fields []string, loc *time.Location) (*Schedule, error) {
	name := strings.ToLower(fields[0])
	if name == "@every" {
		if len(fields) != 2 {
			return nil, errors.New(`@every needs one duration, e.g. "@every 5m" or "@every 1h30m"`)
		}
		d, err := time.ParseDuration(fields[1])
		if err != nil {
			return nil, fmt.Errorf("@every: invalid duration %q (want a duration such as 90s, 5m or 1h30m)", fields[1])
		}
		if d < time.Second {
			return nil, fmt.Errorf("@every: duration must be at least 1s, got %s", d)
		}
		return &Schedule{expr: "@every " + d.String(), loc: loc, every: d}, nil
	}
	desc, ok := descriptors[name]
	if !ok {
		return nil, fmt.Errorf("unknown descriptor %q (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)", fields[0])
	}
	if len(fields) != 1 {
		return nil, fmt.Errorf("descriptor %s takes no fields, got %q", desc.name, strings.Join(fields, " "))
	}
	s, err := Parse(desc.expr, "")
	if err != nil {
		panic("cron: bad descriptor expression: " + err.Error())
	}
	s.loc, s.expr = loc, desc.name
	return s, nil
}

// checkFires returns an error if the day fields never match a date. Weekday
// and leap-year combinations repeat every 28 years within a century, so a
// date that can match matches between 2000 and 2027.
func (s *Schedule) checkFires(fields []string) error {
	if s.domStar || s.dowStar { // both day fields must match
		possible := false
		for mo := time.January; mo <= time.December && !possible; mo++ {
			if s.month.has(int(mo)) {
				next, ok := s.dom.next(1)
				possible = ok && next <= daysIn(2000, mo)
			}
		}
		if !possible {
			return fmt.Errorf("day-of-month field %q never occurs in month field %q (like February 30): the expression never fires", fields[2], fields[3])
		}
	}
	for y := 2000; y < 2028; y++ {
		for mo := time.January; mo <= time.December; mo++ {
			if !s.month.has(int(mo)) {
				continue
			}
			for d := 1; d <= daysIn(y, mo); d++ {
				if s.dayMatches(y, mo, d) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("day-of-month field %q, month field %q and day-of-week field %q never match together: the expression never fires", fields[2], fields[3], fields[4])
}

// field describes one of the five fields.
type field struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
	// sunday7 allows 7 for Sunday, stored as 0.
	sunday7 bool
}

var (
	minuteField = field{name: "minute", min: 0, max: 59}
	hourField   = field{name: "hour", min: 0, max: 23}
	domField    = field{name: "day-of-month", min: 1, max: 31}
	monthField  = field{name: "month", min: 1, max: 12, names: []string{
		"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	dowField = field{name: "day-of-week", min: 0, max: 6, sunday7: true, names: []string{
		"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
)

// parse parses the field's text s: a comma-separated list of
// `*`, values, ranges and steps.
func (f field) parse(s string) (bits, error) {
	var set bits
	for item := range strings.SplitSeq(s, ",") {
		b, err := f.parseItem(s, item)
		if err != nil {
			return 0, err
		}
		set |= b
	}
	return set, nil
}

func (f field) parseItem(whole, item string) (bits, error) {
	fail := func(format string, args ...any) (bits, error) {
		return 0, fmt.Errorf("%s field %q: %s", f.name, whole, fmt.Sprintf(format, args...))
	}
	if item == "" {
		return fail("empty list item")
	}
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 {
			return fail("step %q must be a whole number of at least 1", stepText)
		}
		step = n
	}
	var lo, hi int
	switch loText, hiText, isRange := strings.Cut(rng, "-"); {
	case rng == "*":
		lo, hi = f.min, f.max
	case isRange:
		var err error
		if lo, err = f.value(whole, item, loText); err != nil {
			return 0, err
		}
		if hi, err = f.value(whole, item, hiText); err != nil {
			return 0, err
		}
		if lo > hi {
			return fail("range %s-%s goes backwards", loText, hiText)
		}
	default:
		var err error
		if lo, err = f.value(whole, item, rng); err != nil {
			return 0, err
		}
		hi = lo
		if hasStep { // a/n: from a to the end, as `*` ends
			hi = max(f.max, lo)
		}
	}
	var set bits
	for v := lo; v <= hi; v += step {
		if f.sunday7 && v == 7 {
			set |= 1 // Sunday
		} else {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

// value parses one number or name of the field.
func (f field) value(whole, item, text string) (int, error) {
	top := f.max
	if f.sunday7 {
		top = 7
	}
	if text == "" {
		return 0, fmt.Errorf("%s field %q: missing value in %q", f.name, whole, item)
	}
	if strings.Trim(text, "0123456789") == "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < f.min || n > top {
			if text == whole {
				return 0, fmt.Errorf("%s field %q: value out of range %d-%d", f.name, whole, f.min, top)
			}
			return 0, fmt.Errorf("%s field %q: value %s out of range %d-%d", f.name, whole, text, f.min, top)
		}
		return n, nil
	}
	for i, name := range f.names {
		if strings.EqualFold(text, name) {
			return f.min + i, nil
		}
	}
	if len(f.names) > 0 {
		return 0, fmt.Errorf("%s field %q: invalid value %q (want %d-%d or %s-%s)", f.name, whole, text, f.min, top, f.names[0], f.names[len(f.names)-1])
	}
	return 0, fmt.Errorf("%s field %q: invalid value %q (want %d-%d)", f.name, whole, text, f.min, top)
}
