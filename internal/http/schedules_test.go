package http_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Tests of the schedules endpoints from outside: refused input, and the
// preview of fire times across daylight saving time changes. No worker
// runs here, so nothing fires.

// scheduleJSON is the API's Schedule.
type scheduleJSON struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Workflow      string     `json:"workflow"`
	Version       *int       `json:"version"`
	Cron          string     `json:"cron"`
	Timezone      string     `json:"timezone"`
	Input         any        `json:"input"`
	OverlapPolicy string     `json:"overlap_policy"`
	CatchupWindow string     `json:"catchup_window"`
	Paused        bool       `json:"paused"`
	Source        string     `json:"source"`
	NextFireAt    *time.Time `json:"next_fire_at"`
}

// createSchedule creates a schedule and requires a 201.
func (b *testBundle) createSchedule(t *testing.T, body string) scheduleJSON {
	t.Helper()
	res := b.do(t, http.MethodPost, "/v1/schedules", []byte(body))
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	var s scheduleJSON
	res.decode(t, &s)
	require.Equal(t, "/v1/schedules/"+s.ID, res.header.Get("Location"))
	return s
}

// schedules lists every schedule, as the raw JSON of each.
func (b *testBundle) schedules(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range listAll[json.RawMessage](t, b, "/v1/schedules", 1000) {
		out = append(out, string(s))
	}
	return out
}

// refuseSchedule sends each bad request and checks that it is refused with
// a problem at the expected paths, promptly, leaving the workflows, runs
// and schedules as they were.
func refuseSchedule(t *testing.T, b *testBundle, defaultPath string, tests []badRequest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, schedulesBefore := b.state(t), b.schedules(t)
			method, p := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if p == "" {
				p = defaultPath
			}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			began := time.Now()
			res := b.do(t, method, p, body, tt.headers...)
			require.Less(t, time.Since(began), prompt, "the request must be refused promptly")
			status := tt.status
			if len(tt.statuses) > 0 {
				require.Contains(t, tt.statuses, res.status, "body: %s", truncate(res.body))
				status = res.status
			}
			requireProblem(t, res, status, tt.paths...)
			b.requireHealthy(t)
			require.Equal(t, before, b.state(t), "a refused request must leave nothing behind")
			require.Equal(t, schedulesBefore, b.schedules(t), "a refused request must leave the schedules as they were")
		})
	}
}

const scheduleWorkflow = `{"name": "report", "steps": [{"name": "only", "type": "call", "url": "http://127.0.0.1:9000/a"}]}`

func TestCreateScheduleAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, scheduleWorkflow)
	before := time.Now()
	s := b.createSchedule(t, `{"name": "nightly", "workflow": "report", "cron": "0 2 * * *"}`)
	require.Equal(t, "nightly", s.Name)
	require.Equal(t, "report", s.Workflow)
	require.Nil(t, s.Version)
	require.Equal(t, "UTC", s.Timezone)
	require.Equal(t, map[string]any{}, s.Input)
	require.Equal(t, "allow", s.OverlapPolicy)
	require.Equal(t, "0s", s.CatchupWindow)
	require.Equal(t, "api", s.Source)
	require.False(t, s.Paused)
	require.NotNil(t, s.NextFireAt)
	want := time.Date(before.UTC().Year(), before.UTC().Month(), before.UTC().Day(), 2, 0, 0, 0, time.UTC)
	if !want.After(before) {
		want = want.AddDate(0, 0, 1)
	}
	require.Equal(t, want, s.NextFireAt.UTC())

	p := b.createSchedule(t, `{"name": "paused-one", "workflow": "report", "version": 1, "cron": "@every 90s", "timezone": "Asia/Tokyo",
		"input": [1, "two"], "overlap_policy": "buffer_one", "catchup_window": "1h", "paused": true}`)
	require.Equal(t, 1, *p.Version)
	require.Equal(t, "@every 90s", p.Cron)
	require.Equal(t, "Asia/Tokyo", p.Timezone)
	require.Equal(t, []any{1.0, "two"}, p.Input)
	require.Equal(t, "buffer_one", p.OverlapPolicy)
	require.Equal(t, "1h0m0s", p.CatchupWindow)
	require.True(t, p.Paused)
	require.Nil(t, p.NextFireAt, "a paused schedule shows no next firing")
}

func TestCreateScheduleRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, scheduleWorkflow)
	b.createSchedule(t, `{"name": "taken", "workflow": "report", "cron": "@daily"}`)

	body := func(fields string) string {
		return `{"name": "s", "workflow": "report", "cron": "0 9 * * *"` + fields + `}`
	}
	big := `"` + strings.Repeat("a", 256<<10) + `"`
	refuseSchedule(t, b, "/v1/schedules", []badRequest{
		// Not JSON.
		{name: "malformed", body: `{"name": "s",`, status: 400, paths: []string{""}},
		{name: "empty", body: "", headers: []string{"Content-Type", "application/json"}, status: 400},
		{name: "not JSON media type", body: body(""), headers: []string{"Content-Type", "text/plain"}, status: 415},

		// Missing and unknown fields.
		{name: "missing everything", body: `{}`, status: 422, paths: []string{"/name", "/workflow", "/cron"}},
		{name: "missing cron", body: `{"name": "s", "workflow": "report"}`, status: 422, paths: []string{"/cron"}},
		{name: "missing name", body: `{"workflow": "report", "cron": "@daily"}`, status: 422, paths: []string{"/name"}},
		{name: "unknown field", body: body(`, "bogus": 1`), status: 422, paths: []string{"/bogus"}},
		{name: "read-only field source", body: body(`, "source": "definition"`), status: 422, paths: []string{"/source"}},
		{name: "read-only field next_fire_at", body: body(`, "next_fire_at": "2030-01-01T00:00:00Z"`), status: 422, paths: []string{"/next_fire_at"}},
		{name: "array", body: `[]`, status: 422, paths: []string{""}},

		// Names.
		{name: "duplicate name", body: `{"name": "taken", "workflow": "report", "cron": "@hourly"}`, status: 409, paths: []string{"/name"}},
		{name: "upper-case name", body: `{"name": "Nightly", "workflow": "report", "cron": "@daily"}`, status: 422, paths: []string{"/name"}},
		{name: "name with a space", body: `{"name": "a b", "workflow": "report", "cron": "@daily"}`, status: 422, paths: []string{"/name"}},
		{name: "empty name", body: `{"name": "", "workflow": "report", "cron": "@daily"}`, status: 422, paths: []string{"/name"}},
		{name: "name too long", body: `{"name": "` + strings.Repeat("a", 129) + `", "workflow": "report", "cron": "@daily"}`, status: 422, paths: []string{"/name"}},

		// Cron expressions.
		{name: "minute out of range", body: `{"name": "s", "workflow": "report", "cron": "61 * * * *"}`, status: 422, paths: []string{"/cron"}},
		{name: "four fields", body: `{"name": "s", "workflow": "report", "cron": "0 9 * *"}`, status: 422, paths: []string{"/cron"}},
		{name: "six fields", body: `{"name": "s", "workflow": "report", "cron": "0 0 9 * * *"}`, status: 422, paths: []string{"/cron"}},
		{name: "empty cron", body: `{"name": "s", "workflow": "report", "cron": ""}`, status: 422, paths: []string{"/cron"}},
		{name: "blank cron", body: `{"name": "s", "workflow": "report", "cron": "   "}`, status: 422, paths: []string{"/cron"}},
		{name: "never fires", body: `{"name": "s", "workflow": "report", "cron": "0 0 30 2 *"}`, status: 422, paths: []string{"/cron"}},
		{name: "unknown descriptor", body: `{"name": "s", "workflow": "report", "cron": "@reboot"}`, status: 422, paths: []string{"/cron"}},
		{name: "every below a second", body: `{"name": "s", "workflow": "report", "cron": "@every 500ms"}`, status: 422, paths: []string{"/cron"}},
		{name: "every without duration", body: `{"name": "s", "workflow": "report", "cron": "@every"}`, status: 422, paths: []string{"/cron"}},
		{name: "backward range", body: `{"name": "s", "workflow": "report", "cron": "0 18-9 * * *"}`, status: 422, paths: []string{"/cron"}},
		{name: "zero step", body: `{"name": "s", "workflow": "report", "cron": "*/0 * * * *"}`, status: 422, paths: []string{"/cron"}},
		{name: "unknown month name", body: `{"name": "s", "workflow": "report", "cron": "0 9 1 FOO *"}`, status: 422, paths: []string{"/cron"}},
		{name: "cron not a string", body: `{"name": "s", "workflow": "report", "cron": 5}`, status: 422, paths: []string{"/cron"}},

		// Time zones.
		{name: "unknown time zone", body: body(`, "timezone": "Mars/Base"`), status: 422, paths: []string{"/timezone"}},
		{name: "offset as time zone", body: body(`, "timezone": "+02:00"`), status: 422, paths: []string{"/timezone"}},
		{name: "path as time zone", body: body(`, "timezone": "../../etc/passwd"`), status: 422, paths: []string{"/timezone"}},
		{name: "time zone too long", body: body(`, "timezone": "` + strings.Repeat("a", 65) + `"`), status: 422, paths: []string{"/timezone"}},

		// Workflows and versions.
		{name: "unknown workflow", body: `{"name": "s", "workflow": "nope", "cron": "@daily"}`, status: 422, paths: []string{"/workflow"}},
		{name: "invalid workflow name", body: `{"name": "s", "workflow": "Not Valid", "cron": "@daily"}`, status: 422, paths: []string{"/workflow"}},
		{name: "unknown version", body: body(`, "version": 2`), status: 422, paths: []string{"/version"}},
		{name: "version zero", body: body(`, "version": 0`), status: 422, paths: []string{"/version"}},
		{name: "negative version", body: body(`, "version": -1`), status: 422, paths: []string{"/version"}},
		{name: "version as string", body: body(`, "version": "1"`), status: 422, paths: []string{"/version"}},
		{name: "version too large", body: body(`, "version": 2147483648`), status: 422, paths: []string{"/version"}},

		// Overlap policies and catch-up windows.
		{name: "unknown overlap policy", body: body(`, "overlap_policy": "sometimes"`), status: 422, paths: []string{"/overlap_policy"}},
		{name: "empty overlap policy", body: body(`, "overlap_policy": ""`), status: 422, paths: []string{"/overlap_policy"}},
		{name: "overlap policy in capitals", body: body(`, "overlap_policy": "SKIP"`), status: 422, paths: []string{"/overlap_policy"}},
		{name: "catch-up window not a duration", body: body(`, "catchup_window": "soon"`), status: 422, paths: []string{"/catchup_window"}},
		{name: "catch-up window without unit", body: body(`, "catchup_window": "10"`), status: 422, paths: []string{"/catchup_window"}},
		{name: "negative catch-up window", body: body(`, "catchup_window": "-1m"`), status: 422, paths: []string{"/catchup_window"}},
		{name: "catch-up window as number", body: body(`, "catchup_window": 60`), status: 422, paths: []string{"/catchup_window"}},

		// Other fields.
		{name: "paused not boolean", body: body(`, "paused": "yes"`), status: 422, paths: []string{"/paused"}},
		{name: "NUL in the input", body: body(`, "input": {"a": "x\u0000y"}`), status: 422, paths: []string{"/input/a"}},
		{name: "input too large", body: body(`, "input": ` + big), status: 413, paths: []string{"/input"}},
	})
}

