package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/google/shlex"
	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// newSSHCmd is `hangar ssh`: flyctl's `ssh console`, through the API (no
// SSH daemon in the machine, no keys: the API token decides).
func newSSHCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ssh", Short: "Open a shell or run a command in a machine"}
	var (
		app, config, machine, region, command, user string
		sel, ptyOn, noPty                           bool
	)
	console := &cobra.Command{
		Use:   "console",
		Short: "Open a shell (or run -C COMMAND) in a running machine of the app",
		Long: "Open a shell (/bin/bash, else /bin/sh) or run a command in a started machine, with the machine's\n" +
			"environment (the image's env, [env], FLY_* and secrets), through the Hangar API: no SSH daemon\n" +
			"or keys needed. A shell gets a terminal; -C runs without one (stdout and stderr apart) unless --pty.\n" +
			"The command's exit code is hangar's.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			id, err := pickMachine(cmd.Context(), c, name, machine, region, sel)
			if err != nil {
				return err
			}
			var argv []string
			if command != "" {
				if argv, err = shlex.Split(command); err != nil {
					return &HintError{Err: fmt.Errorf("-C %q: %w", command, err), Hint: "quote the command as a shell would: -C 'sh -c \"echo hi\"'"}
				}
			}
			tty := command == "" || ptyOn
			if noPty {
				tty = false
			}
			code, err := c.console(cmd.Context(), name, id, consoleOptions{
				command: argv, tty: tty, user: user,
				stdin: os.Stdin, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(),
			})
			return exitWith(code, err)
		},
	}
	appFlags(console, &app, &config)
	f := console.Flags()
	f.BoolVarP(&sel, "select", "s", false, "pick the machine from a list")
	f.StringVar(&machine, "machine", "", "the machine's id (default: a started machine of the app)")
	f.StringVarP(&region, "region", "r", "", "a machine of this region")
	f.StringVarP(&command, "command", "C", "", "run this command instead of a shell")
	f.BoolVar(&ptyOn, "pty", false, "allocate a terminal (default: only for a shell)")
	f.BoolVar(&noPty, "no-pty", false, "never allocate a terminal")
	f.StringVarP(&user, "user", "u", "", "run as this user of the image (default: the machine's)")
	cmd.AddCommand(console, newSFTPCmd())
	return cmd
}

// pickMachine is the machine a console opens in: --machine, else one the
// person selects (-s), else the first started machine (of --region).
func pickMachine(ctx context.Context, c *client, app, machine, region string, sel bool) (string, error) {
	if machine != "" {
		return machine, nil
	}
	ms, err := c.Machines(ctx, app)
	if err != nil {
		return "", fmt.Errorf("list machines of %s: %w", app, err)
	}
	var started []types.Machine
	for _, m := range ms {
		if m.State == types.StateStarted && (region == "" || m.Region == region) {
			started = append(started, m)
		}
	}
	if len(started) == 0 {
		where := ""
		if region != "" {
			where = " in region " + region
		}
		return "", &HintError{Err: fmt.Errorf("app %s has %w%s", app, errNoStartedMachine, where),
			Hint: fmt.Sprintf("see `hangar machine list -a %s`; start one with `hangar machine start -a %s ID`", app, app)}
	}
	if !sel || len(started) == 1 {
		return started[0].ID, nil
	}
	if !isTerminal(os.Stdin) {
		return "", &HintError{Err: fmt.Errorf("--select needs a terminal to ask on"), Hint: "name the machine with --machine ID"}
	}
	for i, m := range started {
		group := ""
		if m.Config != nil {
			group = m.Config.Metadata[types.MetaProcessGroup]
		}
		fmt.Fprintf(os.Stderr, "%d) %s  %s  %s\n", i+1, m.ID, m.Region, group)
	}
	fmt.Fprint(os.Stderr, "Machine number: ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n < 1 || n > len(started) {
		return "", &HintError{Err: fmt.Errorf("no machine %q", strings.TrimSpace(line)), Hint: fmt.Sprintf("answer a number from 1 to %d", len(started))}
	}
	return started[n-1].ID, nil
}
