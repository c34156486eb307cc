package pgmigrate

import (
	"net/url"
	"strings"
)

// redactedMark replaces every password hangar would otherwise print.
const redactedMark = "xxxxx"

// secretSpan locates one password inside a connection string or free text.
// [start,end) is the secret itself; [cutStart,cutEnd) is the text to remove
// so that the connection string stays valid without the password.
type secretSpan struct {
	start, end       int
	cutStart, cutEnd int
}

// RedactText returns s with every password it can find replaced by
// "xxxxx": the password of postgres:// and postgresql:// URLs (userinfo and
// the password query parameter) and the value of password=... keywords in
// libpq key/value strings. It is meant for anything printed: URLs, error
// messages, the stderr of pg_dump. When in doubt it redacts more than the
// password rather than less.
func RedactText(s string) string {
	spans := findSecrets(s)
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.start < last {
			continue
		}
		b.WriteString(s[last:sp.start])
		b.WriteString(redactedMark)
		last = sp.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// stripPassword removes the password from a connection string so that it
// can be handed to a child process (which gets the password through
// PGPASSWORD instead, out of sight of ps).
func stripPassword(connString string) string {
	spans := findSecrets(connString)
	if len(spans) == 0 {
		return connString
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.cutStart < last {
			continue
		}
		b.WriteString(connString[last:sp.cutStart])
		last = sp.cutEnd
	}
	b.WriteString(connString[last:])
	return b.String()
}

// findSecrets returns the password spans in s, sorted by position and not
// overlapping.
func findSecrets(s string) []secretSpan {
	var spans []secretSpan
	covered := 0 // bytes before this index belong to a URL already scanned
	for i := 0; i < len(s); {
		if n := schemeLen(s[i:]); n > 0 && i >= covered {
			urlEnd := tokenEnd(s, i)
			spans = append(spans, urlSecrets(s, i, i+n, urlEnd)...)
			covered = urlEnd
			i = urlEnd
			continue
		}
		if i >= covered && hasFoldPrefix(s[i:], "password") {
			if sp, ok := keywordSecret(s, i); ok {
				spans = append(spans, sp)
				i = sp.cutEnd
				continue
			}
		}
		i++
	}
	return spans
}

// schemeLen returns the length of a postgres URL scheme ("postgres://" or
// "postgresql://", any case) at the start of s, or 0.
func schemeLen(s string) int {
	for _, p := range []string{"postgresql://", "postgres://"} {
		if hasFoldPrefix(s, p) {
			return len(p)
		}
	}
	return 0
}

func hasFoldPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// tokenEnd returns where a URL starting at i ends in free text: at the first
// whitespace or quote character.
func tokenEnd(s string, i int) int {
	for j := i; j < len(s); j++ {
		switch s[j] {
		case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '`':
			return j
		}
	}
	return len(s)
}

// urlSecrets finds the password in the URL s[start:end] whose authority
// begins at auth.
func urlSecrets(s string, start, auth, end int) []secretSpan {
	var spans []secretSpan
	// The userinfo ends at the last '@' of the token: a password may hold an
	// unencoded '@' or '/', and if a later part of the URL holds an '@' we
	// redact too much, never too little.
	at := strings.LastIndexByte(s[auth:end], '@')
	if at >= 0 {
		at += auth
		if colon := strings.IndexByte(s[auth:at], ':'); colon >= 0 {
			colon += auth
			if colon+1 < at {
				spans = append(spans, secretSpan{start: colon + 1, end: at, cutStart: colon, cutEnd: at})
			}
		}
	}
	from := auth
	if at >= 0 {
		from = at + 1
	}
	q := strings.IndexByte(s[from:end], '?')
	if q < 0 {
		return spans
	}
	q += from
	// Query parameters: key=value separated by '&'.
	for p := q + 1; p < end; {
		amp := strings.IndexByte(s[p:end], '&')
		next := end
		if amp >= 0 {
			next = p + amp
		}
		param := s[p:next]
		if eq := strings.IndexByte(param, '='); eq >= 0 && strings.EqualFold(param[:eq], "password") {
			sp := secretSpan{start: p + eq + 1, end: next, cutStart: p, cutEnd: next}
			switch {
			case s[p-1] == '&':
				sp.cutStart = p - 1
			case next < end: // first parameter followed by others: drop its '&'
				sp.cutEnd = next + 1
			default: // the only parameter: drop the '?'
				sp.cutStart = p - 1
			}
			if sp.start < sp.end {
				spans = append(spans, sp)
			}
		}
		p = next + 1
	}
	return spans
}

// keywordSecret parses "password = value" at i, where value is a libpq
// key/value token: 'quoted with \' and \\ escapes' or a run of non-space
// characters.
func keywordSecret(s string, i int) (secretSpan, bool) {
	j := i + len("password")
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= len(s) || s[j] != '=' {
		return secretSpan{}, false
	}
	j++
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= len(s) {
		return secretSpan{}, false
	}
	if s[j] == '\'' {
		k := j + 1
		for k < len(s) && s[k] != '\'' {
			if s[k] == '\\' && k+1 < len(s) {
				k++
			}
			k++
		}
		end := k
		if k < len(s) {
			k++ // closing quote
		}
		if end <= j+1 {
			return secretSpan{}, false
		}
		return secretSpan{start: j + 1, end: end, cutStart: i, cutEnd: k}, true
	}
	k := j
	for k < len(s) && !isSpace(s[k]) {
		k++
	}
	if k == j {
		return secretSpan{}, false
	}
	return secretSpan{start: j, end: k, cutStart: i, cutEnd: k}, true
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// redactor scrubs text of the passwords it was told about, on top of the
// structural redaction of RedactText: a password can show up on its own,
// for instance in a server error that echoes a value.
type redactor struct {
	secrets []string
}

// minLiteralSecret is the shortest password replaced wherever it appears;
// shorter ones would turn every message into noise, and are still redacted
// inside URLs and password= keywords.
const minLiteralSecret = 4

func newRedactor(connStrings ...string) *redactor {
	r := &redactor{}
	for _, cs := range connStrings {
		for _, sp := range findSecrets(cs) {
			r.add(cs[sp.start:sp.end])
		}
	}
	return r
}

func (r *redactor) add(secret string) {
	if len(secret) < minLiteralSecret {
		return
	}
	r.secrets = append(r.secrets, secret)
	if dec, err := urlUnescape(secret); err == nil && dec != secret && len(dec) >= minLiteralSecret {
		r.secrets = append(r.secrets, dec)
	}
}

// scrub redacts s.
func (r *redactor) scrub(s string) string {
	return r.scrubLiteral(RedactText(s))
}

// scrubLiteral replaces only the known passwords, for text hangar wrote
// itself (hints show example URLs that must stay readable).
func (r *redactor) scrubLiteral(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redactedMark)
	}
	return s
}

// urlUnescape decodes a percent-encoded URL part.
func urlUnescape(s string) (string, error) { return url.PathUnescape(s) }
