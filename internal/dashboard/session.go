package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/durablehq/durable/internal/orchestrator"
)

// sessionCookie names the cookie that holds a signed session.
const sessionCookie = "durable_session"

// sessionLifetime is how long a login lasts.
const sessionLifetime = 12 * time.Hour

// session is what the session cookie holds, signed: when it ends, which
// key logged in (a fingerprint of its hash, so that removing the key from
// DURABLE_API_KEYS ends its sessions) and a random id, which its CSRF token
// is made from.
type session struct {
	expires time.Time
	key     [8]byte
	id      [16]byte
}

// sessions signs and verifies session cookies and CSRF tokens with a key
// derived from the signing secret, so that every API process accepts the
// sessions of every other.
type sessions struct {
	key  []byte
	keys [][sha256.Size]byte // the accepted API keys' hashes; none: development mode
	now  func() time.Time
}

const sessionBytes = 8 + 8 + 16

var errNoSession = errors.New("no valid session")

func keyFingerprint(hash [sha256.Size]byte) [8]byte {
	sum := sha256.Sum256(append([]byte("durable dashboard key "), hash[:]...))
	return [8]byte(sum[:8])
}

// open reports whether the dashboard needs no login (development mode).
func (s *sessions) open() bool { return len(s.keys) == 0 }

// login checks an API key and returns a new session for it.
func (s *sessions) login(apiKey string) (session, bool) {
	sum := sha256.Sum256([]byte(apiKey))
	match := 0
	var which [sha256.Size]byte
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(sum[:], k[:]) == 1 {
			match, which = 1, k
		}
	}
	if match != 1 {
		return session{}, false
	}
	return s.newSession(keyFingerprint(which)), true
}

func (s *sessions) newSession(key [8]byte) session {
	ss := session{expires: s.now().Add(sessionLifetime), key: key}
	_, _ = rand.Read(ss.id[:])
	return ss
}

func (s *sessions) mac(msg []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write(msg)
	return h.Sum(nil)
}

// encode is the cookie value: the session and its MAC, base64url.
func (s *sessions) encode(ss session) string {
	b := make([]byte, 0, sessionBytes+sha256.Size)
	b = binary.BigEndian.AppendUint64(b, uint64(ss.expires.Unix()))
	b = append(b, ss.key[:]...)
	b = append(b, ss.id[:]...)
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decode verifies a cookie value: its MAC, its expiry and that its key is
// still accepted.
func (s *sessions) decode(v string) (session, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != sessionBytes+sha256.Size {
		return session{}, errNoSession
	}
	if !hmac.Equal(s.mac(b[:sessionBytes]), b[sessionBytes:]) {
		return session{}, errNoSession
	}
	var ss session
	ss.expires = time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	copy(ss.key[:], b[8:16])
	copy(ss.id[:], b[16:sessionBytes])
	if !s.now().Before(ss.expires) {
		return session{}, errNoSession
	}
	if s.open() {
		return ss, nil
	}
	for _, k := range s.keys {
		if keyFingerprint(k) == ss.key {
			return ss, nil
		}
	}
	return session{}, errNoSession
}

// caller is who a session acts as, in the REST API's terms: its API key's
// id ("key:" and the first 4 bytes of the key's SHA-256, as
// internal/http names it), or "anonymous" in development mode.
func (s *sessions) caller(ss session) string {
	for _, k := range s.keys {
		if keyFingerprint(k) == ss.key {
			return orchestrator.KeyID(k)
		}
	}
	return orchestrator.Anonymous
}

// fromRequest returns the request's session. In development mode a
// request without one gets a new session (and the cookie with it), so
// that CSRF tokens have something to be bound to.
func (s *sessions) fromRequest(w http.ResponseWriter, r *http.Request) (session, error) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if ss, err := s.decode(c.Value); err == nil {
			return ss, nil
		}
	}
	if !s.open() {
		return session{}, errNoSession
	}
	ss := s.newSession([8]byte{})
	s.setCookie(w, ss)
	return ss, nil
}

func (s *sessions) setCookie(w http.ResponseWriter, ss session) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.encode(ss), Path: "/", Expires: ss.expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken is the token every form of a session carries: a MAC of the
// session's id, so it cannot be made without the server's key and dies
// with the session.
func (s *sessions) csrfToken(ss session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(append([]byte("csrf "), ss.id[:]...)))
}

// checkCSRF reports whether the request carries its session's token, in
// the form field csrf or the X-CSRF-Token header (htmx requests).
func (s *sessions) checkCSRF(r *http.Request, ss session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	want := s.csrfToken(ss)
	return got != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}
