// Package cli implements the hangar command line: the daemon entry point
// (`hangar server`) and the client commands that talk to it over the API,
// with flag names that mirror flyctl's.
package cli

import (
	"errors"
	"fmt"
	"os"

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
		// The daemon.
		newServerCmd(),
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
	return root
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
