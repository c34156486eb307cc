package cli

import (
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
