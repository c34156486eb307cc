package dashboard

// Sessions: a signed-in browser holds a random session id in an HttpOnly,
// SameSite=Strict cookie (Secure over TLS); the token it signed in with
// stays in the daemon's memory, never in a page or a URL. Sessions end at
// logout, after SessionTTL, after SessionIdle unused, or when the daemon
// restarts.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

const (
	sessionCookie = "hangar_session"
	// loginCookie carries the login form's CSRF token (double submit):
	// there is no session yet to hold it.
	loginCookie = "hangar_login"
	csrfField   = "csrf"
	// maxSessions bounds the sessions kept; the oldest goes first.
	maxSessions = 10000
)

// session is one signed-in browser.
type session struct {
	id      string
	token   string // the API token, only ever sent to the in-process API
	csrf    string
	created time.Time

	mu       sync.Mutex // guards lastSeen, flash
	lastSeen time.Time
	flash    *flash
}

// flash is the outcome of an action, shown once on the next page.
type flash struct {
	OK      bool
	Message string
	Hint    string
	// Events are the progress steps of a release-making action.
	Events []string
}

func (s *session) setFlash(f *flash) {
	s.mu.Lock()
	s.flash = f
	s.mu.Unlock()
}

// takeFlash returns the flash and forgets it.
func (s *session) takeFlash() *flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

func (s *session) checkCSRF(r *http.Request) bool {
	got := r.PostFormValue(csrfField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// sessions are the live sessions by id.
type sessions struct {
	ttl, idle time.Duration
	now       func() time.Time

	mu   sync.Mutex // guards byID
	byID map[string]*session
}

func newSessions(ttl, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, idle: idle, now: now, byID: map[string]*session{}}
}

// randomToken is 32 random bytes, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for token.
func (ss *sessions) create(token string) *session {
	now := ss.now()
	s := &session{id: randomToken(), token: token, csrf: randomToken(), created: now, lastSeen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweepLocked(now)
	if len(ss.byID) >= maxSessions {
		var oldest *session
		for _, o := range ss.byID {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(ss.byID, oldest.id)
	}
	ss.byID[s.id] = s
	return s
}

// sweepLocked forgets expired sessions.
func (ss *sessions) sweepLocked(now time.Time) {
	for id, s := range ss.byID {
		if ss.expired(s, now) {
			delete(ss.byID, id)
		}
	}
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	s.mu.Lock()
	last := s.lastSeen
	s.mu.Unlock()
	return now.Sub(s.created) >= ss.ttl || now.Sub(last) >= ss.idle
}

// get is the live session of r's cookie, or nil; it counts as a use.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[c.Value]
	if s == nil {
		return nil
	}
	if ss.expired(s, now) {
		delete(ss.byID, s.id)
		return nil
	}
	s.mu.Lock()
	s.lastSeen = now
	s.mu.Unlock()
	return s
}

// end forgets a session (logout, or its token no longer valid).
func (ss *sessions) end(s *session) {
	ss.mu.Lock()
	delete(ss.byID, s.id)
	ss.mu.Unlock()
}

// setCookie writes a cookie with the dashboard's flags: HttpOnly,
// SameSite=Strict, Secure when the request came over TLS. maxAge < 0
// deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}
