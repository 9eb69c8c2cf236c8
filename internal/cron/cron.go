// Package cron parses cron expressions and computes their fire times in an
// IANA time zone, with daylight saving time handled by an explicit policy.
//
// # Expressions
//
// [Parse] accepts the standard five fields
//
//	minute  hour  day-of-month  month  day-of-week
//	0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)
//
// Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`
// (from a to the field's maximum), or a comma-separated list of these.
// Months may be named JAN-DEC and weekdays SUN-SAT, in any case. As in Vixie
// cron, when both day-of-month and day-of-week are restricted (neither starts
// with `*`) a day matches if either matches; otherwise both must match.
//
// The descriptors @yearly (@annually), @monthly, @weekly, @daily (@midnight)
// and @hourly stand for "0 0 1 1 *", "0 0 1 * *", "0 0 * * 0", "0 0 * * *"
// and "0 * * * *". `@every <duration>` takes a Go duration of at least 1s.
//
// # Daylight saving time
//
// Fire times of a cron expression are wall-clock times in the schedule's
// zone. Each matching wall-clock time w fires once, at the first instant at
// which the zone's clock shows w or later:
//
//   - A wall-clock time that does not exist (the gap when clocks spring
//     forward) fires once, at the instant the gap ends. In
//     America/Los_Angeles on 2026-03-08, "30 2 * * *" fires at 03:00 PDT.
//     Several matching times in one gap ("*/15 2 * * *") and the time at the
//     end of the gap ("0 * * * *" at 02:00 and 03:00) share that instant and
//     fire once there: a schedule never fires twice at one instant.
//   - A wall-clock time that happens twice (the repeated hour when clocks fall
//     back) fires once, at its first occurrence, in daylight time. In
//     America/Los_Angeles on 2026-11-01, "30 1 * * *" fires at 01:30 PDT and
//     not again at 01:30 PST.
//   - Consequently a schedule that fires within the hour ("*/15 * * * *",
//     "@hourly") fires once per wall-clock time: during the first pass
//     through the repeated hour, not during the second. The repeated hour is
//     not run twice, so on a fall-back day such a schedule is idle for the
//     second pass (an hour in America/Los_Angeles, half an hour in
//     Australia/Lord_Howe), and on a spring-forward day it has fewer firings.
//
// The same rules hold for any offset change, such as Australia/Lord_Howe's
// half-hour shift (02:00 → 02:30 forward, 02:00 → 01:30 back) or a zone
// changing its standard offset.
//
// `@every d` is not wall-clock based: it fires every d of real time, at the
// instants that are whole multiples of d since 1970-01-01T00:00:00Z, whatever
// the zone and its daylight saving time.
//
// Fire times depend only on the expression, the zone and the time zone
// database, so every worker computes the same instants: they can key the
// firings of a schedule.
package cron

import (
	"math/big"
	"time"

	// Time zones must load even where the system has no zoneinfo files (slim
	// containers); the system's database is preferred when present.
	_ "time/tzdata"
)

// Search bounds. Offsets from UTC have never exceeded 26 hours in either
// direction (local mean times included), so looking 72 hours around an
// instant finds every zone period that can share its wall-clock times.
const (
	lookaround = 72 * time.Hour
	// maxPeriods bounds the zone periods examined around one instant.
	maxPeriods = 64
	// searchYears bounds the search for the next matching wall-clock time.
	// [Parse] rejects expressions that never fire; an expression that fires
	// rarely (February 29 that is also a Sunday) can wait decades, more when
	// a non-leap century year intervenes.
	searchYears = 100
)

// Schedule is a parsed cron expression in a time zone. Its methods compute
// fire times; a Schedule is immutable and safe for concurrent use.
type Schedule struct {
	expr string // normalised expression
	loc  *time.Location

	// every is the period of an @every schedule, zero for a cron expression.
	every time.Duration

	minute, hour, dom, month, dow bits
	// domStar and dowStar record that a day field starts with `*`; see
	// dayMatches.
	domStar, dowStar bool
}

// String returns the normalised expression: fields separated by single
// spaces, names in upper case, descriptors in their canonical spelling
// (@yearly, @daily) and @every with the duration as [time.Duration.String]
// prints it. Parsing it again in the same zone gives the same schedule.
func (s *Schedule) String() string { return s.expr }

// Location returns the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Every returns the period of an `@every` schedule, and false for a cron
// expression.
func (s *Schedule) Every() (time.Duration, bool) { return s.every, s.every > 0 }

// Next returns the first fire time strictly after t, as an instant in UTC.
// It returns the zero time if the schedule does not fire within 100 years of
// t (which happens only near the ends of the representable range; [Parse]
// rejects expressions that never fire).
//
// Next is monotonic: if t1 is not after t2, Next(t1) is not after Next(t2).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return nextEvery(t, s.every)
	}
	w, ok := s.nextWall(s.wallHighWater(t))
	if !ok {
		return time.Time{}
	}
	return s.resolve(w)
}

// Between returns the fire times in (from, to], in increasing order, at most
// max of them.
func (s *Schedule) Between(from, to time.Time, max int) []time.Time {
	var out []time.Time
	for t := from; len(out) < max; {
		n := s.Next(t)
		if n.IsZero() || n.After(to) {
			break
		}
		out = append(out, n)
		t = n
	}
	return out
}

