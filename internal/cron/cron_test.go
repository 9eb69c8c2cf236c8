package cron

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	losAngeles = "America/Los_Angeles"
	london     = "Europe/London"
	lordHowe   = "Australia/Lord_Howe"
)

// Transitions in 2026 (instants in UTC):
//
//	America/Los_Angeles  03-08 10:00 02:00 PST → 03:00 PDT   11-01 09:00 02:00 PDT → 01:00 PST
//	Europe/London        03-29 01:00 01:00 GMT → 02:00 BST   10-25 01:00 02:00 BST → 01:00 GMT
//	Australia/Lord_Howe  10-03 15:30 02:00 +1030 → 02:30 +11  04-04 15:00 02:00 +11 → 01:30 +1030

func mustParse(t testing.TB, expr, tz string) *Schedule {
	t.Helper()
	s, err := Parse(expr, tz)
	require.NoError(t, err)
	return s
}

func utc(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v.UTC()
}

func formatAll(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, v := range ts {
		out[i] = v.Format(time.RFC3339)
	}
	return out
}

func TestPreviewAcrossDST(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name       string
		expr, tz   string
		from       string
		want       []string // UTC
		wantLocals []string // the same, on the zone's clock
	}{
		{
			name: "LA spring forward: daily 02:30 fires at 03:00 PDT on the day it does not exist",
			expr: "30 2 * * *", tz: losAngeles, from: "2026-03-06T12:00:00Z",
			want:       []string{"2026-03-07T10:30:00Z", "2026-03-08T10:00:00Z", "2026-03-09T09:30:00Z"},
			wantLocals: []string{"03-07 02:30 PST", "03-08 03:00 PDT", "03-09 02:30 PDT"},
		},
		{
			name: "LA spring forward: daily 01:30 is unaffected",
			expr: "30 1 * * *", tz: losAngeles, from: "2026-03-06T12:00:00Z",
			want:       []string{"2026-03-07T09:30:00Z", "2026-03-08T09:30:00Z", "2026-03-09T08:30:00Z"},
			wantLocals: []string{"03-07 01:30 PST", "03-08 01:30 PST", "03-09 01:30 PDT"},
		},
		{
			name: "LA fall back: daily 01:30 fires once, at 01:30 PDT",
			expr: "30 1 * * *", tz: losAngeles, from: "2026-10-30T12:00:00Z",
			want:       []string{"2026-10-31T08:30:00Z", "2026-11-01T08:30:00Z", "2026-11-02T09:30:00Z"},
			wantLocals: []string{"10-31 01:30 PDT", "11-01 01:30 PDT", "11-02 01:30 PST"},
		},
		{
			name: "LA fall back: daily 02:30 is unaffected",
			expr: "30 2 * * *", tz: losAngeles, from: "2026-10-30T12:00:00Z",
			want:       []string{"2026-10-31T09:30:00Z", "2026-11-01T10:30:00Z", "2026-11-02T10:30:00Z"},
			wantLocals: []string{"10-31 02:30 PDT", "11-01 02:30 PST", "11-02 02:30 PST"},
		},
		{
			name: "LA spring forward: every quarter of 02:00 fires once, at 03:00 PDT",
			expr: "*/15 2 * * *", tz: losAngeles, from: "2026-03-07T11:00:00Z",
			want:       []string{"2026-03-08T10:00:00Z", "2026-03-09T09:00:00Z"},
			wantLocals: []string{"03-08 03:00 PDT", "03-09 02:00 PDT"},
		},
		{
			name: "LA spring forward: hourly maps 02:00 onto 03:00 and fires there once",
			expr: "0 * * * *", tz: losAngeles, from: "2026-03-08T07:30:00Z",
			want:       []string{"2026-03-08T08:00:00Z", "2026-03-08T09:00:00Z", "2026-03-08T10:00:00Z", "2026-03-08T11:00:00Z"},
			wantLocals: []string{"03-08 00:00 PST", "03-08 01:00 PST", "03-08 03:00 PDT", "03-08 04:00 PDT"},
		},
		{
			name: "LA fall back: hourly runs the repeated hour once",
			expr: "@hourly", tz: losAngeles, from: "2026-11-01T06:30:00Z",
			want:       []string{"2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z", "2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z"},
			wantLocals: []string{"11-01 00:00 PDT", "11-01 01:00 PDT", "11-01 02:00 PST", "11-01 03:00 PST"},
		},
		{
			name: "London spring forward: daily 01:30 fires at 02:00 BST",
			expr: "30 1 * * *", tz: london, from: "2026-03-27T12:00:00Z",
			want:       []string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
			wantLocals: []string{"03-28 01:30 GMT", "03-29 02:00 BST", "03-30 01:30 BST"},
		},
		{
			name: "London spring forward: daily 02:30 exists",
			expr: "30 2 * * *", tz: london, from: "2026-03-27T12:00:00Z",
			want:       []string{"2026-03-28T02:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T01:30:00Z"},
			wantLocals: []string{"03-28 02:30 GMT", "03-29 02:30 BST", "03-30 02:30 BST"},
		},
		{
			name: "London fall back: daily 01:30 fires once, at 01:30 BST",
			expr: "30 1 * * *", tz: london, from: "2026-10-23T12:00:00Z",
			want:       []string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
			wantLocals: []string{"10-24 01:30 BST", "10-25 01:30 BST", "10-26 01:30 GMT"},
		},
		{
			name: "Lord Howe fall back (02:00 → 01:30): daily 01:30 fires once, at 01:30 +11",
			expr: "30 1 * * *", tz: lordHowe, from: "2026-04-03T00:00:00Z",
			want:       []string{"2026-04-03T14:30:00Z", "2026-04-04T14:30:00Z", "2026-04-05T15:00:00Z"},
			wantLocals: []string{"04-04 01:30 +11", "04-05 01:30 +11", "04-06 01:30 +1030"},
		},
		{
			name: "Lord Howe fall back: daily 01:15 is before the repeated half hour",
			expr: "15 1 * * *", tz: lordHowe, from: "2026-04-03T00:00:00Z",
			want:       []string{"2026-04-03T14:15:00Z", "2026-04-04T14:15:00Z", "2026-04-05T14:45:00Z"},
			wantLocals: []string{"04-04 01:15 +11", "04-05 01:15 +11", "04-06 01:15 +1030"},
		},
		{
			name: "Lord Howe fall back: daily 02:30 is unaffected",
			expr: "30 2 * * *", tz: lordHowe, from: "2026-04-03T00:00:00Z",
			want:       []string{"2026-04-03T15:30:00Z", "2026-04-04T16:00:00Z", "2026-04-05T16:00:00Z"},
			wantLocals: []string{"04-04 02:30 +11", "04-05 02:30 +1030", "04-06 02:30 +1030"},
		},
		{
			name: "Lord Howe spring forward (02:00 → 02:30): daily 02:30 exists, at the end of the gap",
			expr: "30 2 * * *", tz: lordHowe, from: "2026-10-02T00:00:00Z",
			want:       []string{"2026-10-02T16:00:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:30:00Z"},
			wantLocals: []string{"10-03 02:30 +1030", "10-04 02:30 +11", "10-05 02:30 +11"},
		},
		{
			name: "Lord Howe spring forward: 02:15 and 02:30 share the gap's end and fire once",
			expr: "15,30 2 * * *", tz: lordHowe, from: "2026-10-02T00:00:00Z",
			want:       []string{"2026-10-02T15:45:00Z", "2026-10-02T16:00:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"},
			wantLocals: []string{"10-03 02:15 +1030", "10-03 02:30 +1030", "10-04 02:30 +11", "10-05 02:15 +11"},
		},
		{
			name: "@every is real time, aligned to the epoch, whatever the zone",
			expr: "@every 1h", tz: losAngeles, from: "2026-11-01T07:30:00Z",
			want:       []string{"2026-11-01T08:00:00Z", "2026-11-01T09:00:00Z", "2026-11-01T10:00:00Z"},
			wantLocals: []string{"11-01 01:00 PDT", "11-01 01:00 PST", "11-01 02:00 PST"},
		},
		{
			name: "@every 25m is aligned to multiples of 25 minutes since 1970",
			expr: "@every 25m", tz: lordHowe, from: "2026-01-01T00:00:00Z", // 29,453,760 minutes since 1970
			want:       []string{"2026-01-01T00:15:00Z", "2026-01-01T00:40:00Z"},
			wantLocals: []string{"01-01 11:15 +11", "01-01 11:40 +11"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			s := mustParse(t, tc.expr, tc.tz)
			got := s.Preview(utc(t, tc.from), len(tc.want))
			require.Equal(t, tc.want, formatAll(got))

			locals := make([]string, len(got))
			for i, v := range got {
				require.Equal(t, time.UTC, v.Location())
				locals[i] = v.In(s.Location()).Format("01-02 15:04 MST")
			}
			require.Equal(t, tc.wantLocals, locals)
		})
	}
}

