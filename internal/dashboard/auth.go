package dashboard

import (
	"net/http"
	"strings"
)

type loginData struct {
	Next  string
	Error string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.sessions.open() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

// login exchanges an API key for a session cookie. A wrong key is told
// apart from nothing else: the page says only that it is not accepted.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	next := safeNext(r.PostFormValue("next"))
	if d.sessions.open() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	ss, ok := d.sessions.login(strings.TrimSpace(r.PostFormValue("api_key")))
	if !ok {
		d.render(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "That API key is not accepted."})
		return
	}
	d.sessions.setCookie(w, ss)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site: a path, never a URL
// of another host ("//evil.example" included).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/runs"
	}
	return next
}
