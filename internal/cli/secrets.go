package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/dotenv"
	"github.com/hangar-dev/hangar/internal/types"
)

func newSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage app secrets (encrypted at rest, injected as env when machines boot)",
		Long: `Manage app secrets. Values are encrypted at rest with the daemon's key and
injected into machines as environment variables (overriding [env]) or
[[files]] with secret_name when they boot. Values are never shown again:
listings carry a digest. Setting or unsetting restarts the app's machines
with the new secrets, with the same health gating as a deploy, unless
--stage; ` + "`hangar secrets deploy`" + ` rolls staged secrets out.`,
	}
	var app, config string
	var stage, asJSON bool
	base := func(name string) string { return "/v1/apps/" + url.PathEscape(name) + "/secrets" }
	withApp := func(c *cobra.Command) *cobra.Command {
		appFlags(c, &app, &config)
		return c
	}
	// update sends values and rolls them out unless --stage.
	update := func(cmd *cobra.Command, values map[string]*string) error {
		name, c, err := appAndClient(app, config)
		if err != nil {
			return err
		}
		res, err := c.setSecrets(cmd.Context(), name, values)
		if err != nil {
			return secretsHint(err)
		}
		out := cmd.OutOrStdout()
		if stage {
			fmt.Fprintf(out, "Secrets are staged as version %d; run `hangar secrets deploy -a %s` to roll them out\n", res.Version, name)
			return nil
		}
		if res.Version == res.DeployedVersion {
			fmt.Fprintln(out, "Secrets unchanged; nothing to roll out")
			return nil
		}
		return rollOutSecrets(cmd, name, res.Version)
	}

	set := withApp(&cobra.Command{
		Use:   "set NAME=VALUE [NAME=VALUE...]",
		Short: "Set secrets (VALUE - reads the value from stdin)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			values := map[string]*string{}
			for _, kv := range args {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return &HintError{Err: fmt.Errorf("%q is not NAME=VALUE", kv), Hint: "quote values with spaces: hangar secrets set NAME='a value'; or NAME=- to read it from stdin"}
				}
				if err := dotenv.ValidName(k); err != nil {
					return &HintError{Err: fmt.Errorf("secret %w", err), Hint: "names are environment variable names, like DATABASE_URL"}
				}
				if v == "-" {
					b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), dotenv.MaxValueBytes+1))
					if err != nil {
						return err
					}
					v = strings.TrimSuffix(string(b), "\n")
				}
				values[k] = &v
			}
			return update(cmd, values)
		},
	})
	set.Flags().BoolVar(&stage, "stage", false, "store the secrets without restarting machines")

	unset := withApp(&cobra.Command{
		Use:   "unset NAME [NAME...]",
		Short: "Remove secrets",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			values := map[string]*string{}
			for _, n := range args {
				values[n] = nil
			}
			return update(cmd, values)
		},
	})
	unset.Flags().BoolVar(&stage, "stage", false, "remove the secrets without restarting machines")

	imp := withApp(&cobra.Command{
		Use:   "import",
		Short: "Set secrets from NAME=VALUE lines (dotenv) on stdin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.InOrStdin() == os.Stdin && stdinIsTerminal() {
				return &HintError{Err: errors.New("secrets import reads NAME=VALUE lines from stdin"), Hint: "pipe a .env file: hangar secrets import < .env"}
			}
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), dotenv.MaxBytes+1))
			if err != nil {
				return err
			}
			parsed, err := dotenv.Parse(string(b))
			if err != nil {
				return &HintError{Err: err, Hint: "one NAME=VALUE per line; quote values with newlines (\"...\" with \\n, or \"\"\"...\"\"\")"}
			}
			if len(parsed) == 0 {
				return &HintError{Err: errors.New("no secrets on stdin"), Hint: "pipe a .env file: hangar secrets import < .env"}
			}
			values := map[string]*string{}
			for k, v := range parsed {
				v := v
				values[k] = &v
			}
			return update(cmd, values)
		},
	})
	imp.Flags().BoolVar(&stage, "stage", false, "store the secrets without restarting machines")

	list := withApp(&cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List secret names, digests and status (never values)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			var res types.SecretsList
			if err := c.do(cmd.Context(), "GET", base(name), nil, &res); err != nil {
				return secretsHint(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res.Secrets)
			}
			if len(res.Secrets) == 0 {
				fmt.Fprintf(out, "App %s has no secrets; set one with `hangar secrets set NAME=VALUE -a %s`\n", name, name)
				return nil
			}
			sort.Slice(res.Secrets, func(i, j int) bool { return res.Secrets[i].Name < res.Secrets[j].Name })
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIGEST\tCREATED AT\tUPDATED AT\tSTATUS")
			for _, s := range res.Secrets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Digest, ago(s.CreatedAt), ago(s.UpdatedAt), s.Status)
			}
			return tw.Flush()
		},
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	dep := withApp(&cobra.Command{
		Use: "deploy", Short: "Roll staged secrets out to the app's machines", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := appName(app, config)
			if err != nil {
				return err
			}
			return rollOutSecrets(cmd, name, 0)
		},
	})
	cmd.AddCommand(set, unset, imp, list, dep)
	return cmd
}

// rollOutSecrets asks the daemon to restart the app's machines with the
// latest secrets and prints the progress.
// setSecrets stores secrets of app (a nil value unsets one) without
// rolling them out: the answer says whether a rollout is due.
func (c *client) setSecrets(ctx context.Context, app string, values map[string]*string) (*types.SecretsList, error) {
	var res types.SecretsList
	if err := c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/secrets", map[string]any{"values": values}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func rollOutSecrets(cmd *cobra.Command, app string, version int) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if version > 0 {
		fmt.Fprintf(out, "Rolling out secrets version %d to the machines of %s\n", version, app)
	}
	resp, err := c.send(cmd.Context(), "POST", "/v1/apps/"+url.PathEscape(app)+"/secrets_deploy", nil, "")
	if err != nil {
		return secretsHint(err)
	}
	defer resp.Body.Close()
	final, err := printReleaseStream(out, resp.Body, false)
	if err != nil {
		return err
	}
	if final.Error != "" {
		return &HintError{Err: fmt.Errorf("rolling out secrets failed: %s", final.Error),
			Hint: "the secrets are stored (staged); fix the machines (`hangar logs`) and run `hangar secrets deploy`"}
	}
	fmt.Fprintln(out, "Secrets are deployed")
	return nil
}

func secretsHint(err error) error {
	if isNotFound(err) {
		return &HintError{Err: err, Hint: "check the app name (`hangar apps list`) and the secret names (`hangar secrets list`)"}
	}
	return err
}

// stdinIsTerminal reports whether stdin is a terminal (no piped input).
func stdinIsTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
