package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/signing"
)

// The endpoints that resume waiting runs: POST /v1/events and
// POST /v1/runs/{id}/inputs/{step}. Most tests here run without a worker, so
// runs stay pending: events can still be published (they resume nothing),
// and input for a step that is not waiting must be refused cleanly.

// publishedEvent is the API's PublishedEvent.
type publishedEvent struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Key        string    `json:"key"`
	ReceivedAt time.Time `json:"received_at"`
	Duplicate  bool      `json:"duplicate"`
	Resumed    int       `json:"resumed"`
}

// publish posts an event body and requires the given status (201 or 200).
func (b *testBundle) publish(t *testing.T, body string, status int) publishedEvent {
	t.Helper()
	res := b.do(t, http.MethodPost, "/v1/events", []byte(body))
	require.Equal(t, status, res.status, "body: %s", truncate(res.body))
	require.Equal(t, "application/json", res.header.Get("Content-Type"))
	var e publishedEvent
	res.decode(t, &e)
	_, err := uuid.Parse(e.ID)
	require.NoError(t, err, "an event id is a UUID: %s", truncate(res.body))
	require.False(t, e.ReceivedAt.IsZero(), "body: %s", truncate(res.body))
	return e
}

// eventJSON encodes an event body.
func eventJSON(t *testing.T, fields map[string]any) string {
	t.Helper()
	b, err := json.Marshal(fields)
	require.NoError(t, err)
	return string(b)
}

// requirePending checks that a run was left alone: still pending, its
// history only its creation.
func requirePending(t *testing.T, b *testBundle, runID string) {
	t.Helper()
	require.Equal(t, "pending", b.getRun(t, runID).Status)
	require.Equal(t, []string{"run_created"}, eventTypes(b.history(t, runID)))
}

func TestPublishEventRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)

	// ev is a refused body that carries a de-duplication id, so that the
	// test can tell afterwards that nothing was stored under it.
	var ids []string
	ev := func(id, fields string) string {
		ids = append(ids, id)
		return `{"id": "` + id + `"` + fields + `}`
	}
	refuse(t, b, "/v1/events", []badRequest{
		// Not JSON.
		{name: "malformed", body: `{"name": "e", "key": `, status: 400, paths: []string{""}},
		{name: "trailing data", body: ev("trailing", `, "name": "e", "key": "k"`) + ` junk`, status: 400, paths: []string{""}},
		{name: "two documents", body: `{"name": "e", "key": "k"}{"name": "e", "key": "k"}`, status: 400, paths: []string{""}},
		{name: "empty", body: "", headers: []string{"Content-Type", "application/json"}, status: 400},
		{name: "only whitespace", body: " \n\t ", status: 400},
		{name: "invalid UTF-8", body: "{\"name\": \"e\", \"key\": \"\xc3\x28\"}", status: 400},
		{name: "single quotes", body: `{'name': 'e', 'key': 'k'}`, status: 400},
		{name: "NaN payload", body: `{"name": "e", "key": "k", "payload": NaN}`, status: 400},

		// JSON, but not an event.
		{name: "null", body: `null`, status: 422, paths: []string{""}},
		{name: "array", body: `[{"name": "e", "key": "k"}]`, status: 422, paths: []string{""}},
		{name: "string", body: `"e"`, status: 422, paths: []string{""}},
		{name: "missing name and key", body: `{}`, status: 422, paths: []string{"/key", "/name"}},
		{name: "missing name", body: ev("missing-name", `, "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "missing key", body: ev("missing-key", `, "name": "e"`), status: 422, paths: []string{"/key"}},
		{name: "only a payload", body: `{"payload": {"a": 1}}`, status: 422, paths: []string{"/key", "/name"}},
		{name: "empty name", body: ev("empty-name", `, "name": "", "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "name a number", body: ev("name-number", `, "name": 5, "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "name null", body: ev("name-null", `, "name": null, "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "key a number", body: ev("key-number", `, "name": "e", "key": 1002`), status: 422, paths: []string{"/key"}},
		{name: "key an object", body: ev("key-object", `, "name": "e", "key": {"id": 1}`), status: 422, paths: []string{"/key"}},
		{name: "key null", body: ev("key-null", `, "name": "e", "key": null`), status: 422, paths: []string{"/key"}},
		{name: "id a number", body: `{"name": "e", "key": "k", "id": 7}`, status: 422, paths: []string{"/id"}},
		{name: "empty id", body: `{"name": "e", "key": "k", "id": ""}`, status: 422, paths: []string{"/id"}},
		{name: "id of 256 characters", body: `{"name": "e", "key": "k", "id": "` + strings.Repeat("i", 256) + `"}`, status: 422, paths: []string{"/id"}},
		{name: "name of 257 characters", body: ev("long-name", `, "name": "`+strings.Repeat("n", 257)+`", "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "name of 10,000 characters", body: ev("longer-name", `, "name": "`+strings.Repeat("n", 10_000)+`", "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "key of 1025 characters", body: ev("long-key", `, "name": "e", "key": "`+strings.Repeat("k", 1025)+`"`), status: 422, paths: []string{"/key"}},
		{name: "unknown field", body: ev("unknown", `, "name": "e", "key": "k", "bogus": 1`), status: 422, paths: []string{"/bogus"}},
		{name: "event instead of name", body: ev("event-field", `, "event": "e", "key": "k"`), status: 422, paths: []string{"/event", "/name"}},
		{name: "Name in upper case", body: ev("upper-name", `, "Name": "e", "key": "k"`), status: 422, paths: []string{"/Name", "/name"}},
		{name: "unknown fields and wrong types", body: `{"name": 5, "key": [], "bogus": 1, "Payload": {}}`, status: 422, paths: []string{"/Payload", "/bogus", "/key", "/name"}},

		// Hostile strings that cannot be stored.
		{name: "NUL in the name", body: ev("nul-name", `, "name": "a\u0000b", "key": "k"`), status: 422, paths: []string{"/name"}},
		{name: "NUL in the key", body: ev("nul-key", `, "name": "e", "key": "\u0000"`), status: 422, paths: []string{"/key"}},
		{name: "NUL in the id", body: `{"name": "e", "key": "k", "id": "a\u0000"}`, status: 422, paths: []string{"/id"}},
		{name: "NUL in the payload", body: ev("nul-payload", `, "name": "e", "key": "k", "payload": {"x": ["ok", "a\u0000b"]}`), status: 422, paths: []string{"/payload/x/1"}},
		{name: "NUL in a payload key", body: ev("nul-payload-key", `, "name": "e", "key": "k", "payload": {"\u0000": 1}`), status: 422, pathPrefix: "/payload"},
		{name: "NUL deep in the payload", body: ev("nul-deep", `, "name": "e", "key": "k", "payload": [[[{"a": ["\u0000"]}]]]`), status: 422, pathPrefix: "/payload"},
		{name: "lone surrogate in the key", body: ev("surrogate", `, "name": "e", "key": "\ud800"`), status: 422, paths: []string{"/key"}},

		// Not JSON as far as the Content-Type says.
		{name: "text/plain", body: ev("text-plain", `, "name": "e", "key": "k"`), headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "form-encoded", body: `name=e&key=k`, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415},
		{name: "no Content-Type", body: ev("no-content-type", `, "name": "e", "key": "k"`), headers: []string{"Content-Type", ""}, status: 415},

		// Too big or too deep. The payload's own limit names the field; a
		// body far over it is refused before it is read whole.
		{name: "payload of 256 KiB and a byte", body: ev("big", `, "name": "e", "key": "k", "payload": `+oversized(256<<10+1)), status: 413, paths: []string{"/payload"}},
		{name: "payload of 300 KiB", body: ev("bigger", `, "name": "e", "key": "k", "payload": `+oversized(300<<10)), status: 413, paths: []string{"/payload"}},
		{name: "payload of 1 MiB", body: ev("huge", `, "name": "e", "key": "k", "payload": `+oversized(1<<20)), status: 413},
		{name: "payload of 1 MiB chunked", body: ev("huge-chunked", `, "name": "e", "key": "k", "payload": `+oversized(1<<20)), chunked: true, status: 413},
		{name: "100,000 [", body: `{"name": "e", "key": "k", "payload": ` + deepOpen + `}`, statuses: tooDeep},
		{name: "100,000 balanced [", body: `{"name": "e", "key": "k", "payload": ` + deepBalanced + `}`, statuses: tooDeep},
		{name: "50,000 nested objects", body: `{"name": "e", "key": "k", "payload": ` + deepObject + `}`, statuses: tooDeep},
	}, func(t *testing.T) { requirePending(t, b, r.ID) })

	// Nothing was stored: every id of a refused event is still free.
	for _, id := range ids {
		e := b.publish(t, `{"name": "e", "key": "k", "id": "`+id+`"}`, http.StatusCreated)
		require.False(t, e.Duplicate, "id %q was stored by a refused request", id)
	}
	requirePending(t, b, r.ID)
}

func TestPublishEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)

	t.Run("nothing waits", func(t *testing.T) {
		before := time.Now().Add(-time.Minute)
		e := b.publish(t, `{"name": "payment.settled", "key": "A-1001", "payload": {"amount": 4200}}`, http.StatusCreated)
		require.Equal(t, "payment.settled", e.Name)
		require.Equal(t, "A-1001", e.Key)
		require.False(t, e.Duplicate)
		require.Zero(t, e.Resumed, "no run waits for it")
		require.True(t, e.ReceivedAt.After(before), "received_at %s", e.ReceivedAt)
		require.Equal(t, time.UTC, e.ReceivedAt.Location(), "timestamps are UTC")
	})

	t.Run("limits are allowed", func(t *testing.T) {
		name, key := strings.Repeat("n", 256), strings.Repeat("k", 1024)
		e := b.publish(t, `{"name": "`+name+`", "key": "`+key+`", "id": "`+strings.Repeat("i", 255)+`", "payload": `+oversized(256<<10)+`}`, http.StatusCreated)
		require.Equal(t, name, e.Name)
		require.Equal(t, key, e.Key)
	})

	t.Run("optional fields", func(t *testing.T) {
		for _, body := range []string{
			`{"name": "e", "key": "k"}`,
			`{"name": "e", "key": ""}`,
			`{"name": "e", "key": "k", "payload": null}`,
			`{"name": "e", "key": "k", "payload": 0}`,
			`{"name": "e", "key": "k", "payload": [1, "two", {"three": 3}]}`,
			`{"name": "e", "key": "k", "payload": "text"}`,
		} {
			e := b.publish(t, body, http.StatusCreated)
			require.Equal(t, "e", e.Name, body)
			require.Zero(t, e.Resumed, body)
		}
	})

	t.Run("without an id every post publishes", func(t *testing.T) {
		body := `{"name": "tick", "key": "k", "payload": 1}`
		first := b.publish(t, body, http.StatusCreated)
		second := b.publish(t, body, http.StatusCreated)
		require.NotEqual(t, first.ID, second.ID)
	})

	t.Run("an id publishes once", func(t *testing.T) {
		first := b.publish(t, `{"name": "payment.settled", "key": "A-2002", "payload": {"amount": 1}, "id": "psp-77"}`, http.StatusCreated)
		require.False(t, first.Duplicate)
		again := b.publish(t, `{"name": "payment.settled", "key": "A-2002", "payload": {"amount": 1}, "id": "psp-77"}`, http.StatusOK)
		require.True(t, again.Duplicate)
		require.Zero(t, again.Resumed)
		require.Equal(t, first.ID, again.ID, "the answer is the earlier event")
		require.True(t, first.ReceivedAt.Equal(again.ReceivedAt))

		// The id alone decides: another name, key or payload with a used id
		// publishes nothing either, and the answer is the earlier event.
		other := b.publish(t, `{"name": "other", "key": "B-1", "payload": {"amount": 999}, "id": "psp-77"}`, http.StatusOK)
		require.True(t, other.Duplicate)
		require.Equal(t, first.ID, other.ID)
		require.Equal(t, "payment.settled", other.Name)
		require.Equal(t, "A-2002", other.Key)

		// Ids are compared exactly.
		for _, id := range []string{"PSP-77", "psp-77 ", " psp-77", "psp-77\n"} {
			e := b.publish(t, eventJSON(t, map[string]any{"name": "payment.settled", "key": "A-2002", "id": id}), http.StatusCreated)
			require.False(t, e.Duplicate, "id %q", id)
		}
	})

	t.Run("an id publishes once under concurrency", func(t *testing.T) {
		const n = 20
		var wg sync.WaitGroup
		answers := make([]response, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i], errs[i] = b.try(http.MethodPost, "/v1/events", []byte(`{"name": "race", "key": "k", "id": "race-1", "payload": `+strconv.Itoa(i)+`}`))
			}()
		}
		wg.Wait()
		created, ids := 0, map[string]bool{}
		for i, res := range answers {
			require.NoError(t, errs[i])
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, res.status, "body: %s", truncate(res.body))
			var e publishedEvent
			res.decode(t, &e)
			require.Equal(t, res.status == http.StatusOK, e.Duplicate, "body: %s", truncate(res.body))
			if res.status == http.StatusCreated {
				created++
			}
			ids[e.ID] = true
		}
		require.Equal(t, 1, created, "exactly one post publishes")
		require.Len(t, ids, 1, "every answer is the same event")
	})

	t.Run("hostile strings are data", func(t *testing.T) {
		for i, s := range []string{
			`'; DROP TABLE events; --`,
			`" OR 1=1 --`,
			`../../etc/passwd`,
			`%00%27`,
			`${ run.id }`,
			`<script>alert(1)</script>`,
			"line\r\nInjected-Header: x",
			"\t tabs and spaces \t",
			"\u202egnp.exe",
			"😀 émoji ünïcode 中文",
			"\u2028\u2029",
			`\u0000`, // a backslash and "u0000", not a NUL
			strings.Repeat("🔑", 256),
		} {
			name := s
			if len([]rune(name)) > 256 {
				name = string([]rune(name)[:256])
			}
			id := "hostile-" + strconv.Itoa(i) + "-" + s
			if len([]rune(id)) > 255 {
				id = string([]rune(id)[:255])
			}
			body := eventJSON(t, map[string]any{"name": name, "key": s, "id": id, "payload": map[string]any{s: s}})
			e := b.publish(t, body, http.StatusCreated)
			require.Equal(t, name, e.Name, "the name comes back exactly")
			require.Equal(t, s, e.Key, "the key comes back exactly")
			require.Zero(t, e.Resumed)
			again := b.publish(t, body, http.StatusOK)
			require.True(t, again.Duplicate, "id %q", id)
			require.Equal(t, e.ID, again.ID)
		}
		b.requireHealthy(t)
	})

	// Events resume waits only; a pending run is not touched.
	requirePending(t, b, r.ID)
	require.Equal(t, []string{r.ID}, b.state(t).Runs)
}

func TestGiveInputRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	cancelled := b.startRun(t, `{"workflow": "greet"}`)
	res := b.do(t, http.MethodPost, "/v1/runs/"+cancelled.ID+"/cancel", []byte(`{"reason": "test"}`))
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))

	run := "/v1/runs/" + r.ID
	path := run + "/inputs/lookup"
	unknown := "0190a4c2-7d3e-7000-8000-000000000000"
	ok := `{"value": true}`
	refuse(t, b, path, []badRequest{
		// No such run, or no such step: the run is pending, so it has no
		// step at all yet, not even the steps its definition names.
		{name: "unknown run", path: "/v1/runs/" + unknown + "/inputs/lookup", body: ok, status: 404},
		{name: "step of the definition not begun", body: ok, status: 404},
		{name: "second step of the definition", path: run + "/inputs/send", body: ok, status: 404},
		{name: "step not in the definition", path: run + "/inputs/approve", body: ok, status: 404},
		{name: "step name in another case", path: run + "/inputs/LOOKUP", body: ok, status: 404},
		{name: "cancelled run", path: "/v1/runs/" + cancelled.ID + "/inputs/lookup", body: ok, status: 404},
		{name: "value null", body: `{"value": null}`, status: 404},
		{name: "every field", body: `{"value": {"a": [1, 2]}, "by": "ada", "comment": "fine"}`, status: 404},

		// Malformed path parameters.
		{name: "run id not a UUID", path: "/v1/runs/nope/inputs/lookup", body: ok, status: 400, paths: []string{"path:id"}},
		{name: "run id too short", path: "/v1/runs/" + r.ID[:35] + "/inputs/lookup", body: ok, status: 400, paths: []string{"path:id"}},
		{name: "run id too long", path: "/v1/runs/" + r.ID + "0/inputs/lookup", body: ok, status: 400, paths: []string{"path:id"}},
		{name: "SQL as run id", path: "/v1/runs/%27%3B%20DROP%20TABLE%20runs%3B%20--/inputs/lookup", body: ok, status: 400, paths: []string{"path:id"}},
		{name: "step of 257 characters", path: run + "/inputs/" + strings.Repeat("s", 257), body: ok, status: 400, paths: []string{"path:step"}},
		{name: "step of 10,000 characters", path: run + "/inputs/" + strings.Repeat("s", 10_000), body: ok, status: 400, paths: []string{"path:step"}},

		// Hostile step names: nothing by those names.
		{name: "SQL as step", path: run + "/inputs/%27%3B%20DROP%20TABLE%20step_executions%3B%20--", body: ok, status: 404},
		{name: "path as step", path: run + "/inputs/..%2F..%2Fetc%2Fpasswd", body: ok, status: 404},
		{name: "expression as step", path: run + "/inputs/%24%7B%20run.id%20%7D", body: ok, status: 404},
		{name: "right-to-left override as step", path: run + "/inputs/%E2%80%AEpukool", body: ok, status: 404},
		{name: "NUL as step", path: run + "/inputs/%00", body: ok, statuses: []int{400, 404, 422}},
		{name: "step of 256 characters", path: run + "/inputs/" + strings.Repeat("s", 256), body: ok, status: 404},

		// Not JSON.
		{name: "malformed", body: `{"value": `, status: 400, paths: []string{""}},
		{name: "trailing data", body: `{"value": true} junk`, status: 400, paths: []string{""}},
		{name: "two documents", body: `{"value": true}{"value": false}`, status: 400, paths: []string{""}},
		{name: "empty", body: "", headers: []string{"Content-Type", "application/json"}, status: 400},
		{name: "no body", status: 400},
		{name: "invalid UTF-8", body: "{\"value\": \"\xff\"}", status: 400},
		{name: "bare true", body: `true`, status: 422, paths: []string{""}},

		// JSON, but not an input.
		{name: "null", body: `null`, status: 422, paths: []string{""}},
		{name: "array", body: `[{"value": true}]`, status: 422, paths: []string{""}},
		{name: "missing value", body: `{}`, status: 422, paths: []string{"/value"}},
		{name: "only by and comment", body: `{"by": "ada", "comment": "yes"}`, status: 422, paths: []string{"/value"}},
		{name: "missing value on an unknown run", path: "/v1/runs/" + unknown + "/inputs/lookup", body: `{}`, status: 422, paths: []string{"/value"}},
		{name: "unknown field", body: `{"value": true, "bogus": 1}`, status: 422, paths: []string{"/bogus"}},
		{name: "Value in upper case", body: `{"Value": true}`, status: 422, paths: []string{"/Value", "/value"}},
		{name: "callback fields", body: `{"value": true, "status": "succeeded"}`, status: 422, paths: []string{"/status"}},
		{name: "by not a string", body: `{"value": true, "by": 5}`, status: 422, paths: []string{"/by"}},
		{name: "comment not a string", body: `{"value": true, "comment": ["no"]}`, status: 422, paths: []string{"/comment"}},
		{name: "by of 257 characters", body: `{"value": true, "by": "` + strings.Repeat("b", 257) + `"}`, status: 422, paths: []string{"/by"}},
		{name: "comment of 4097 characters", body: `{"value": true, "comment": "` + strings.Repeat("c", 4097) + `"}`, status: 422, paths: []string{"/comment"}},
		{name: "NUL in the value", body: `{"value": "a\u0000b"}`, status: 422, paths: []string{"/value"}},
		{name: "NUL deep in the value", body: `{"value": {"a": [{"b": "\u0000"}]}}`, status: 422, pathPrefix: "/value"},
		{name: "NUL in by", body: `{"value": true, "by": "\u0000"}`, status: 422, paths: []string{"/by"}},
		{name: "lone surrogate in the comment", body: `{"value": true, "comment": "\udc00"}`, status: 422, paths: []string{"/comment"}},

		// Not JSON as far as the Content-Type says.
		{name: "text/plain", body: ok, headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "form-encoded", body: `value=true`, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415},
		{name: "no Content-Type", body: ok, headers: []string{"Content-Type", ""}, status: 415},

		// Too big or too deep.
		{name: "over 256 KiB", body: `{"value": ` + oversized(256<<10) + `}`, status: 413},
		{name: "1 MiB", body: `{"value": ` + oversized(1<<20) + `}`, status: 413},
		{name: "1 MiB chunked", body: `{"value": ` + oversized(1<<20) + `}`, chunked: true, status: 413},
		{name: "100,000 [", body: `{"value": ` + deepOpen + `}`, statuses: tooDeep},
		{name: "100,000 balanced [", body: `{"value": ` + deepBalanced + `}`, statuses: tooDeep},
		{name: "50,000 nested objects", body: `{"value": ` + deepObject + `}`, statuses: tooDeep},
	}, func(t *testing.T) {
		requirePending(t, b, r.ID)
		require.Equal(t, "cancelled", b.getRun(t, cancelled.ID).Status)
	})
}