// A daily job fires exactly once on each local day around every transition,
// never twice and never not at all.
func TestDailyFiresOncePerDay(t *testing.T) {
	t.Parallel()

	transitions := []struct {
		tz   string
		date string
	}{
		{losAngeles, "2026-03-08"}, {losAngeles, "2026-11-01"},
		{london, "2026-03-29"}, {london, "2026-10-25"},
		{lordHowe, "2026-04-05"}, {lordHowe, "2026-10-04"},
	}
	for _, tr := range transitions {
		for _, expr := range []string{"30 2 * * *", "30 1 * * *", "0 2 * * *", "0 1 * * *", "45 1 * * *", "15 2 * * *", "59 1 * * *"} {
			t.Run(tr.tz+" "+tr.date+" "+expr, func(t *testing.T) {
				t.Parallel()

				s := mustParse(t, expr, tr.tz)
				day, err := time.ParseInLocation(time.DateOnly, tr.date, s.Location())
				require.NoError(t, err)
				from := day.AddDate(0, 0, -3)
				to := day.AddDate(0, 0, 4) // local midnight, exclusive of the 4th day's firing
				got := s.Between(from, to, 100)

				var dates []string
				for _, v := range got {
					dates = append(dates, v.In(s.Location()).Format(time.DateOnly))
				}
				var want []string
				for d := -3; d < 4; d++ {
					want = append(want, day.AddDate(0, 0, d).Format(time.DateOnly))
				}
				require.Equal(t, want, dates, "fire times %v", formatAll(got))
			})
		}
	}
}