// Preview returns the next n fire times after from, in increasing order;
// fewer if the schedule stops firing (see [Schedule.Next]).
func (s *Schedule) Preview(from time.Time, n int) []time.Time {
	out := make([]time.Time, 0, max(n, 0))
	for t := from; len(out) < n; {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// nextEvery returns the first whole multiple of d since the Unix epoch that
// is strictly after t. It computes in big integers: a multiple of d near the
// ends of time's range does not fit in int64 nanoseconds.
func nextEvery(t time.Time, d time.Duration) time.Time {
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(int64(time.Second)))
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	period := big.NewInt(int64(d))
	k := new(big.Int).Div(ns, period) // Euclidean: the floor, as d > 0
	k.Add(k, big.NewInt(1))
	ns.Mul(k, period)
	sec, nsec := new(big.Int).DivMod(ns, big.NewInt(int64(time.Second)), new(big.Int))
	if !sec.IsInt64() {
		return time.Time{}
	}
	return time.Unix(sec.Int64(), nsec.Int64()).UTC()
}

// Wall-clock times are handled as "naive" times: a time.Time in UTC whose
// fields are the local date and clock, e.g. 02:30 local is 02:30 UTC.

// wallHighWater returns the latest wall-clock time the zone's clock has
// shown at or before t (a supremum, to the nanosecond, when a zone period
// ended on a later clock reading than t's). A wall-clock time fires after t
// exactly when it is later than this: it has not been shown yet.
func (s *Schedule) wallHighWater(t time.Time) time.Time {
	lt := t.In(s.loc)
	_, off := lt.Zone()
	high := naive(t, off)
	// Earlier periods ended at a clock reading of end+offset (not included),
	// which after a fall back is later than the clock now.
	start, _ := lt.ZoneBounds()
	floor := t.Add(-lookaround)
	for range maxPeriods {
		if start.IsZero() || !start.After(floor) {
			break
		}
		prev := start.Add(-time.Nanosecond)
		_, poff := prev.Zone()
		if shown := naive(start, poff).Add(-time.Nanosecond); shown.After(high) {
			high = shown
		}
		start, _ = prev.ZoneBounds()
	}
	return high
}

// resolve returns the instant at which wall-clock time w fires: the first
// instant at which the zone's clock shows w or later. That is w itself when
// it occurs once, its first occurrence when it occurs twice, and the end of
// the gap when it does not occur.
func (s *Schedule) resolve(w time.Time) time.Time {
	n := w.Unix()
	u := w.Add(-lookaround).In(s.loc)
	for range maxPeriods {
		_, off := u.Zone()
		start, end := u.ZoneBounds()
		cand := n - int64(off)
		if !start.IsZero() && cand < start.Unix() {
			cand = start.Unix() // w is in the gap before this period
		}
		if end.IsZero() || cand < end.Unix() {
			return time.Unix(cand, 0).UTC()
		}
		u = end
	}
	// Not reached for real zones; fall back to the time package's choice.
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, s.loc).UTC()
}

// naive returns the wall-clock time of instant t at offset off seconds.
func naive(t time.Time, off int) time.Time {
	return t.UTC().Add(time.Duration(off) * time.Second)
}

// nextWall returns the first wall-clock time after high that matches the
// fields, or false if there is none within searchYears.
func (s *Schedule) nextWall(high time.Time) (time.Time, bool) {
	w := high.Truncate(time.Minute).Add(time.Minute)
	y, mo, d := w.Date()
	h, mi := w.Hour(), w.Minute()
	last := y + searchYears
	nextDay := func() { d, h, mi = d+1, 0, 0 }
	for y <= last {
		switch {
		case !s.month.has(int(mo)):
			y, mo, d, h, mi = nextMonth(y, mo)
		case d > daysIn(y, mo):
			y, mo, d, h, mi = nextMonth(y, mo)
		case !s.dayMatches(y, mo, d):
			nextDay()
		case !s.hour.has(h):
			if next, ok := s.hour.next(h); ok {
				h, mi = next, 0
			} else {
				nextDay()
			}
		case !s.minute.has(mi):
			if next, ok := s.minute.next(mi); ok {
				mi = next
			} else if next, ok := s.hour.next(h + 1); ok {
				h, mi = next, 0
			} else {
				nextDay()
			}
		default:
			return time.Date(y, mo, d, h, mi, 0, 0, time.UTC), true
		}
	}
	return time.Time{}, false
}

func nextMonth(y int, mo time.Month) (int, time.Month, int, int, int) {
	if mo == time.December {
		return y + 1, time.January, 1, 0, 0
	}
	return y, mo + 1, 1, 0, 0
}

// dayMatches reports whether the date matches the day fields. As in Vixie
// cron, when both day fields are restricted (neither starts with `*`), either
// may match; otherwise both must.
func (s *Schedule) dayMatches(y int, mo time.Month, d int) bool {
	domOK := s.dom.has(d)
	dowOK := s.dow.has(int(weekday(y, mo, d)))
	if !s.domStar && !s.dowStar {
		return domOK || dowOK
	}
	return domOK && dowOK
}

func daysIn(y int, mo time.Month) int {
	switch mo {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// weekday returns the day of the week of a proleptic Gregorian date.
func weekday(y int, mo time.Month, d int) time.Weekday {
	return time.Date(y, mo, d, 12, 0, 0, 0, time.UTC).Weekday()
}

// bits is a set of small integers (0-63).
type bits uint64

func (b bits) has(v int) bool { return v >= 0 && v < 64 && b&(1<<uint(v)) != 0 }

// next returns the smallest member not less than v.
func (b bits) next(v int) (int, bool) {
	for ; v < 64; v++ {
		if b.has(v) {
			return v, true
		}
	}
	return 0, false
}
