package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/types"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check and inspect fly.toml",
		Long: "Parse, validate and lint a fly.toml (or .json/.yaml) the way flyctl reads it,\n" +
			"and show the machine config each process group gets.",
	}
	cmd.AddCommand(newConfigValidate(), newConfigShow(), newConfigLint())
	return cmd
}

type configFlags struct {
	file   string
	json   bool
	strict bool
}

func (f *configFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", appconfig.DefaultConfigFileName, "path to the app config file (fly.toml, .json, .yaml)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
}

// loadConfig reads the file; on a parse error it prints the diagnostics
// (as JSON with --json) and returns an exit error.
func loadConfig(cmd *cobra.Command, f *configFlags) (*appconfig.Config, error) {
	out := cmd.OutOrStdout()
	cfg, err := appconfig.Load(f.file)
	if err == nil {
		return cfg, nil
	}
	var ae *appconfig.Error
	if !errors.As(err, &ae) {
		return nil, err
	}
	if f.json {
		_ = printJSON(out, diagnosticsReport{Valid: false, File: f.file, Errors: ae.Diagnostics})
	} else {
		printDiagnostics(cmd.ErrOrStderr(), ae.Diagnostics)
	}
	return nil, &ExitError{Code: 1}
}

type diagnosticsReport struct {
	File     string                 `json:"file"`
	Valid    bool                   `json:"valid"`
	Errors   []appconfig.Diagnostic `json:"errors"`
	Warnings []appconfig.Diagnostic `json:"warnings"`
}

func printDiagnostics(w io.Writer, ds []appconfig.Diagnostic) {
	for _, d := range ds {
		fmt.Fprintln(w, d.String())
	}
}

func newConfigValidate() *cobra.Command {
	f := &configFlags{}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Validate fly.toml; exits non-zero if it has errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			cfg, err := loadConfig(cmd, f)
			if err != nil {
				return err
			}
			warnings, verr := cfg.Validate(f.strict)
			rep := diagnosticsReport{File: f.file, Valid: verr == nil, Warnings: warnings, Errors: []appconfig.Diagnostic{}}
			if rep.Warnings == nil {
				rep.Warnings = []appconfig.Diagnostic{}
			}
			var ae *appconfig.Error
			if errors.As(verr, &ae) {
				rep.Errors = ae.Diagnostics
			} else if verr != nil {
				return verr
			}
			if f.json {
				_ = printJSON(out, rep)
			} else {
				printDiagnostics(out, rep.Warnings)
				printDiagnostics(out, rep.Errors)
				if rep.Valid {
					fmt.Fprintf(out, "%s is valid (process groups: %v)\n", f.file, cfg.ProcessGroups())
				} else {
					fmt.Fprintf(out, "%s is not valid: %d error(s)\n", f.file, len(rep.Errors))
				}
			}
			if !rep.Valid {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&f.strict, "strict", false, "treat unknown keys and coerced values as errors")
	return cmd
}

func newConfigShow() *cobra.Command {
	f := &configFlags{}
	var image string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the normalized config and the machine config of each process group",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			cfg, err := loadConfig(cmd, f)
			if err != nil {
				return err
			}
			if image == "" && cfg.Build != nil {
				image = cfg.Build.Image
			}
			machines := map[string]*types.MachineConfig{}
			for _, g := range cfg.ProcessGroups() {
				mc, err := cfg.ToMachineConfig(g, image)
				if err != nil {
					return &HintError{Err: fmt.Errorf("process group %s: %w", g, err), Hint: "run `hangar config validate` for details"}
				}
				machines[g] = mc
			}
			if f.json {
				_ = printJSON(out, struct {
					Config   *appconfig.Config               `json:"config"`
					Machines map[string]*types.MachineConfig `json:"machines"`
				}{cfg, machines})
				return nil
			}
			fmt.Fprintf(out, "# %s (normalized)\n", f.file)
			tomlText, err := cfg.MarshalTOML()
			if err != nil {
				return err
			}
			out.Write(tomlText)
			for _, g := range cfg.ProcessGroups() {
				fmt.Fprintf(out, "\n# machine config for process group %q\n", g)
				_ = printJSON(out, machines[g])
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&image, "image", "", "image to put in the machine configs (default: [build] image)")
	return cmd
}

func newConfigLint() *cobra.Command {
	f := &configFlags{}
	cmd := &cobra.Command{
		Use:   "lint",
		Short: "Point out settings that are valid but break real deploys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			cfg, err := loadConfig(cmd, f)
			if err != nil {
				return err
			}
			findings := cfg.Lint()
			if f.json {
				if findings == nil {
					findings = []appconfig.Diagnostic{}
				}
				_ = printJSON(out, struct {
					File     string                 `json:"file"`
					Findings []appconfig.Diagnostic `json:"findings"`
				}{f.file, findings})
				return nil
			}
			printDiagnostics(out, findings)
			if len(findings) == 0 {
				fmt.Fprintf(out, "%s: no problems found\n", f.file)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