// TestGiveInputStepNotUTF8 sends a step name that is not UTF-8. Such a
// path parameter is malformed (docs/api.md: 400, or a 404 since no step
// has that name); it must not be blamed on a NUL character.
func TestGiveInputStepNotUTF8(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	for _, step := range []string{"%FF", "a%C3%28b", "%C0%AF", "%ED%A0%80"} {
		t.Run(step, func(t *testing.T) {
			res := b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/"+step, []byte(`{"value": true}`))
			require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, res.status, "body: %s", truncate(res.body))
			p := requireProblem(t, res, res.status)
			require.NotContains(t, p.Detail, "NUL", "the step name holds no NUL character")
			b.requireHealthy(t)
		})
	}
	requirePending(t, b, r.ID)
}

func TestWaitEndpointsMethods(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	r := b.startRun(t, `{"workflow": "greet"}`)
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/v1/events"},
		{http.MethodPut, "/v1/events"},
		{http.MethodDelete, "/v1/events"},
		{http.MethodGet, "/v1/runs/" + r.ID + "/inputs/lookup"},
		{http.MethodPut, "/v1/runs/" + r.ID + "/inputs/lookup"},
		{http.MethodDelete, "/v1/runs/" + r.ID + "/inputs/lookup"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := b.do(t, tt.method, tt.path, []byte(`{"name": "e", "key": "k", "value": true}`))
			requireProblem(t, res, http.StatusMethodNotAllowed)
			require.Equal(t, "POST", res.header.Get("Allow"))
		})
	}
	for _, path := range []string{"/v1/events/x", "/v1/runs/" + r.ID + "/inputs", "/v1/runs/" + r.ID + "/inputs/", "/v1/runs/" + r.ID + "/inputs/a/b"} {
		t.Run("POST "+path, func(t *testing.T) {
			requireProblem(t, b.do(t, http.MethodPost, path, []byte(`{"value": true}`)), http.StatusNotFound)
		})
	}
	b.requireHealthy(t)
	requirePending(t, b, r.ID)
}

