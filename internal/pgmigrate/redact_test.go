package pgmigrate

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestRedactText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/app", "postgres://app:xxxxx@db:5432/app"},
		{"postgresql://app:s3cret@db/app?sslmode=require", "postgresql://app:xxxxx@db/app?sslmode=require"},
		{"POSTGRES://app:s3cret@db/app", "POSTGRES://app:xxxxx@db/app"},
		{"postgres://app@db/app", "postgres://app@db/app"},
		{"postgres://app:@db/app", "postgres://app:@db/app"},
		{"postgres://db/app", "postgres://db/app"},
		// Unencoded @ and / in the password: redact up to the last @.
		{"postgres://app:p@ss/w@rd@db/app", "postgres://app:xxxxx@db/app"},
		{"postgres://app:s3cret@h1:5432,h2:5433/app", "postgres://app:xxxxx@h1:5432,h2:5433/app"},
		{"postgres://db/app?sslmode=disable&password=s3cret", "postgres://db/app?sslmode=disable&password=xxxxx"},
		{"postgres://db/app?password=s3cret&sslmode=disable", "postgres://db/app?password=xxxxx&sslmode=disable"},
		{"failed: cannot parse `postgres://u:s3cret@h:x/db`: invalid port", "failed: cannot parse `postgres://u:xxxxx@h:x/db`: invalid port"},
		{"host=db password=s3cret user=app", "host=db password=xxxxx user=app"},
		{"host=db password = 's3 cr\\'et' user=app", "host=db password = 'xxxxx' user=app"},
		{"PGPASSWORD=s3cret pg_dump", "PGPASSWORD=xxxxx pg_dump"},
		{"two: postgres://a:one@h/d and postgres://b:two@h/d", "two: postgres://a:xxxxx@h/d and postgres://b:xxxxx@h/d"},
		{"no secrets here", "no secrets here"},
		{"password", "password"},
		{"password=", "password="},
	}
	for _, c := range cases {
		if got := RedactText(c.in); got != c.want {
			t.Errorf("RedactText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStripPassword(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/app?sslmode=disable", "postgres://app@db:5432/app?sslmode=disable"},
		{"postgres://db/app?password=s3cret", "postgres://db/app"},
		{"postgres://db/app?password=s3cret&sslmode=disable", "postgres://db/app?sslmode=disable"},
		{"postgres://db/app?sslmode=disable&password=s3cret", "postgres://db/app?sslmode=disable"},
		{"host=db password='a b' user=app", "host=db  user=app"},
		{"postgres://app@db/app", "postgres://app@db/app"},
	}
	for _, c := range cases {
		if got := stripPassword(c.in); got != c.want {
			t.Errorf("stripPassword(%q) = %q, want %q", c.in, got, c.want)
		}
		cfg, err := pgx.ParseConfig(c.want)
		if err != nil {
			t.Errorf("stripped %q does not parse: %v", c.want, err)
		} else if cfg.Password != "" {
			t.Errorf("stripped %q still has password %q", c.want, cfg.Password)
		}
	}
}

func TestRedactorScrubsLiteralPasswords(t *testing.T) {
	r := newRedactor("postgres://app:Long%40Secret@db/app", "host=x password=Other-Secret")
	got := r.scrub(`FATAL: password "Long@Secret" and Other-Secret and Long%40Secret; short "ab" kept`)
	for _, leak := range []string{"Long@Secret", "Long%40Secret", "Other-Secret"} {
		if strings.Contains(got, leak) {
			t.Errorf("scrub left %q in %q", leak, got)
		}
	}
	if !strings.Contains(got, `"ab"`) {
		t.Errorf("scrub removed too much: %q", got)
	}
}

// FuzzRedactURL builds connection URLs around arbitrary passwords and
// checks that the encoded password never survives redaction, that
// stripping leaves a URL without a password, and that nothing panics.
func FuzzRedactURL(f *testing.F) {
	f.Add("app", "s3cret", "db.example.com:5432", "app", "error: %s")
	f.Add("u", "p@ss:w/rd?#", "h1,h2:5433", "d b", "%s%s")
	f.Add("", "x", "[::1]:5432", "", "`%s`")
	f.Add("user name", "pass word=' \\", "h", "db?x", "password=%s")
	f.Fuzz(func(t *testing.T, user, pass, host, db, context string) {
		if pass == "" {
			return
		}
		u := (&url.URL{Scheme: "postgres", User: url.UserPassword(user, pass), Host: host, Path: "/" + db}).String()
		encoded := strings.TrimPrefix(url.UserPassword("", pass).String(), ":")
		text := strings.Replace(context, "%s", u, 1)
		if !strings.Contains(text, u) {
			text += " " + u
		}
		out := RedactText(text)
		// The encoded password may legitimately occur elsewhere in the
		// surrounding text; only check when it does not.
		// The password as it sits in the userinfo must be gone (unless the
		// surrounding text holds the same characters), and the mark must be
		// there.
		inUserinfo := ":" + encoded + "@"
		if !strings.Contains(strings.Replace(text, u, "", 1), inUserinfo) && strings.Contains(out, inUserinfo) {
			t.Fatalf("password %q survived: %q -> %q", encoded, text, out)
		}
		if !strings.Contains(out, redactedMark) {
			t.Fatalf("nothing redacted: %q -> %q", text, out)
		}
		if RedactText(out) != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", text, out, RedactText(out))
		}
		stripped := stripPassword(u)
		if strings.Contains(stripped, ":"+encoded+"@") {
			t.Fatalf("stripPassword(%q) = %q still holds the password", u, stripped)
		}
		if cfg, err := pgx.ParseConfig(stripped); err == nil && cfg.Password != "" && cfg.Password == pass {
			t.Fatalf("stripPassword(%q) = %q still parses with the password", u, stripped)
		}
	})
}

// FuzzRedactText feeds arbitrary text: no panic, idempotent, and every
// password= value and URL userinfo password in the input is gone.
func FuzzRedactText(f *testing.F) {
	f.Add("postgres://a:b@c/d password=e")
	f.Add("password='unterminated")
	f.Add("postgresql://:@")
	f.Add("postgres://x?password=&password=y")
	f.Add("password = 'a\\'b' PASSWORD=c")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactText(s)
		if RedactText(out) != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, RedactText(out))
		}
		for _, sp := range findSecrets(out) {
			if out[sp.start:sp.end] != redactedMark {
				t.Fatalf("secret %q left in %q (from %q)", out[sp.start:sp.end], out, s)
			}
		}
		_ = stripPassword(s)
		_ = newRedactor(s).scrub(s)
	})
}