// On a fall-back day, a quarter-hourly schedule fires at every quarter-hour
// wall time exactly once: no wall time twice, no instant twice. On a
// spring-forward day the quarters in the gap collapse onto its end.
func TestQuarterHourlyOnTransitionDays(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		tz, date string
		fires    int // firings during the local day
		missing  []string
	}{
		{losAngeles, "2026-11-01", 96, nil},
		{london, "2026-10-25", 96, nil},
		{lordHowe, "2026-04-05", 96, nil},
		{losAngeles, "2026-03-08", 92, []string{"02:00", "02:15", "02:30", "02:45"}},
		{london, "2026-03-29", 92, []string{"01:00", "01:15", "01:30", "01:45"}},
		{lordHowe, "2026-10-04", 94, []string{"02:00", "02:15"}},
	} {
		t.Run(tc.tz+" "+tc.date, func(t *testing.T) {
			t.Parallel()

			s := mustParse(t, "*/15 * * * *", tc.tz)
			day, err := time.ParseInLocation(time.DateOnly, tc.date, s.Location())
			require.NoError(t, err)
			got := s.Between(day.Add(-time.Nanosecond), day.AddDate(0, 0, 1).Add(-time.Nanosecond), 1000)
			require.Len(t, got, tc.fires)

			instants := map[time.Time]bool{}
			walls := map[string]bool{}
			for i, v := range got {
				require.False(t, instants[v], "instant %s twice", v)
				instants[v] = true
				wall := v.In(s.Location()).Format("15:04")
				require.False(t, walls[wall], "wall time %s twice", wall)
				walls[wall] = true
				if i > 0 {
					require.True(t, v.After(got[i-1]))
				}
			}
			var missing []string
			for m := 0; m < 24*60; m += 15 {
				if w := fmt.Sprintf("%02d:%02d", m/60, m%60); !walls[w] {
					missing = append(missing, w)
				}
			}
			require.Equal(t, tc.missing, missing)
		})
	}
}