// TestWaitEndpointsRequireAKey checks that the new endpoints are behind the
// API keys like the others (callbacks are not: their token is the key).
func TestWaitEndpointsRequireAKey(t *testing.T) {
	t.Parallel()
	b := setup(t, withAPIKeys("secret-key"))
	for _, tt := range []struct{ path, body string }{
		{"/v1/events", `{"name": "e", "key": "k"}`},
		{"/v1/runs/0190a4c2-7d3e-7000-8000-000000000000/inputs/approve", `{"value": true}`},
	} {
		requireProblem(t, b.do(t, http.MethodPost, tt.path, []byte(tt.body)), http.StatusUnauthorized)
		requireProblem(t, b.do(t, http.MethodPost, tt.path, []byte(tt.body), "Authorization", "Bearer wrong"), http.StatusUnauthorized)
	}
	// With the key, an event is published.
	res := b.do(t, http.MethodPost, "/v1/events", []byte(`{"name": "e", "key": "k", "id": "keyed"}`), "Authorization", "Bearer secret-key")
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	// The refused ones published nothing.
	res = b.do(t, http.MethodPost, "/v1/events", []byte(`{"name": "e", "key": "k", "id": "keyed"}`), "Authorization", "Bearer secret-key")
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
}

// startWorker runs a worker over the test's database until the test ends,
// so that runs of wait-only workflows advance.
func startWorker(t *testing.T, b *testBundle) {
	t.Helper()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	secrets, err := signing.ParseSecrets(secret)
	require.NoError(t, err)
	client, err := httpstep.New(httpstep.Config{Secrets: secrets})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- orchestrator.NewWorker(b.db, orchestrator.DefaultLimits(), logger, orchestrator.WorkerConfig{
			Client: client, Concurrency: 8, PollInterval: 50 * time.Millisecond, ShutdownGrace: time.Second,
		}, orchestrator.WithSigning(secrets, b.url), orchestrator.WithWorkerID("waits-test")).Run(ctx)
	}()
	// Registered after setup's cleanups, so it runs before the database
	// is closed.
	t.Cleanup(func() {
		cancel()
		<-done
		client.Close()
	})
}

