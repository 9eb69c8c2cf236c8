package cron

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		expr, tz string
		want     string // String()
		zone     string // Location().String()
	}{
		{expr: "0 2 * * *", want: "0 2 * * *", zone: "UTC"},
		{expr: "  */15\t* * *  * ", tz: "UTC", want: "*/15 * * * *", zone: "UTC"},
		{expr: "0 9 * jan-mar mon-fri", tz: "Europe/London", want: "0 9 * JAN-MAR MON-FRI", zone: "Europe/London"},
		{expr: "0,30 8-18/2 1,15 * SUN", tz: "America/Los_Angeles", want: "0,30 8-18/2 1,15 * SUN", zone: "America/Los_Angeles"},
		{expr: "5/20 * * * 7", want: "5/20 * * * 7", zone: "UTC"},
		{expr: "@yearly", want: "@yearly", zone: "UTC"},
		{expr: "@annually", want: "@yearly", zone: "UTC"},
		{expr: "@monthly", want: "@monthly", zone: "UTC"},
		{expr: "@weekly", want: "@weekly", zone: "UTC"},
		{expr: "@DAILY", want: "@daily", zone: "UTC"},
		{expr: "@midnight", tz: "Australia/Lord_Howe", want: "@daily", zone: "Australia/Lord_Howe"},
		{expr: "@hourly", want: "@hourly", zone: "UTC"},
		{expr: "@every 90s", want: "@every 1m30s", zone: "UTC"},
		{expr: "@every 1s", want: "@every 1s", zone: "UTC"},
		{expr: "@every 24h", tz: "Asia/Tokyo", want: "@every 24h0m0s", zone: "Asia/Tokyo"},
		{expr: "0 0 29 2 *", want: "0 0 29 2 *", zone: "UTC"},     // leap days
		{expr: "0 0 30 2 MON", want: "0 0 30 2 MON", zone: "UTC"}, // either day field: Mondays in February
		{expr: "0 0 31 */2 *", want: "0 0 31 */2 *", zone: "UTC"}, // January, March, …
		{expr: "0 0 29 2 */7", want: "0 0 29 2 */7", zone: "UTC"}, // both: February 29 on a Sunday
		{expr: "0 0 * * 0-7", want: "0 0 * * 0-7", zone: "UTC"},   // 0 and 7 are Sunday
		{expr: "59 23 31 DEC SAT", want: "59 23 31 DEC SAT", zone: "UTC"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()

			s, err := Parse(tc.expr, tc.tz)
			require.NoError(t, err)
			require.Equal(t, tc.want, s.String())
			require.Equal(t, tc.zone, s.Location().String())

			again, err := Parse(s.String(), tc.tz)
			require.NoError(t, err)
			require.Equal(t, s, again)
		})
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()

	set := func(vs ...int) bits {
		var b bits
		for _, v := range vs {
			b |= 1 << uint(v)
		}
		return b
	}
	for _, tc := range []struct {
		expr                          string
		minute, hour, dom, month, dow bits
	}{
		{"* * * * *", set(seq(0, 59, 1)...), set(seq(0, 23, 1)...), set(seq(1, 31, 1)...), set(seq(1, 12, 1)...), set(seq(0, 6, 1)...)},
		{"*/15 */6 */10 */4 */2", set(0, 15, 30, 45), set(0, 6, 12, 18), set(1, 11, 21, 31), set(1, 5, 9), set(0, 2, 4, 6)},
		{"5-10/2 1,3-4 2/10 FEB,dec sat-sat", set(5, 7, 9), set(1, 3, 4), set(2, 12, 22), set(2, 12), set(6)},
		{"59 23 31 12 7", set(59), set(23), set(31), set(12), set(0)},
		{"0 0 1 1 5-7", set(0), set(0), set(1), set(1), set(0, 5, 6)},
		{"0 0 1 1 0-7/7", set(0), set(0), set(1), set(1), set(0)},
		{"0 0 1 1 MON/2", set(0), set(0), set(1), set(1), set(1, 3, 5)},
		{"0 0 1 1 *,MON", set(0), set(0), set(1), set(1), set(seq(0, 6, 1)...)},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()

			s, err := Parse(tc.expr, "")
			require.NoError(t, err)
			require.Equal(t, []bits{tc.minute, tc.hour, tc.dom, tc.month, tc.dow}, []bits{s.minute, s.hour, s.dom, s.month, s.dow})
		})
	}
}

