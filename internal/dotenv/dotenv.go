// Package dotenv reads NAME=VALUE documents (.env files) and checks
// environment variable names. It is pure, so the CLI (`hangar secrets set`
// and `import`) checks input with the very rules the daemon's secrets store
// applies, without linking the store.
package dotenv

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// ErrInvalid marks a document or a name that breaks the rules below.
var ErrInvalid = types.NewError(types.ErrInvalid, "invalid dotenv")

// Limits.
const (
	// MaxBytes bounds a document given to Parse.
	MaxBytes = 4 << 20
	// MaxValueBytes bounds one value; it is also the secrets store's bound
	// on one secret.
	MaxValueBytes = 64 << 10
)

// nameRE is what an environment variable name may be.
var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidName reports whether name can be an environment variable (and so a
// secret): letters, digits and underscores, not starting with a digit, at
// most 256 bytes. The error names the rule; callers add their category.
func ValidName(name string) error {
	if len(name) > 256 || !nameRE.MatchString(name) {
		return fmt.Errorf("name %q: use letters, digits and underscores, not starting with a digit", name)
	}
	return nil
}

// Parse reads NAME=VALUE pairs, one per line, as `secrets import`
// takes them on stdin: blank lines and # comments are skipped, `export ` is
// allowed before a name, values may be unquoted (trimmed, a " #" starts a
// comment), 'single-quoted' (literal), "double-quoted" (with \n \t \" \\
// escapes) or """triple-quoted""" (literal); quoted values may span lines.
// Errors name the line.
func Parse(src string) (map[string]string, error) {
	if len(src) > MaxBytes {
		return nil, fmt.Errorf("dotenv: over %d bytes: %w", MaxBytes, ErrInvalid)
	}
	src = strings.ReplaceAll(src, "\r\n", "\n")
	out := map[string]string{}
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, rest, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("dotenv line %d: want NAME=VALUE: %w", lineNo, ErrInvalid)
		}
		name = strings.TrimSpace(name)
		if err := ValidName(name); err != nil {
			return nil, fmt.Errorf("dotenv line %d: %w: %w", lineNo, err, ErrInvalid)
		}
		rest = strings.TrimLeft(rest, " \t")
		var value string
		switch {
		case strings.HasPrefix(rest, `"""`):
			body, end, err := untilClose(lines, i, rest[3:], `"""`)
			if err != nil {
				return nil, fmt.Errorf("dotenv line %d: %s: %w", lineNo, err, ErrInvalid)
			}
			value, i = body, end
		case strings.HasPrefix(rest, `"`):
			v, end, err := doubleQuoted(lines, i, rest[1:])
			if err != nil {
				return nil, fmt.Errorf("dotenv line %d: %s: %w", lineNo, err, ErrInvalid)
			}
			value, i = v, end
		case strings.HasPrefix(rest, `'`):
			body, end, err := untilClose(lines, i, rest[1:], `'`)
			if err != nil {
				return nil, fmt.Errorf("dotenv line %d: %s: %w", lineNo, err, ErrInvalid)
			}
			value, i = body, end
		default:
			if j := strings.Index(rest, " #"); j >= 0 {
				rest = rest[:j]
			}
			value = strings.TrimSpace(rest)
		}
		if len(value) > MaxValueBytes {
			return nil, fmt.Errorf("dotenv line %d: value of %s over %d bytes: %w", lineNo, name, MaxValueBytes, ErrInvalid)
		}
		out[name] = value
	}
	return out, nil
}

// untilClose collects a literal value that starts after an opening quote on
// line i and ends at the first closing quote, possibly lines later. Only a
// comment or spaces may follow the closing quote.
func untilClose(lines []string, i int, first, quote string) (string, int, error) {
	var b strings.Builder
	cur := first
	for {
		if j := strings.Index(cur, quote); j >= 0 {
			b.WriteString(cur[:j])
			if err := trailing(cur[j+len(quote):]); err != nil {
				return "", 0, err
			}
			return b.String(), i, nil
		}
		b.WriteString(cur)
		i++
		if i >= len(lines) {
			return "", 0, fmt.Errorf("no closing %s", quote)
		}
		b.WriteByte('\n')
		cur = lines[i]
	}
}

func doubleQuoted(lines []string, i int, first string) (string, int, error) {
	var b strings.Builder
	cur := first
	for {
		for j := 0; j < len(cur); j++ {
			c := cur[j]
			switch {
			case c == '"':
				if err := trailing(cur[j+1:]); err != nil {
					return "", 0, err
				}
				return b.String(), i, nil
			case c == '\\' && j+1 < len(cur):
				j++
				switch cur[j] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$':
					b.WriteByte(cur[j])
				default:
					b.WriteByte('\\')
					b.WriteByte(cur[j])
				}
			default:
				b.WriteByte(c)
			}
		}
		i++
		if i >= len(lines) {
			return "", 0, fmt.Errorf(`no closing "`)
		}
		b.WriteByte('\n')
		cur = lines[i]
	}
}

func trailing(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "#") {
		return nil
	}
	return fmt.Errorf("unexpected %q after the closing quote", s)
}