func TestNextIsStrictlyAfter(t *testing.T) {
	t.Parallel()

	s := mustParse(t, "30 2 * * *", losAngeles)
	fire := utc(t, "2026-03-08T10:00:00Z") // 02:30 does not exist; 03:00 PDT
	require.Equal(t, fire, s.Next(fire.Add(-time.Nanosecond)))
	require.Equal(t, utc(t, "2026-03-09T09:30:00Z"), s.Next(fire))
	require.Equal(t, fire, s.Next(utc(t, "2026-03-08T09:59:59Z")))

	// After the first 01:30 on a fall-back day, the second 01:30 does not fire.
	s = mustParse(t, "30 1 * * *", losAngeles)
	first, second := utc(t, "2026-11-01T08:30:00Z"), utc(t, "2026-11-01T09:30:00Z")
	require.Equal(t, first, s.Next(first.Add(-time.Second)))
	require.Equal(t, utc(t, "2026-11-02T09:30:00Z"), s.Next(first))
	require.Equal(t, utc(t, "2026-11-02T09:30:00Z"), s.Next(second.Add(-time.Second)))

	e := mustParse(t, "@every 10s", "")
	require.Equal(t, utc(t, "2026-01-01T00:00:10Z"), e.Next(utc(t, "2026-01-01T00:00:00Z")))
	require.Equal(t, utc(t, "2026-01-01T00:00:00Z"), e.Next(utc(t, "2025-12-31T23:59:59.999999999Z")))
	require.Equal(t, utc(t, "1969-12-31T23:59:50Z"), e.Next(utc(t, "1969-12-31T23:59:41Z")))
}

