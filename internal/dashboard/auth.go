package dashboard

// Signing in with an API token and out.

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

type loginData struct {
	Error string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request, _ *session) error {
	if s := d.sessions.get(r); s != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	d.renderLogin(w, r, http.StatusOK, "")
	return nil
}

// renderLogin shows the login form with a fresh CSRF token, also set in
// a cookie scoped to /login (the form must send the same).
func (d *Dashboard) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, "/login", 600)
	p := page{Title: "Sign in", CSRF: tok, Data: loginData{Error: msg}}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := d.pages["login"].t.Execute(w, p); err != nil {
		d.log.Error("render the login page", "err", err)
	}
}

// login checks the token against the API (GET /v1/info answers any valid
// token) and starts a session.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request, _ *session) error {
	c, err := r.Cookie(loginCookie)
	form := r.PostFormValue(csrfField)
	if err != nil || c.Value == "" || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		return &apiError{Status: http.StatusForbidden, Message: "the sign-in form's CSRF token is missing or wrong", Hint: "open /login again and sign in from there (cookies must be enabled)"}
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		d.renderLogin(w, r, http.StatusBadRequest, "Enter an API token.")
		return nil
	}
	cl := &client{api: d.api, token: token, ctx: r.Context(), remote: r.RemoteAddr}
	if err := cl.get("/v1/info", nil); err != nil {
		msg := "That token was not accepted: " + err.Error()
		d.renderLogin(w, r, http.StatusUnauthorized, msg)
		return nil
	}
	s := d.sessions.create(token)
	setCookie(w, r, loginCookie, "", "/login", -1)
	setCookie(w, r, sessionCookie, s.id, "/", int(d.sessions.ttl.Seconds()))
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	d.sessions.end(s)
	setCookie(w, r, sessionCookie, "", "/", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
