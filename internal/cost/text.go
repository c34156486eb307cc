package cost

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText prints the estimate as a table with one column per way of
// running the app and one row per category, then each column's total and
// notes (and, with details, every line).
func (e *Estimate) WriteText(w io.Writer, details bool) error {
	if len(e.Columns) == 0 {
		return fmt.Errorf("cost: nothing priced")
	}
	name := e.App
	if name == "" {
		name = "the app"
	}
	fmt.Fprintf(w, "Monthly cost of %s (USD, %g hours a month, egress %g GB; Fly region %s, AWS region %s; prices read %s)\n\n", name, e.HoursPerMonth, e.EgressGB, e.FlyRegion, e.AWSRegion, e.PricesRead)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "\t"
	for _, c := range e.Columns {
		header += c.Short + "\t"
	}
	fmt.Fprintln(tw, header)
	for _, cat := range Categories {
		row := cat + "\t"
		any := false
		for _, c := range e.Columns {
			sum := 0.0
			for _, l := range c.Lines {
				if l.Category == cat {
					sum += l.Monthly
					any = true
				}
			}
			row += fmt.Sprintf("%.2f\t", sum)
		}
		if any {
			fmt.Fprintln(tw, row)
		}
	}
	row := "total\t"
	for _, c := range e.Columns {
		row += fmt.Sprintf("%.2f\t", c.Total)
	}
	fmt.Fprintln(tw, row)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range e.Columns {
		fmt.Fprintf(w, "\n%s: $%.2f\n", c.Title, c.Total)
		if details {
			for _, l := range c.Lines {
				fmt.Fprintf(w, "  %-60s %10.2f %-15s × %-10.6g = %9.2f\n", l.Item, l.Quantity, l.Unit, l.UnitPrice, l.Monthly)
			}
		}
		for _, n := range c.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	if len(e.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range e.Notes {
			fmt.Fprintf(w, "Note: %s\n", n)
		}
	}
	if len(e.Unsourced) > 0 {
		fmt.Fprintf(w, "\nUnsourced prices used (estimates, see docs/cost.md): %s\n", strings.Join(e.Unsourced, ", "))
	}
	return nil
}
