package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestRootCommands checks the explicit command list: every flyctl-style
// command is there once, and every command, at any depth, says what it does.
func TestRootCommands(t *testing.T) {
	root := NewRoot()
	seen := map[string]bool{}
	for _, c := range root.Commands() {
		if seen[c.Name()] {
			t.Errorf("command %q is listed twice", c.Name())
		}
		seen[c.Name()] = true
	}
	for _, name := range []string{
		"apps", "certs", "config", "cost", "deploy", "export", "image", "ips", "launch", "logs",
		"machine", "pg", "releases", "rollback", "scale", "secrets", "server", "status", "tokens", "volumes",
	} {
		if !seen[name] {
			t.Errorf("command %q is missing from NewRoot", name)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" {
			t.Errorf("command %q has no Short description", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// TestUnknownSubcommand: a word that is no command fails with "unknown
// command", at the root and under a command that groups others (cobra
// printed the help and exited 0 there); the group alone still shows its
// help.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"pg", "frobnicate"}, {"machine", "frobnicate"}, {"machine", "leases", "frob"}, {"scale", "frob"}} {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("hangar %s: %v, want an unknown command error\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"machine"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("hangar machine: %v, want its help\n%s", err, out.String())
	}
}
