package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTruncateVisible(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{"exactly10!", "exactly10!"},
		{"longer than ten", "longer tha"},
		{"\x1b[32msucceeded\x1b[0m and more", "\x1b[32msucceeded\x1b[0m \x1b[0m"},
		{"ünïcödé-ünïcödé", "ünïcödé-ün"},
	} {
		require.Equal(t, tc.want, truncateVisible(tc.in, 10), "%q", tc.in)
	}
}

func TestAgeAndDuration(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	require.Equal(t, "45s", age(now.Add(-45*time.Second), now))
	require.Equal(t, "12m", age(now.Add(-12*time.Minute), now))
	require.Equal(t, "30h", age(now.Add(-30*time.Hour), now))
	require.Equal(t, "3d", age(now.Add(-72*time.Hour), now))
	require.Equal(t, "0s", age(now.Add(time.Minute), now))
	require.Equal(t, "850ms", duration(850*time.Millisecond+200*time.Microsecond))
	require.Equal(t, "1.2s", duration(1234*time.Millisecond))
	require.Equal(t, "3m4s", duration(3*time.Minute+4*time.Second+300*time.Millisecond))
}

func TestProblemError(t *testing.T) {
	t.Parallel()
	res := &http.Response{StatusCode: 422, Status: "422 Unprocessable Entity", Header: http.Header{}}
	body := `{"type": "urn:durable:problem:invalid", "title": "Unprocessable Entity", "status": 422,
		"detail": "the workflow definition is invalid",
		"errors": [{"path": "/steps/1/url", "message": "is required"}, {"path": "", "message": "too big"}]}`
	require.Equal(t, "Unprocessable Entity (422): the workflow definition is invalid\n  /steps/1/url: is required\n  /: too big",
		problemError(res, []byte(body)).Error())

	res = &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Header: http.Header{"Retry-After": {"5"}}}
	require.Equal(t, "Service Unavailable (503): the database is unavailable\n  (retry after 5 s)",
		problemError(res, []byte(`{"type": "x", "title": "Service Unavailable", "status": 503, "detail": "the database is unavailable"}`)).Error())

	// Not a problem document: a proxy's page, cut short; nothing at all.
	res = &http.Response{StatusCode: 502, Status: "502 Bad Gateway", Header: http.Header{}}
	msg := problemError(res, []byte("<html>"+strings.Repeat("x", 500)+"</html>")).Error()
	require.True(t, strings.HasPrefix(msg, "the API answered 502 Bad Gateway: <html>xxx"), msg)
	require.Less(t, len(msg), 260)
	require.Equal(t, "the API answered 502 Bad Gateway", problemError(res, nil).Error())
}

func TestInputValue(t *testing.T) {
	t.Parallel()
	a := &app{env: Env{Stdin: strings.NewReader(`{"amount": 3}`)}}
	for in, want := range map[string]string{
		"true":            `true`,
		"blue":            `"blue"`,
		`"true"`:          `"true"`,
		`{"a": [1, 2]}`:   `{"a":[1,2]}`,
		"42":              `42`,
		"two words":       `"two words"`,
		`{"unterminated"`: `"{\"unterminated\""`,
	} {
		v, err := a.inputValue(in)
		require.NoError(t, err)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.JSONEq(t, want, string(b), in)
	}
	v, err := a.inputValue("-")
	require.NoError(t, err)
	require.JSONEq(t, `{"amount": 3}`, string(v.(json.RawMessage)))
	_, err = a.inputValue("@/no/such/file")
	require.Error(t, err)
}