// waitStatus polls a run until it has one of the statuses.
func (b *testBundle) waitStatus(t *testing.T, id string, statuses ...string) json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := b.do(t, http.MethodGet, "/v1/runs/"+id, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
		var r struct {
			Status string `json:"status"`
		}
		res.decode(t, &r)
		for _, s := range statuses {
			if r.Status == s {
				return res.body
			}
		}
		require.True(t, time.Now().Before(deadline), "run %s is %s, not %v: %s", id, r.Status, statuses, truncate(res.body))
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGiveInputToWaitingSteps refuses input that does not fit a step that
// waits, and leaves the run waiting.
func TestGiveInputToWaitingSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	startWorker(t, b)
	b.createWorkflow(t, `{"name": "asks", "steps": [
	  {"name": "paid", "type": "wait_for_event", "event": "paid", "key": "${ input.order }"},
	  {"name": "pick", "type": "wait_for_input", "kind": "choice", "options": ["dhl", "ups"]}
	]}`)
	r := b.startRun(t, `{"workflow": "asks", "input": {"order": "o-1"}}`)
	b.waitStatus(t, r.ID, "waiting")

	// A wait for an event takes no input.
	p := requireProblem(t, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/paid", []byte(`{"value": true}`)), http.StatusConflict)
	require.Contains(t, p.Detail, "takes no input")
	// A step the run has not reached yet has no execution.
	requireProblem(t, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/pick", []byte(`{"value": "dhl"}`)), http.StatusNotFound)

	e := b.publish(t, `{"name": "paid", "key": "o-1", "payload": {"amount": 3}}`, http.StatusCreated)
	require.Equal(t, 1, e.Resumed)
	require.Eventually(t, func() bool {
		res := b.do(t, http.MethodGet, "/v1/runs/"+r.ID, nil)
		return res.status == http.StatusOK && strings.Contains(string(res.body), `"step":"pick"`)
	}, 15*time.Second, 20*time.Millisecond, "the run goes on to pick")

	// Wrong values are refused, each with the path of the value.
	for _, body := range []string{`{"value": "fedex"}`, `{"value": "DHL"}`, `{"value": true}`, `{"value": null}`, `{"value": ["dhl"]}`, `{"value": {"choice": "dhl"}}`} {
		requireProblem(t, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/pick", []byte(body)), http.StatusUnprocessableEntity, "/value")
	}
	// The paid step took its event already: input to it is still refused.
	requireProblem(t, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/paid", []byte(`{"value": true}`)), http.StatusConflict)
	require.Equal(t, "waiting", b.getRun(t, r.ID).Status, "refused input leaves the run waiting")

	res := b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/pick", []byte(`{"value": "ups", "by": "ada"}`))
	require.Equal(t, http.StatusOK, res.status, "body: %s", truncate(res.body))
	var step struct {
		Step   string `json:"step"`
		Status string `json:"status"`
	}
	res.decode(t, &step)
	require.Equal(t, "pick", step.Step)
	require.Equal(t, "succeeded", step.Status)
	// A second answer changes nothing.
	requireProblem(t, b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/inputs/pick", []byte(`{"value": "dhl"}`)), http.StatusConflict)

	body := b.waitStatus(t, r.ID, "succeeded")
	var done struct {
		Output json.RawMessage `json:"output"`
	}
	require.NoError(t, json.Unmarshal(body, &done))
	require.JSONEq(t, `{"value": "ups", "by": "ada"}`, string(done.Output))
}

// TestWaitForAllEventsOfOneName checks that an all wait may not list one
// event name twice: its output maps each payload by event name, so one
// payload would overwrite the other.
func TestWaitForAllEventsOfOneName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.do(t, http.MethodPost, "/v1/workflows", []byte(`{"name": "parcels", "steps": [
	  {"name": "both", "type": "wait_for_event", "all": [
	    {"event": "parcel.delivered", "key": "${ input.a }"},
	    {"event": "parcel.delivered", "key": "${ input.b }"}]}
	]}`))
	p := res.problem(t, http.StatusUnprocessableEntity)
	require.Equal(t, []string{"/steps/0/all/1/event"}, p.paths())
}
