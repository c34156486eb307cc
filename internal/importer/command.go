package importer

import (
	"fmt"
	"regexp"
	"strings"
)

// Command lines that a platform ran through a shell (Procfile entries,
// Render and Railway start and pre-deploy commands) and that a machine runs
// as plain words. One scanner decides whether a line needs the shell, so
// every importer wraps the same lines in sh -c.

// assignmentRE is a shell variable assignment word: NAME=value.
var assignmentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// shellSyntax says why cmd needs a shell to run as its author meant, or ""
// when splitting it into words (as fly.toml's [processes] are) runs it the
// same. It honours quotes: a '$' inside single quotes is a plain character.
func shellSyntax(cmd string) string {
	var (
		inSingle, inDouble bool
		wordStart          = true // at the start of a word
		firstWord          = true // the word being read is the command's first
		word               strings.Builder
	)
	endWord := func() string {
		w := word.String()
		word.Reset()
		if w == "" {
			return ""
		}
		if firstWord && assignmentRE.MatchString(w) {
			return fmt.Sprintf("a leading variable assignment (%s)", w)
		}
		firstWord = false
		return ""
	}
	for i := 0; i < len(cmd); i++ {
		ch := cmd[i]
		switch {
		case inSingle:
			if ch == '\'' {
				inSingle = false
			}
			word.WriteByte(ch)
			continue
		case inDouble:
			switch ch {
			case '"':
				inDouble = false
			case '\\':
				if i+1 >= len(cmd) {
					return "a trailing backslash"
				}
				word.WriteByte(ch)
				ch = cmd[i+1]
				i++
			case '$':
				return "a variable expansion ($)"
			case '`':
				return "a command substitution (`)"
			}
			word.WriteByte(ch)
			continue
		}
		switch ch {
		case '\'':
			inSingle = true
		case '"':
			inDouble = true
		case '\\':
			if i+1 >= len(cmd) {
				return "a trailing backslash"
			}
			word.WriteByte(ch)
			ch = cmd[i+1]
			i++
		case ' ', '\t':
			if why := endWord(); why != "" {
				return why
			}
			wordStart = true
			continue
		case '\n', ';':
			return "a command separator (; or a new line)"
		case '$':
			return "a variable expansion ($)"
		case '`':
			return "a command substitution (`)"
		case '|':
			return "a pipe or || (|)"
		case '&':
			return "&& or a background job (&)"
		case '<', '>':
			return "a redirection (< or >)"
		case '*', '?', '[':
			return "a glob pattern (* ? [)"
		case '(', ')':
			return "a subshell or grouping (( ))"
		case '{', '}':
			if wordStart || ch == '}' {
				return "a brace group or expansion ({ })"
			}
		case '~':
			if wordStart {
				return "a home directory (~)"
			}
		case '#':
			if wordStart {
				return "a comment (#)"
			}
		}
		word.WriteByte(ch)
		wordStart = false
	}
	if inSingle || inDouble {
		return "an unterminated quote"
	}
	return endWord()
}

// shellCommand makes a command line that a platform ran through a shell
// safe to run without one: with shell syntax it becomes sh -c '...', and
// why says which syntax.
func shellCommand(cmd string) (out string, wrapped bool) {
	out, why := shellWrap(cmd)
	return out, why != ""
}

// shellWrap is shellCommand that also says why it wrapped.
func shellWrap(cmd string) (string, string) {
	cmd = strings.TrimSpace(cmd)
	why := shellSyntax(cmd)
	if why == "" {
		return cmd, ""
	}
	return "sh -c " + shellJoin([]string{cmd}), why
}

// templateRE finds {{placeholder}} template variables that a deploy tool
// (ecs-cli, Copilot, a CI template) fills in before the file is used.
var templateRE = regexp.MustCompile(`\{\{\s*[^{}]*?\s*\}\}`)

// templatePlaceholders lists the {{...}} placeholders in s.
func templatePlaceholders(s string) []string {
	return templateRE.FindAllString(s, -1)
}