// TestScheduleTimezoneLocalRefusedAtTimezone: "Local" (the machine's zone,
// which differs between workers) is refused, and the problem must point at
// the time zone, not at the cron expression.
func TestScheduleTimezoneLocalRefusedAtTimezone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, scheduleWorkflow)
	res := b.do(t, http.MethodPost, "/v1/schedules", []byte(`{"name": "s", "workflow": "report", "cron": "0 9 * * *", "timezone": "Local"}`))
	requireProblem(t, res, http.StatusUnprocessableEntity, "/timezone")
	res = b.do(t, http.MethodGet, "/v1/schedules/preview?cron=0+9+*+*+*&timezone=Local", nil)
	requireProblem(t, res, http.StatusUnprocessableEntity, "query:timezone")
}

// TestCreateScheduleListsEveryProblem: as everywhere in the API, every
// problem of a request is listed at once.
func TestCreateScheduleListsEveryProblem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, scheduleWorkflow)
	res := b.do(t, http.MethodPost, "/v1/schedules", []byte(`{"name": "s", "workflow": "nope", "cron": "61 * * * *", "timezone": "Mars/Base"}`))
	requireProblem(t, res, http.StatusUnprocessableEntity, "/cron", "/timezone", "/workflow")
}

func TestUpdateScheduleRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, scheduleWorkflow)
	s := b.createSchedule(t, `{"name": "s", "workflow": "report", "cron": "0 9 * * *", "timezone": "Europe/Paris"}`)
	path := "/v1/schedules/" + s.ID
	refuseSchedule(t, b, path, []badRequest{
		{name: "no body", method: http.MethodPatch, status: 400},
		{name: "malformed", method: http.MethodPatch, body: `{"cron":`, status: 400, paths: []string{""}},
		{name: "invalid cron", method: http.MethodPatch, body: `{"cron": "61 * * * *"}`, status: 422, paths: []string{"/cron"}},
		{name: "empty cron", method: http.MethodPatch, body: `{"cron": ""}`, status: 422, paths: []string{"/cron"}},
		{name: "unknown time zone", method: http.MethodPatch, body: `{"timezone": "Mars/Base"}`, status: 422, paths: []string{"/timezone"}},
		{name: "unknown workflow", method: http.MethodPatch, body: `{"workflow": "nope"}`, status: 422, paths: []string{"/workflow"}},
		{name: "unknown version", method: http.MethodPatch, body: `{"version": 7}`, status: 422, paths: []string{"/version"}},
		{name: "version zero", method: http.MethodPatch, body: `{"version": 0}`, status: 422, paths: []string{"/version"}},
		{name: "bad overlap policy", method: http.MethodPatch, body: `{"overlap_policy": "never"}`, status: 422, paths: []string{"/overlap_policy"}},
		{name: "bad catch-up window", method: http.MethodPatch, body: `{"catchup_window": "1 hour"}`, status: 422, paths: []string{"/catchup_window"}},
		{name: "negative catch-up window", method: http.MethodPatch, body: `{"catchup_window": "-5s"}`, status: 422, paths: []string{"/catchup_window"}},
		{name: "renaming", method: http.MethodPatch, body: `{"name": "other"}`, status: 422, paths: []string{"/name"}},
		{name: "pausing through PATCH", method: http.MethodPatch, body: `{"paused": true}`, status: 422, paths: []string{"/paused"}},
		{name: "unknown field", method: http.MethodPatch, body: `{"bogus": true}`, status: 422, paths: []string{"/bogus"}},
		{name: "input too large", method: http.MethodPatch, body: `{"input": "` + strings.Repeat("a", 256<<10) + `"}`, status: 413, paths: []string{"/input"}},
	})
	// Nothing changed, and a valid change still works.
	res := b.do(t, http.MethodPatch, path, []byte(`{"cron": "30 9 * * *"}`))
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	var u scheduleJSON
	res.decode(t, &u)
	require.Equal(t, "30 9 * * *", u.Cron)
	require.Equal(t, "Europe/Paris", u.Timezone)
}

func TestScheduleIDRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, scheduleWorkflow)
	b.createSchedule(t, `{"name": "s", "workflow": "report", "cron": "@daily"}`)
	type endpoint struct{ method, suffix, body string }
	endpoints := []endpoint{
		{http.MethodGet, "", ""},
		{http.MethodPatch, "", `{"cron": "@hourly"}`},
		{http.MethodDelete, "", ""},
		{http.MethodPost, "/pause", ""},
		{http.MethodPost, "/resume", ""},
		{http.MethodPost, "/trigger", ""},
	}
	var tests []badRequest
	for _, ep := range endpoints {
		for _, id := range []string{"abc", "123", "01a21ab5-9ece-7073-9914-615bdda22b4", "01a21ab5-9ece-7073-9914-615bdda22b44x"} {
			tests = append(tests, badRequest{name: ep.method + ep.suffix + " malformed id " + id, method: ep.method, path: "/v1/schedules/" + id + ep.suffix, body: ep.body, status: 400, paths: []string{"path:id"}})
		}
		tests = append(tests, badRequest{name: ep.method + ep.suffix + " unknown id", method: ep.method, path: "/v1/schedules/01a21ab5-9ece-7073-9914-615bdda22b44" + ep.suffix, body: ep.body, status: 404})
	}
	refuseSchedule(t, b, "", tests)
}

func TestPreviewScheduleRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := func(v url.Values) string { return "/v1/schedules/preview?" + v.Encode() }
	refuseSchedule(t, b, "", []badRequest{
		{name: "no cron", method: http.MethodGet, path: "/v1/schedules/preview", status: 400, paths: []string{"query:cron"}},
		{name: "empty cron", method: http.MethodGet, path: q(url.Values{"cron": {""}}), status: 400, paths: []string{"query:cron"}},
		{name: "invalid cron", method: http.MethodGet, path: q(url.Values{"cron": {"61 * * * *"}}), status: 422, paths: []string{"query:cron"}},
		{name: "never fires", method: http.MethodGet, path: q(url.Values{"cron": {"0 0 31 4 *"}}), status: 422, paths: []string{"query:cron"}},
		{name: "unknown time zone", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "timezone": {"Mars/Base"}}), status: 422, paths: []string{"query:timezone"}},
		{name: "count zero", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "count": {"0"}}), status: 400, paths: []string{"query:count"}},
		{name: "count too large", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "count": {"1001"}}), status: 400, paths: []string{"query:count"}},
		{name: "count not a number", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "count": {"many"}}), status: 400, paths: []string{"query:count"}},
		{name: "from not a time", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "from": {"yesterday"}}), status: 400, paths: []string{"query:from"}},
		{name: "from a date", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "from": {"2026-03-07"}}), status: 400, paths: []string{"query:from"}},
		{name: "from without offset", method: http.MethodGet, path: q(url.Values{"cron": {"@daily"}, "from": {"2026-03-07T00:00:00"}}), status: 400, paths: []string{"query:from"}},
	})
}