func TestDayOfMonthOrDayOfWeek(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		expr string
		want []string // dates from 2026-02-01 (a Sunday)
	}{
		// Both restricted: either matches (13ths and Fridays).
		{"0 0 13 * FRI", []string{"2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27", "2026-03-06", "2026-03-13"}},
		// Day-of-week starts with `*`: both must match (Sundays).
		{"0 0 1-31 * */7", []string{"2026-02-01", "2026-02-08", "2026-02-15", "2026-02-22", "2026-03-01", "2026-03-08"}},
		// Day-of-month starts with `*`: both must match.
		{"0 0 */2 * MON", []string{"2026-02-09", "2026-02-23", "2026-03-09", "2026-03-23", "2026-04-13", "2026-04-27"}},
		{"0 0 * * MON", []string{"2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23", "2026-03-02", "2026-03-09"}},
		{"0 0 31 * *", []string{"2026-03-31", "2026-05-31", "2026-07-31", "2026-08-31", "2026-10-31", "2026-12-31"}},
		{"0 0 29 2 *", []string{"2028-02-29", "2032-02-29", "2036-02-29", "2040-02-29", "2044-02-29", "2048-02-29"}},
		{"0 0 29 FEB */7", []string{"2032-02-29", "2060-02-29", "2088-02-29", "2128-02-29", "2156-02-29", "2184-02-29"}},
		{"@weekly", []string{"2026-02-01", "2026-02-08", "2026-02-15", "2026-02-22", "2026-03-01", "2026-03-08"}},
		{"@monthly", []string{"2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01", "2026-06-01", "2026-07-01"}},
		{"@yearly", []string{"2027-01-01", "2028-01-01", "2029-01-01", "2030-01-01", "2031-01-01", "2032-01-01"}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()

			s := mustParse(t, tc.expr, "")
			var got []string
			for _, v := range s.Preview(utc(t, "2026-01-31T23:59:00Z"), len(tc.want)) {
				got = append(got, v.Format(time.DateOnly))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestBetween(t *testing.T) {
	t.Parallel()

	s := mustParse(t, "0 * * * *", "")
	from, to := utc(t, "2026-01-01T00:00:00Z"), utc(t, "2026-01-01T03:00:00Z")
	require.Equal(t, []string{"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"}, formatAll(s.Between(from, to, 10)))
	require.Equal(t, []string{"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"}, formatAll(s.Between(from, to, 2)))
	require.Empty(t, s.Between(from, to, 0))
	require.Empty(t, s.Between(to, from, 10))
	require.Empty(t, s.Between(from, from.Add(time.Hour-time.Nanosecond), 10))
	require.Empty(t, s.Preview(from, 0))
	require.Empty(t, s.Preview(from, -1))
}

func TestFarFromNow(t *testing.T) {
	t.Parallel()

	s := mustParse(t, "30 2 * * *", losAngeles)
	for _, from := range []string{"0001-01-01T00:00:00Z", "1883-11-18T00:00:00Z", "1969-12-31T23:59:59Z", "2262-04-12T00:00:00Z", "9999-12-30T00:00:00Z"} {
		t.Run(from, func(t *testing.T) {
			t.Parallel()

			prev := utc(t, from)
			for _, v := range s.Preview(prev, 5) {
				require.True(t, v.After(prev))
				prev = v
			}
		})
	}

	e := mustParse(t, "@every 1000h", "")
	require.Equal(t, time.Unix(0, 0).UTC(), e.Next(time.Unix(-1, 0)))
	far := time.Date(292277026596, 12, 4, 15, 30, 7, 0, time.UTC) // the latest time.Time
	require.True(t, e.Next(far).IsZero())
	require.True(t, e.Next(utc(t, "9999-01-01T00:00:00Z")).After(utc(t, "9999-01-01T00:00:00Z")))
}

// oracleFires returns the fire times in (from, to] by simulating the zone's
// clock minute by minute: an instant fires when the clock reaches, for the
// first time, one or more matching wall-clock times. It assumes offsets and
// transitions on whole minutes, as in every zone since the 1970s.
func oracleFires(s *Schedule, from, to time.Time) []time.Time {
	wall := func(u time.Time) time.Time {
		_, off := u.In(s.loc).Zone()
		return naive(u, off)
	}
	matches := func(w time.Time) bool {
		return s.minute.has(w.Minute()) && s.hour.has(w.Hour()) && s.month.has(int(w.Month())) && s.dayMatches(w.Year(), w.Month(), w.Day())
	}
	start := from.Add(-lookaround).Truncate(time.Minute)
	high := wall(start)
	var out []time.Time
	for u := start.Add(time.Minute); !u.After(to); u = u.Add(time.Minute) {
		w := wall(u)
		fires := false
		for c := high.Add(time.Minute); !c.After(w) && !fires; c = c.Add(time.Minute) {
			fires = matches(c)
		}
		if w.After(high) {
			high = w
		}
		if fires && u.After(from) {
			out = append(out, u)
		}
	}
	return out
}

// Next agrees with a brute-force simulation of the policy around many
// transitions, including midnight transitions and a skipped day.
func TestNextMatchesSimulation(t *testing.T) {
	t.Parallel()

	transitions := []struct{ tz, at string }{
		{losAngeles, "2026-03-08T10:00:00Z"},
		{losAngeles, "2026-11-01T09:00:00Z"},
		{london, "2026-03-29T01:00:00Z"},
		{london, "2026-10-25T01:00:00Z"},
		{lordHowe, "2026-04-04T15:00:00Z"},
		{lordHowe, "2026-10-03T15:30:00Z"},
		{"America/Sao_Paulo", "2018-11-04T03:00:00Z"}, // 00:00 → 01:00: midnight does not exist
		{"America/Sao_Paulo", "2019-02-17T02:00:00Z"}, // 00:00 → 23:00 the day before
		{"Pacific/Apia", "2011-12-30T10:00:00Z"},      // December 30 skipped
		{"Europe/Moscow", "2014-10-25T22:00:00Z"},     // +04 → +03 for good
		{"Asia/Kolkata", "2026-06-01T00:00:00Z"},      // no transition
		{"UTC", "2026-06-01T00:00:00Z"},
	}
	exprs := []string{
		"* * * * *", "*/15 * * * *", "0 * * * *", "30 * * * *", "30 1 * * *", "30 2 * * *",
		"45 1 * * *", "15 2 * * *", "0 0 * * *", "*/20 0-3 * * *", "0 12 * * *", "59 23 * * *",
		"0 0 30 12 *", "0 12 * * FRI",
	}
	for _, tr := range transitions {
		t.Run(tr.tz+" "+tr.at, func(t *testing.T) {
			t.Parallel()

			at := utc(t, tr.at)
			from, to := at.Add(-36*time.Hour), at.Add(36*time.Hour)
			rng := rand.New(rand.NewPCG(uint64(at.Unix()), 1))
			for _, expr := range exprs {
				s := mustParse(t, expr, tr.tz)
				want := oracleFires(s, from, to)
				require.Equal(t, formatAll(want), formatAll(s.Between(from, to, 10000)), expr)

				// Next from arbitrary instants, including sub-second ones
				// and the fire times themselves.
				for range 200 {
					u := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
					if rng.IntN(4) == 0 {
						u = u.Truncate(time.Minute)
					}
					var wantNext time.Time
					for _, f := range want {
						if f.After(u) {
							wantNext = f
							break
						}
					}
					if wantNext.IsZero() {
						continue
					}
					require.Equal(t, wantNext, s.Next(u), "%s Next(%s)", expr, u)
				}
			}
		})
	}
}

// Preview is strictly increasing, and so is Next: each result is after its
// argument and never before the result for an earlier argument.
func TestPreviewStrictlyIncreasing(t *testing.T) {
	t.Parallel()

	for _, tz := range []string{losAngeles, london, lordHowe, "America/Sao_Paulo", "Pacific/Apia", "UTC"} {
		for _, expr := range []string{"*/15 * * * *", "@hourly", "30 1,2 * * *", "0 0 * * *", "*/7 */3 * * MON-FRI", "@every 97m", "0 0 29 2 *"} {
			t.Run(tz+" "+expr, func(t *testing.T) {
				t.Parallel()

				s := mustParse(t, expr, tz)
				for _, from := range []string{"2011-12-28T00:00:00Z", "2018-11-02T00:00:00Z", "2026-03-07T00:00:00Z", "2026-10-24T00:00:00Z"} {
					got := s.Preview(utc(t, from), 300)
					require.Len(t, got, 300)
					prev := utc(t, from)
					for _, v := range got {
						require.True(t, v.After(prev), "%s after %s", v, prev)
						require.Equal(t, v, s.Next(v.Add(-time.Nanosecond)))
						prev = v
					}
				}
			})
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []struct {
		expr, tz string
		unix     int64
	}{
		{"30 2 * * *", losAngeles, 1772935200},
		{"30 1 * * *", losAngeles, 1793350800},
		{"*/15 * * * *", lordHowe, 1775314800},
		{"0 * * * *", london, 1774746000},
		{"@every 1s", "", 0},
		{"@every 1h30m", "Asia/Kolkata", -1},
		{"@every 2562047h", "UTC", 1 << 40},
		{"@hourly", "Pacific/Apia", 1325239200},
		{"0 0 29 2 */7", "", 4102444800},
		{"0 0 30 2 *", "", 0},
		{"5-10/2 1,3-4 2/10 FEB,dec sat-sat", "Europe/Moscow", 1414274400},
		{"0 0 13 * FRI", "America/Sao_Paulo", 1541300400},
		{"61 * * * *", "", 0},
		{"* * * * *", "Mars/Base", 0},
		{"@every 0s", "", 0},
		{"1-2-3,,*/0 * * *", "", 0},
		{"@", "", 0},
	} {
		f.Add(seed.expr, seed.tz, seed.unix)
	}
	f.Fuzz(func(t *testing.T, expr, tz string, unix int64) {
		s, err := Parse(expr, tz)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		again, err := Parse(s.String(), tz)
		require.NoError(t, err, "String() %q does not parse", s.String())
		require.Equal(t, s.String(), again.String())

		// Any instant from 1800 to 2400.
		const lo, span = -5364662400, 18934156800
		at := time.Unix(lo+(unix%span+span)%span, unix&0x3fffffff)
		next := s.Next(at)
		if next.IsZero() {
			return
		}
		require.True(t, next.After(at), "Next(%s) = %s", at, next)
		require.Equal(t, next, s.Next(next.Add(-time.Nanosecond)))
		then := s.Next(next)
		require.True(t, then.IsZero() || then.After(next), "Next(%s) = %s", next, then)
	})
}
