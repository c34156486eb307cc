package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/export"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export an app's fly.toml to another platform's configuration",
	}
	cmd.AddCommand(newExportAWSCmd())
	return cmd
}

type exportAWSFlags struct {
	config  string
	format  string
	out     string
	image   string
	region  string
	count   int
	secrets []string
}

func newExportAWSCmd() *cobra.Command {
	f := &exportAWSFlags{}
	cmd := &cobra.Command{
		Use:   "aws",
		Short: "Write ECS Fargate + ALB definitions (CloudFormation, Terraform or raw API inputs) for the app",
		Long: "Maps each process group of fly.toml to an ECS task definition and Fargate service behind an\n" +
			"Application Load Balancer, with target groups and health checks from the service checks,\n" +
			"listeners with the HTTP→HTTPS redirect, secrets as Secrets Manager references (names only),\n" +
			"CloudWatch Logs, and release_command as a one-off task to run before each service update.\n" +
			"What has no AWS equivalent is printed as warnings on stderr.\n\n" +
			"Formats: cloudformation (YAML template), terraform (HCL for the hashicorp/aws provider),\n" +
			"ecs-json (the ECS, ELBv2, IAM and CloudWatch Logs API inputs in order, for\n" +
			"`aws ... --cli-input-json`). See docs/export-aws.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExportAWS(cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	cmd.Flags().StringVarP(&f.config, "config", "c", appconfig.DefaultConfigFileName, "path to the app config file (fly.toml, .json, .yaml)")
	cmd.Flags().StringVar(&f.format, "format", "", "output format: cloudformation, terraform or ecs-json (required)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the files into this directory instead of printing to stdout")
	cmd.Flags().StringVar(&f.image, "image", "", "container image the tasks run (default: [build] image of fly.toml)")
	cmd.Flags().StringVar(&f.region, "region", "us-east-1", "AWS region")
	cmd.Flags().IntVar(&f.count, "count", 0, "tasks per process group (default: min_machines_running, at least 1)")
	cmd.Flags().StringArrayVar(&f.secrets, "secret", nil, "name of a secret the app reads from its environment (repeatable; values are never read)")
	return cmd
}

func runExportAWS(stdout, stderr io.Writer, f *exportAWSFlags) error {
	switch f.format {
	case "cloudformation", "terraform", "ecs-json":
	case "":
		return &HintError{Err: errors.New("no --format given"), Hint: "pass --format cloudformation, --format terraform or --format ecs-json"}
	default:
		return &HintError{Err: fmt.Errorf("unknown format %q", f.format), Hint: "use cloudformation, terraform or ecs-json"}
	}
	if f.count < 0 {
		return &HintError{Err: fmt.Errorf("--count %d is negative", f.count), Hint: "pass the number of tasks per process group, or leave it out"}
	}
	cfg, err := exportLoadConfig(f.config, stderr)
	if err != nil {
		return err
	}
	image := f.image
	if image == "" && cfg.Build != nil {
		image = cfg.Build.Image
	}
	if image == "" {
		return &HintError{Err: errors.New("no image to run: fly.toml has no [build] image"), Hint: "pass the image the tasks should run, e.g. --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1"}
	}
	app, err := export.FromConfig(cfg, image, f.count, f.secrets)
	if err != nil {
		return &HintError{Err: err, Hint: "check fly.toml with `hangar config validate`"}
	}
	plan, err := export.Build(app, export.Options{Image: image, Region: f.region})
	if err != nil {
		return &HintError{Err: err, Hint: "fix the setting named above or the flag, then run the export again"}
	}

	files, err := plan.Render(f.format)
	if err != nil {
		return err
	}

	if f.out == "" {
		// stdout gets one document: the template, main.tf or plan.json.
		if _, err := stdout.Write(files[0].Data); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(f.out, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", f.out, err)
		}
		for _, file := range files {
			if err := exportWriteFileAtomic(filepath.Join(f.out, file.Name), file.Data); err != nil {
				return err
			}
		}
		fmt.Fprintf(stderr, "wrote %d file(s) to %s\n", len(files), f.out)
	}
	for _, w := range plan.Warnings {
		fmt.Fprintln(stderr, w.String())
	}
	return nil
}

// exportLoadConfig reads and validates fly.toml, printing its diagnostics.
func exportLoadConfig(path string, stderr io.Writer) (*appconfig.Config, error) {
	cfg, err := appconfig.Load(path)
	if err != nil {
		return nil, exportConfigError(err)
	}
	if _, err := cfg.Validate(false); err != nil {
		return nil, exportConfigError(err)
	}
	if cfg.AppName == "" {
		return nil, &HintError{Err: fmt.Errorf("%s has no app name", path), Hint: "add `app = \"name\"` at the top of fly.toml"}
	}
	return cfg, nil
}

func exportConfigError(err error) error {
	var ae *appconfig.Error
	if errors.As(err, &ae) {
		hint := ae.Hint()
		if strings.Contains(err.Error(), hint) {
			hint = "" // the message already carries it
		}
		return &HintError{Err: err, Hint: hint}
	}
	return err
}

// exportWriteFileAtomic writes b to path through a synced temp file.
func exportWriteFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
