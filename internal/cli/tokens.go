package cli

import (
	"errors"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// newTokensCmd is flyctl's `tokens`: create (org-wide, or with --app for
// one app, like `fly tokens create deploy`), list and revoke.
func newTokensCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Manage API tokens"}

	var app, expiry, name string
	var asJSON bool
	create := &cobra.Command{
		Use: "create", Short: "Create an API token (org-wide, or for one app with --app)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return createToken(cmd, app, expiry, name, asJSON)
		},
	}
	create.Flags().StringVarP(&app, "app", "a", "", "limit the token to this app")
	create.Flags().StringVarP(&expiry, "expiry", "x", "", "lifetime of the token, e.g. 720h (default: no expiry)")
	create.Flags().StringVarP(&name, "name", "n", "", "a name to recognise the token by")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	// flyctl's spellings: `tokens create deploy -a APP`, `tokens create org`.
	deployCmd := &cobra.Command{
		Use: "deploy", Short: "Create a token for one app", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return &HintError{Err: errors.New("no app given"), Hint: "pass -a APP"}
			}
			return createToken(cmd, app, expiry, name, asJSON)
		},
	}
	orgCmd := &cobra.Command{
		Use: "org", Short: "Create a token for the whole org", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return createToken(cmd, "", expiry, name, asJSON)
		},
	}
	for _, c := range []*cobra.Command{deployCmd, orgCmd} {
		c.Flags().StringVarP(&expiry, "expiry", "x", "", "lifetime of the token, e.g. 720h (default: no expiry)")
		c.Flags().StringVarP(&name, "name", "n", "", "a name to recognise the token by")
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	}
	deployCmd.Flags().StringVarP(&app, "app", "a", "", "the app the token is for")
	create.AddCommand(deployCmd, orgCmd)

	var listJSON bool
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List API tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var ts []types.TokenInfo
			if err := c.do(cmd.Context(), "GET", "/v1/tokens", nil, &ts); err != nil {
				return tokenHint(err)
			}
			if listJSON {
				return printJSON(cmd.OutOrStdout(), ts)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tAPP\tCREATED\tEXPIRES\tSTATUS")
			for _, t := range ts {
				exp := "never"
				if t.ExpiresAt != nil {
					exp = t.ExpiresAt.Format(time.RFC3339)
				}
				status := "active"
				switch {
				case t.Revoked:
					status = "revoked"
				case t.Expired:
					status = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Scope, t.App, ago(t.CreatedAt.Format(time.RFC3339)), exp, status)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use: "revoke ID...", Short: "Revoke API tokens (they stop working at once)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.do(cmd.Context(), "DELETE", "/v1/tokens/"+id, nil, nil); err != nil {
					if isNotFound(err) {
						return &HintError{Err: err, Hint: "see the ids with `hangar tokens list`"}
					}
					return tokenHint(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s\n", id)
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func createToken(cmd *cobra.Command, app, expiry, name string, asJSON bool) error {
	if expiry != "" {
		if d, err := time.ParseDuration(expiry); err != nil || d <= 0 {
			return &HintError{Err: fmt.Errorf("--expiry %q is not a positive duration", expiry), Hint: "use hours, e.g. --expiry 720h for 30 days"}
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	var out types.CreateTokenResponse
	if err := c.do(cmd.Context(), "POST", "/v1/tokens", types.CreateTokenRequest{Name: name, App: app, Expiry: expiry}, &out); err != nil {
		return tokenHint(err)
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), out)
	}
	fmt.Fprintln(cmd.OutOrStdout(), out.Token)
	fmt.Fprintf(cmd.ErrOrStderr(), "Token %s (%s scope%s) created; it is shown only this once.\n", out.ID, out.Scope, map[bool]string{true: ", app " + out.App}[out.App != ""])
	return nil
}

func tokenHint(err error) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
		return &HintError{Err: err, Hint: "managing tokens needs an org token (the admin token in <data-dir>/admin-token is one)"}
	}
	return err
}
