package dotenv

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse("# comment\n\nA=1\nexport B = two words # note\nC=\"line1\\nline2 \\\"q\\\"\"\nD='lit $X \\n'\nE=\"\"\"multi\nline\"\"\"\nF=\"open\nclose\"\nG=\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "line1\nline2 \"q\"", "D": `lit $X \n`, "E": "multi\nline", "F": "open\nclose", "G": ""}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, bad := range []string{"NOEQUALS", "1A=x", "A=\"unclosed", "A='x' trailing", "A=\"\"\"never"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"A=1", "export B=\"x\\ny\"", "C='a\nb'", "D=\"\"\"x\n\"\"\"", "# c\nE=v # c", "=", "A=\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		m, err := Parse(src)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without category: %v", err)
			}
			return
		}
		for k, v := range m {
			if ValidName(k) != nil {
				t.Fatalf("invalid name %q accepted", k)
			}
			if len(v) > MaxValueBytes {
				t.Fatal("value over the limit")
			}
			// A value written back double-quoted parses to itself.
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(v)
			back, err := Parse(k + "=\"" + q + "\"")
			if err != nil || back[k] != v {
				t.Fatalf("round trip of %q: %q %v", v, back[k], err)
			}
		}
	})
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"A", "_x", "DATABASE_URL", "a1", strings.Repeat("N", 256)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1A", "A=B", "A B", "A-B", "\x00", "É", strings.Repeat("N", 257)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted it", bad)
		}
	}
}
