package dashboard

import (
	"crypto/sha256"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testSessions(keys ...string) *sessions {
	s := &sessions{key: []byte(strings.Repeat("k", 32)), now: time.Now}
	for _, k := range keys {
		s.keys = append(s.keys, sha256.Sum256([]byte(k)))
	}
	return s
}

// TestSessionCookie: a session made by a login decodes; a tampered,
// truncated, expired or foreign cookie, or one whose key was removed, does
// not; a wrong key makes none.
func TestSessionCookie(t *testing.T) {
	t.Parallel()
	s := testSessions("alpha", "beta")
	_, ok := s.login("gamma")
	require.False(t, ok)
	ss, ok := s.login("beta")
	require.True(t, ok)
	v := s.encode(ss)
	got, err := s.decode(v)
	require.NoError(t, err)
	require.Equal(t, ss.id, got.id)

	for name, bad := range map[string]string{
		"tampered":   v[:10] + string('A'+(v[10]-'A'+1)%26) + v[11:],
		"truncated":  v[:len(v)-4],
		"empty":      "",
		"not base64": "%%%%",
		"huge":       strings.Repeat("A", 1<<16),
	} {
		_, err := s.decode(bad)
		require.Error(t, err, name)
	}
	other := testSessions("alpha", "beta")
	other.key = []byte(strings.Repeat("x", 32))
	_, err = other.decode(v)
	require.Error(t, err, "another server key")
	removed := testSessions("alpha")
	removed.key = s.key
	_, err = removed.decode(v)
	require.Error(t, err, "a key no longer accepted")
	late := testSessions("alpha", "beta")
	late.now = func() time.Time { return time.Now().Add(sessionLifetime + time.Minute) }
	_, err = late.decode(v)
	require.Error(t, err, "expired")
}

// TestCSRF: the token of the session passes, in the form or the header;
// none, another session's or a forged one does not.
func TestCSRF(t *testing.T) {
	t.Parallel()
	s := testSessions("alpha")
	ss, _ := s.login("alpha")
	other, _ := s.login("alpha")
	post := func(token string) bool {
		r := httptest.NewRequest("POST", "/runs/x/cancel", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return s.checkCSRF(r, ss)
	}
	require.True(t, post(s.csrfToken(ss)))
	require.False(t, post(""))
	require.False(t, post(s.csrfToken(other)))
	require.False(t, post("forged"))
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("X-CSRF-Token", s.csrfToken(ss))
	require.True(t, s.checkCSRF(r, ss))
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/runs?status=failed":  "/runs?status=failed",
		"//evil.example":       "/runs",
		"/\\evil.example":      "/runs",
		"https://evil.example": "/runs",
		"":                     "/runs",
		"/x\r\nSet-Cookie: a":  "/runs",
	} {
		require.Equal(t, want, safeNext(in), in)
	}
}

// TestRunFilterHostile: unknown statuses, malformed parents, times and
// cursors are problems shown on the page, not dropped.
func TestRunFilterHostile(t *testing.T) {
	t.Parallel()
	rf, problems := parseRunFilter(url.Values{
		"status": {"failed,bogus", "<script>"}, "parent": {"not-a-uuid"}, "created_after": {"yesterday"},
	})
	require.Len(t, problems, 4)
	require.Equal(t, map[string]bool{"failed": true}, rf.Statuses)
	_, ok := decodeCursor("%%%")
	require.False(t, ok)
	_, ok = decodeCursor("aGVsbG8")
	require.False(t, ok)
}
