package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHintsNameRealCommands collects every `hangar …` command that the
// module's non-test Go code puts in a string (the CLI's hints, the
// server's errors that tell people what to run) and checks that each
// resolves to a real command with those flags and an acceptable number
// of arguments.
func TestHintsNameRealCommands(t *testing.T) {
	root := NewRoot()
	hints := map[string]hint{} // command line -> where
	for _, dir := range []string{"../../internal", "../../cmd"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			for line, h := range hintsIn(t, p) {
				hints[line] = h
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(hints) < 50 {
		t.Fatalf("found only %d hints: is the walk broken?", len(hints))
	}
	for line, h := range hints {
		if h.bare && findSub(root, strings.Fields(line)[1]) == nil {
			continue // prose about hangar ("hangar proxy: …"), not a command
		}
		if err := resolveHint(root, line, h.bare); err != "" {
			t.Errorf("%s: `%s`: %s", h.where, line, err)
		}
	}
}

// hint is where a command line was found, and whether it was bare (not
// in backquotes: where it ends is a guess, so only its command path and
// flags are checked).
type hint struct {
	where string
	bare  bool
}

// hintsIn returns the `hangar …` command lines in the string literals of
// a Go file, with their positions.
func hintsIn(t *testing.T, path string) map[string]hint {
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]hint{}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		for {
			i := strings.Index(s, "`hangar ")
			if i < 0 {
				break
			}
			s = s[i+1:]
			end := strings.IndexByte(s, '`')
			if end < 0 {
				end = len(s)
			}
			out[s[:end]] = hint{where: fset.Position(lit.Pos()).String()}
			s = s[end:]
		}
		for _, line := range bareHints(s) {
			if _, ok := out[line]; !ok {
				out[line] = hint{where: fset.Position(lit.Pos()).String(), bare: true}
			}
		}
		return true
	})
	return out
}

// bareHints finds the commands a string tells people to run without
// backquotes: "hangar …" after ": ", "run ", "with " or
// "then ", up to the end of the clause (a newline, ";", ",", a shell
// redirection or a closing parenthesis).
func bareHints(s string) []string {
	var out []string
	for _, lead := range []string{": ", "run ", "with ", "then "} {
		rest := s
		for {
			i := strings.Index(rest, lead+"hangar ")
			if i < 0 {
				break
			}
			rest = rest[i+len(lead):]
			end := strings.IndexAny(rest, "\n;,)<|`")
			if end < 0 {
				end = len(rest)
			}
			if line := strings.TrimRight(strings.TrimSpace(rest[:end]), ".:"); strings.Count(line, " ") > 0 {
				out = append(out, line)
			}
			rest = rest[end:]
		}
	}
	return out
}

// resolveHint walks root along the words of a command line ("hangar
// machine list -a %s") and says what does not exist; "" if it all does.
// A word that is a format verb or in capitals stands for a value.
// A bare line is checked up to its first argument.
func resolveHint(root *cobra.Command, line string, bare bool) string {
	words := strings.Fields(line)[1:]
	cmd := root
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" { // the rest are arguments
			args = append(args, words[i+1:]...)
			break
		}
		if strings.HasPrefix(w, "[") || w == "…" || w == "..." || strings.Contains(w, "|") {
			return "" // a synopsis, not a command to run
		}
		if strings.HasPrefix(w, "-") && len(w) > 1 && !isPlaceholder(w) {
			name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			var fl = cmd.Flags().Lookup(name)
			if !strings.HasPrefix(w, "--") {
				fl = cmd.Flags().ShorthandLookup(name)
			}
			if fl == nil {
				fl = cmd.InheritedFlags().Lookup(name)
			}
			if fl == nil {
				return "command " + strconv.Quote(cmd.CommandPath()) + " has no flag " + w
			}
			if !hasValue && fl.Value.Type() != "bool" {
				i++ // its value
			}
			continue
		}
		if len(args) == 0 && !isPlaceholder(w) {
			if sub := findSub(cmd, w); sub != nil {
				cmd = sub
				continue
			}
			if cmd.HasSubCommands() && (!cmd.Runnable() || cmd.Annotations[groupAnnotation] != "") {
				return "command " + strconv.Quote(cmd.CommandPath()) + " has no subcommand " + strconv.Quote(w)
			}
		}
		if bare {
			break
		}
		args = append(args, w)
	}
	named := len(words) == strings.Count(cmd.CommandPath(), " ")
	if bare || named {
		return "" // only the path and flags are checked
	}
	if !cmd.Runnable() || cmd.Annotations[groupAnnotation] != "" {
		return "command " + strconv.Quote(cmd.CommandPath()) + " does nothing by itself: name a subcommand"
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, args); err != nil {
			return "command " + strconv.Quote(cmd.CommandPath()) + ": " + err.Error()
		}
	}
	return ""
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// isPlaceholder reports whether a word stands for a value: a format verb
// ("%s", "%d", "%q"), or a name in capitals ("ID", "APP", "<app>").
func isPlaceholder(w string) bool {
	if strings.Contains(w, "%") || strings.HasPrefix(w, "<") || strings.HasPrefix(w, "\"") || strings.HasPrefix(w, "'") {
		return true
	}
	if len(w) == 2 && w[0] == '-' {
		return false // a shorthand flag (-C), not a placeholder
	}
	return strings.ToUpper(w) == w && strings.ToLower(w) != w
}
