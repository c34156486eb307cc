package cli

import (
	"os"

	"github.com/spf13/cobra"
)

// newMachineExecCmd is `hangar machine exec ID COMMAND...`: a command in a
// started machine, without a terminal, its exit code passed through
// (flyctl's `machine exec`, over the console WebSocket: output streams as
// it comes, of any size).
func newMachineExecCmd() *cobra.Command {
	var app, config, user string
	var timeout int
	cmd := &cobra.Command{
		Use:   "exec ID COMMAND...",
		Short: "Run a command in a machine (exit code passed through)",
		Long: "Run a command in a started machine, with the machine's environment; stdin is passed on,\n" +
			"stdout and stderr come back apart, and the command's exit code is hangar's.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			code, err := c.console(cmd.Context(), name, args[0], consoleOptions{
				command: args[1:], user: user, timeout: timeout,
				stdin: os.Stdin, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(),
			})
			return exitWith(code, err)
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().IntVar(&timeout, "timeout", 0, "kill the command after this many seconds (default: none)")
	cmd.Flags().StringVarP(&user, "user", "u", "", "run as this user of the image")
	// Flags after the command are the command's: exec ID ls -l.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