func seq(lo, hi, step int) []int {
	var out []int
	for v := lo; v <= hi; v += step {
		out = append(out, v)
	}
	return out
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		expr, tz string
		want     string
	}{
		{"", "", "empty cron expression"},
		{"   ", "", "empty cron expression"},
		{"61 * * * *", "", `minute field "61": value out of range 0-59`},
		{"5,61 * * * *", "", `minute field "5,61": value 61 out of range 0-59`},
		{"0 24 * * *", "", `hour field "24": value out of range 0-23`},
		{"0 0 0 * *", "", `day-of-month field "0": value out of range 1-31`},
		{"0 0 32 * *", "", `day-of-month field "32": value out of range 1-31`},
		{"0 0 * 13 *", "", `month field "13": value out of range 1-12`},
		{"0 0 * * 8", "", `day-of-week field "8": value out of range 0-7`},
		{"0 0 * * 99999999999999999999", "", `day-of-week field "99999999999999999999": value out of range 0-7`},
		{"0 0 * FOO *", "", `month field "FOO": invalid value "FOO" (want 1-12 or JAN-DEC)`},
		{"0 0 * * MONDAY", "", `day-of-week field "MONDAY": invalid value "MONDAY" (want 0-7 or SUN-SAT)`},
		{"x * * * *", "", `minute field "x": invalid value "x" (want 0-59)`},
		{"-5 * * * *", "", `minute field "-5": missing value in "-5"`},
		{"1- * * * *", "", `minute field "1-": missing value in "1-"`},
		{"1-2-3 * * * *", "", `minute field "1-2-3": invalid value "2-3" (want 0-59)`},
		{"30-10 * * * *", "", `minute field "30-10": range 30-10 goes backwards`},
		{"0 0 * * FRI-MON", "", `day-of-week field "FRI-MON": range FRI-MON goes backwards`},
		{"*/0 * * * *", "", `minute field "*/0": step "0" must be a whole number of at least 1`},
		{"*/x * * * *", "", `minute field "*/x": step "x" must be a whole number of at least 1`},
		{"*/ * * * *", "", `minute field "*/": step "" must be a whole number of at least 1`},
		{"1,,2 * * * *", "", `minute field "1,,2": empty list item`},
		{"? * * * *", "", `minute field "?": invalid value "?" (want 0-59)`},
		{"0 0 * *", "", `expected 5 fields (minute hour day-of-month month day-of-week), got 4 in "0 0 * *"`},
		{"0 0 0 * * *", "", `expected 5 fields (minute hour day-of-month month day-of-week), got 6 in "0 0 0 * * *"`},
		{"0 0 30 2 *", "", `day-of-month field "30" never occurs in month field "2" (like February 30): the expression never fires`},
		{"0 0 31 APR,JUN,SEP,NOV *", "", `day-of-month field "31" never occurs in month field "APR,JUN,SEP,NOV" (like February 30): the expression never fires`},
		{"0 0 30-31 2 */7", "", `day-of-month field "30-31" never occurs in month field "2" (like February 30): the expression never fires`},
		{"@fortnightly", "", `unknown descriptor "@fortnightly" (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)`},
		{"@", "", `unknown descriptor "@"`},
		{"@reboot", "", `unknown descriptor "@reboot"`},
		{"@daily 5", "", `descriptor @daily takes no fields, got "@daily 5"`},
		{"@every", "", `@every needs one duration, e.g. "@every 5m" or "@every 1h30m"`},
		{"@every 1m 2m", "", `@every needs one duration`},
		{"@every 0s", "", "@every: duration must be at least 1s, got 0s"},
		{"@every 999ms", "", "@every: duration must be at least 1s, got 999ms"},
		{"@every -5m", "", "@every: duration must be at least 1s, got -5m0s"},
		{"@every 5", "", `@every: invalid duration "5" (want a duration such as 90s, 5m or 1h30m)`},
		{"@every 1d", "", `@every: invalid duration "1d"`},
		{"0 0 * * *", "Mars/Base", `unknown time zone "Mars/Base"`},
		{"@every 1m", "Mars/Base", `unknown time zone "Mars/Base"`},
		{"0 0 * * *", "Local", `unknown time zone "Local": name an IANA time zone such as "Europe/Paris"`},
		{"0 0 * * *", "/etc/passwd", `unknown time zone "/etc/passwd"`},
		{"0 0 * * *", "../../etc/passwd", `unknown time zone "../../etc/passwd"`},
		{"0 0 * * *", "america/los_angeles ", `unknown time zone "america/los_angeles "`},
	} {
		t.Run(tc.expr+"|"+tc.tz, func(t *testing.T) {
			t.Parallel()

			s, err := Parse(tc.expr, tc.tz)
			require.Nil(t, s)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
