package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/cost"
	"github.com/hangar-dev/hangar/internal/export"
)

type costFlags struct {
	config        string
	count         int
	egressGB      float64
	dedicatedIPv4 int
	region        string
	hostMonthly   float64
	json          bool
	details       bool
}

func newCostCmd() *cobra.Command {
	f := &costFlags{}
	cmd := &cobra.Command{
		Use:   "cost",
		Short: "Estimate the app's monthly cost on Fly.io, AWS Fargate, EC2 and Hangar on EC2",
		Long: "Prices the machines of every process group (count from --count, else min_machines_running,\n" +
			"at least 1), their volumes, IPs and egress, side by side: Fly.io; AWS ECS Fargate with an ALB\n" +
			"and a NAT gateway; one EC2 instance per machine behind an ALB; and EC2 instances running\n" +
			"hangar. Prices come from a table built into hangar that names the source and date of every\n" +
			"number (internal/cost/prices.json; see docs/cost.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCost(cmd.OutOrStdout(), cmd.ErrOrStderr(), f) },
	}
	cmd.Flags().StringVarP(&f.config, "config", "c", appconfig.DefaultConfigFileName, "path to the app config file (fly.toml, .json, .yaml)")
	cmd.Flags().IntVar(&f.count, "count", 0, "machines per process group (default: min_machines_running, at least 1)")
	cmd.Flags().Float64Var(&f.egressGB, "egress-gb", 0, "data sent to the internet per month, in GB")
	cmd.Flags().IntVar(&f.dedicatedIPv4, "dedicated-ipv4", 0, "dedicated IPv4 addresses on Fly.io (a shared IPv4 is free)")
	cmd.Flags().StringVar(&f.region, "region", "", "Fly region to price (default: primary_region, else iad; retired regions are priced as the nearest one, local as iad)")
	cmd.Flags().Float64Var(&f.hostMonthly, "host-monthly", 0, "monthly price of the server running Hangar, in USD (adds a \"Hangar (this host)\" column; shown for primary_region local)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&f.details, "details", false, "list every line of every column")
	return cmd
}

func runCost(stdout, stderr io.Writer, f *costFlags) error {
	if f.count < 0 {
		return &HintError{Err: fmt.Errorf("--count %d is negative", f.count), Hint: "pass the number of machines per process group, or leave it out"}
	}
	if f.egressGB < 0 {
		return &HintError{Err: fmt.Errorf("--egress-gb %g is negative", f.egressGB), Hint: "pass the GB sent to the internet per month, e.g. --egress-gb 100"}
	}
	if f.dedicatedIPv4 < 0 {
		return &HintError{Err: fmt.Errorf("--dedicated-ipv4 %d is negative", f.dedicatedIPv4), Hint: "pass 0 or more"}
	}
	prices, err := cost.DefaultPrices()
	if err != nil {
		return err
	}
	cfg, err := appconfig.Load(f.config)
	if err != nil {
		return exportConfigError(err)
	}
	if _, err := cfg.Validate(false); err != nil {
		return exportConfigError(err)
	}
	// Pricing does not depend on the image.
	app, err := export.FromConfig(cfg, "image", f.count, nil)
	if err != nil {
		return &HintError{Err: err, Hint: "check fly.toml with `hangar config validate`"}
	}
	vols := map[string][]int{}
	for _, g := range app.Groups {
		v, err := export.VolumeSizesGB(cfg, g)
		if err != nil {
			return &HintError{Err: err, Hint: "write initial_size like \"10gb\""}
		}
		vols[g.Name] = v
	}
	in, err := prices.FromApp(app, vols, f.egressGB, f.dedicatedIPv4)
	if err != nil {
		return err
	}
	if f.region != "" {
		in.Region = f.region
	}
	if f.hostMonthly < 0 {
		return &HintError{Err: fmt.Errorf("--host-monthly %g is negative", f.hostMonthly), Hint: "pass the server's monthly price in USD, e.g. --host-monthly 40"}
	}
	in.HostMonthly = f.hostMonthly
	est, err := prices.Estimate(in)
	if err != nil {
		return &HintError{Err: err, Hint: "see docs/cost.md for what can be priced"}
	}
	if f.json {
		_ = printJSON(stdout, est)
		return nil
	}
	return est.WriteText(stdout, f.details)
}
