// Package cli implements the hangar command line: the daemon entry point
// (`hangar server`) and the client commands that talk to it over the API,
// with flag names that mirror flyctl's.
package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// NewRoot builds the root command with every top-level command. This list
// is the one place a reader finds them all; help shows them sorted by name.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "hangar",
		Short:         "Run fly.toml apps on servers you own",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		// The daemon and the hosts.
		newServerCmd(),
		newHostsCmd(),
		newRegionsCmd(),
		newClusterCmd(),
		// Apps and their config.
		newLaunchCmd(),
		newConfigCommand(),
		newAppsCmd(),
		newStatusCmd(),
		newLogsCmd(),
		// Deploys and releases.
		newDeployCmd(),
		newReleasesCmd(),
		newRollbackCmd(),
		newScaleCmd(),
		// Machines and images.
		newMachineCmd(),
		newSSHCmd(),
		newConsoleCmd(),
		newProxyCmd(),
		newImageCmd(),
		// App resources.
		newSecretsCmd(),
		newVolumesCmd(),
		newCertsCmd(),
		newIPsCmd(),
		newTokensCmd(),
		// Migration toolkit.
		newExportCmd(),
		newCostCmd(),
		newPgCmd(),
	)
	refuseUnknownSubcommands(root)
	return root
}

// groupAnnotation marks a command that only groups others (its RunE
// refuses any argument).
const groupAnnotation = "hangar.group"

// refuseUnknownSubcommands makes every command that only groups others
// (`hangar machine`, `hangar pg`) fail on a word that is none of them:
// cobra would print the help and exit 0, so `hangar pg create` would look
// as if it worked. With no word, the help is printed, as before.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if c == c.Root() || !c.HasSubCommands() || c.Runnable() {
		return // the root command already refuses unknown words
	}
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[groupAnnotation] = "true"
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		var names []string
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		return &HintError{Err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()),
			Hint: fmt.Sprintf("%s has: %s; see `%s --help`", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())}
	}
}

// HintError is an error that carries a suggestion of what to do next.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// ExitError makes Main exit with Code after printing Err (if any).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	code := 1
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	}
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	var he *HintError
	if errors.As(err, &he) && he.Hint != "" {
		fmt.Fprintf(os.Stderr, "Hint: %s\n", he.Hint)
	}
	return code
}
