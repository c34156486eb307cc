package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/importer"
)

func newLaunchCmd() *cobra.Command {
	var (
		from, name, region, out, env string
		profiles                     []string
		asJSON, includeSecrets       bool
		force, dryRun                bool
	)
	cmd := &cobra.Command{
		Use:   "launch --from FORMAT PATH",
		Short: "Create fly.toml files from another platform's config",
		Long: `Convert an app described for another platform into fly.toml files.

Formats: ` + strings.Join(importer.Formats, ", ") + `.
PATH is the config file or the directory that holds it (compose.yaml,
Procfile + app.json, render.yaml, railway.json/.toml, an ECS task definition
with an optional service JSON, the copilot/ directory).

Writes one fly.toml per app (DIR/fly.toml for one app, DIR/<app>/fly.toml for
several; apps built from the source go in DIR, as fly.<app>.toml when several
share it), a Dockerfile for an app the platform built with buildpacks (Go
apps get builtin = "go" instead), <app>.secrets.env files with secret names
for 'hangar secrets import' (values only with --include-secret-values), and
migration-report.txt / .json: key by key, what was mapped, approximated, or
has no equivalent.`,
		Example: `  hangar launch --from compose docker-compose.yml --out migrated
  hangar launch --from heroku . --name myapp --region fra
  hangar launch --from ecs taskdef.json --json --dry-run`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return &HintError{Err: errors.New("--from is required"), Hint: "name the source format: --from " + strings.Join(importer.Formats, "|")}
			}
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			res, err := importer.Import(from, path, importer.Options{
				Name: name, Region: region, IncludeSecretValues: includeSecrets,
				Profiles: profiles, Environment: env,
			})
			if err != nil {
				var ie *importer.InputError
				if errors.As(err, &ie) {
					return &HintError{Err: err, Hint: ie.Hint}
				}
				if strings.HasPrefix(err.Error(), "unknown format") {
					return &HintError{Err: err, Hint: "use --from " + strings.Join(importer.Formats, "|")}
				}
				return err
			}
			var written []string
			if !dryRun {
				written, err = res.WriteDir(out, force)
				if err != nil {
					var ie *importer.InputError
					if errors.As(err, &ie) {
						return &HintError{Err: err, Hint: ie.Hint}
					}
					return err
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				type appOut struct {
					Name    string              `json:"name"`
					From    string              `json:"from"`
					Config  *importer.FlyConfig `json:"config"`
					Secrets []string            `json:"secrets,omitempty"`
				}
				o := struct {
					Apps    []appOut         `json:"apps"`
					Files   []string         `json:"files,omitempty"`
					Report  *importer.Report `json:"report"`
					Summary map[string]int   `json:"summary"`
				}{Files: written, Report: res.Report, Summary: map[string]int{}}
				for s, n := range res.Report.Counts() {
					o.Summary[string(s)] = n
				}
				for _, a := range res.Apps {
					ao := appOut{Name: a.Name, From: a.From, Config: a.Config}
					for _, s := range a.Secrets {
						ao.Secrets = append(ao.Secrets, s.Name)
					}
					o.Apps = append(o.Apps, ao)
				}
				return printJSON(w, o)
			}
			fmt.Fprint(w, res.Report.Text())
			if dryRun {
				files, err := res.Files()
				if err != nil {
					return err
				}
				for _, f := range files {
					if b := filepath.Base(f.Path); strings.HasSuffix(b, ".toml") || strings.HasPrefix(b, "Dockerfile") {
						fmt.Fprintf(w, "\n--- %s ---\n%s", f.Path, f.Data)
					}
				}
				return nil
			}
			fmt.Fprintln(w, "\nWrote:")
			for _, p := range written {
				fmt.Fprintf(w, "  %s\n", p)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source format: "+strings.Join(importer.Formats, ", "))
	f.StringVarP(&name, "name", "n", "", "app name (a prefix when the source has several apps)")
	f.StringVarP(&region, "region", "r", "", "primary region of the generated apps")
	f.StringVarP(&out, "out", "o", ".", "directory to write fly.toml files, secrets files and the report to")
	f.BoolVar(&asJSON, "json", false, "print the result and the report as JSON")
	f.BoolVar(&includeSecrets, "include-secret-values", false, "copy secret values found in the source files into the secrets files")
	f.StringSliceVar(&profiles, "profile", nil, "compose profiles to enable ('*' for all)")
	f.StringVar(&env, "environment", "", "environment overrides to apply (railway, copilot, render projects)")
	f.BoolVar(&force, "force", false, "overwrite existing fly.toml files")
	f.BoolVar(&dryRun, "dry-run", false, "print the result without writing files")
	return cmd
}