// preview asks for the next fire times and returns them in RFC 3339.
func preview(t *testing.T, b *testBundle, cron, tz, from string, count int) []string {
	t.Helper()
	v := url.Values{"cron": {cron}}
	if tz != "" {
		v.Set("timezone", tz)
	}
	if from != "" {
		v.Set("from", from)
	}
	if count > 0 {
		v.Set("count", strconv.Itoa(count))
	}
	res := b.do(t, http.MethodGet, "/v1/schedules/preview?"+v.Encode(), nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	var out struct {
		Items []string `json:"items"`
	}
	res.decode(t, &out)
	return out.Items
}

func TestPreviewScheduleDST(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name, cron, tz, from string
		want                 []string
	}{
		// Spring forward: 02:30 does not exist on 2026-03-08; it fires
		// once, at 03:00 PDT.
		{"Los Angeles spring forward", "30 2 * * *", "America/Los_Angeles", "2026-03-07T00:00:00Z",
			[]string{"2026-03-07T10:30:00Z", "2026-03-08T10:00:00Z", "2026-03-09T09:30:00Z"}},
		// Fall back: 01:30 happens twice on 2026-11-01; it fires once, at
		// the first (PDT).
		{"Los Angeles fall back", "30 1 * * *", "America/Los_Angeles", "2026-10-31T00:00:00Z",
			[]string{"2026-10-31T08:30:00Z", "2026-11-01T08:30:00Z", "2026-11-02T09:30:00Z"}},
		// Hourly across the gap: 02:00 and 03:00 share the instant the gap
		// ends and fire there once.
		{"Los Angeles hourly spring forward", "0 * * * *", "America/Los_Angeles", "2026-03-08T08:30:00Z",
			[]string{"2026-03-08T09:00:00Z", "2026-03-08T10:00:00Z", "2026-03-08T11:00:00Z"}},
		// Hourly across the repeated hour: 01:00 fires in PDT only; the
		// next firing is 02:00 PST, two hours later.
		{"Los Angeles hourly fall back", "0 * * * *", "America/Los_Angeles", "2026-11-01T07:30:00Z",
			[]string{"2026-11-01T08:00:00Z", "2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z"}},
		// London: 01:30 does not exist on 2026-03-29 (01:00 GMT → 02:00
		// BST) and happens twice on 2026-10-25.
		{"London spring forward", "30 1 * * *", "Europe/London", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"London fall back", "30 1 * * *", "Europe/London", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"London half-hourly fall back", "*/30 1-2 * * *", "Europe/London", "2026-10-25T00:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z", "2026-10-26T01:00:00Z"}},
		// Lord Howe moves by half an hour: 02:00 → 02:30 on 2026-10-04,
		// 02:00 → 01:30 on 2026-04-05.
		{"Lord Howe spring forward", "15 2 * * *", "Australia/Lord_Howe", "2026-10-02T00:00:00Z",
			[]string{"2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}},
		{"Lord Howe fall back", "45 1 * * *", "Australia/Lord_Howe", "2026-04-03T00:00:00Z",
			[]string{"2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}},
		{"Lord Howe quarter-hourly fall back", "*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T14:20:00Z",
			[]string{"2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:30:00Z", "2026-04-04T15:45:00Z"}},
		// @every counts real time from the epoch, whatever the zone.
		{"every hour ignores DST", "@every 1h", "America/Los_Angeles", "2026-03-08T09:30:00Z",
			[]string{"2026-03-08T10:00:00Z", "2026-03-08T11:00:00Z"}},
		// Offsets in from are honoured.
		{"from with an offset", "0 12 * * *", "UTC", "2026-06-01T13:00:00+02:00",
			[]string{"2026-06-01T12:00:00Z"}}, // 11:00Z: the same day's noon is next
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, preview(t, b, tc.cron, tc.tz, tc.from, len(tc.want)))
		})
	}

	// Ten by default, after now by default, in UTC by default.
	now := time.Now()
	items := preview(t, b, "@every 1m", "", "", 0)
	require.Len(t, items, 10)
	first, err := time.Parse(time.RFC3339, items[0])
	require.NoError(t, err)
	require.True(t, first.After(now.Add(-time.Second)) && !first.After(now.Add(61*time.Second)), "first %s, now %s", first, now)
	require.Len(t, preview(t, b, "0 0 * * *", "", "2026-01-01T00:00:00Z", 1000), 1000)
	require.Equal(t, []string{"2026-01-01T09:00:00Z"}, preview(t, b, "0 9 * * *", "", "2026-01-01T00:00:00Z", 1))
}
