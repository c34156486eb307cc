package cost

import (
	"math"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/export"
	"github.com/hangar-dev/hangar/internal/types"
)

func prices(t *testing.T) *Prices {
	t.Helper()
	p, err := DefaultPrices()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6 {
		t.Errorf("%s = %.6f, want %.6f (hand calculation)", what, got, want)
	}
}

func column(t *testing.T, e *Estimate, id string) Column {
	t.Helper()
	for _, c := range e.Columns {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no column %s", id)
	return Column{}
}

func line(t *testing.T, c Column, prefix string) Line {
	t.Helper()
	for _, l := range c.Lines {
		if strings.HasPrefix(l.Item, prefix) {
			return l
		}
	}
	t.Fatalf("column %s has no line starting %q: %+v", c.ID, prefix, c.Lines)
	return Line{}
}

var shared1x256 = types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 256}

// Two always-on shared-cpu-1x 256MB machines in iad, 150 GB egress.
func smallApp() Input {
	return Input{App: "hello", Region: "iad", EgressGB: 150,
		Groups: []GroupInput{{Name: "app", Guest: shared1x256, Count: 2, Public: true}}}
}

func TestFlyMachinesHandCalculation(t *testing.T) {
	t.Parallel()
	e, err := prices(t).Estimate(smallApp())
	if err != nil {
		t.Fatal(err)
	}
	fly := column(t, e, "fly")
	// Fly charges $0.00000075 per shared vCPU-second in iad: $1.944 per 30
	// days (720 h) for shared-cpu-1x 256MB.
	// 2 machines × 730 h × $1.944/720 h = $3.942
	near(t, "fly machines", line(t, fly, "app: 2 × machine").Monthly, 2*730*(1.944/720))
	near(t, "fly machines", line(t, fly, "app: 2 × machine").Monthly, 3.942)
	// 150 GB × $0.02/GB (North America) = $3.00
	near(t, "fly egress", line(t, fly, "egress").Monthly, 3.00)
	near(t, "fly total", fly.Total, 3.942+3.00)
}

func TestFlyRAMAndRegionMarkup(t *testing.T) {
	t.Parallel()
	p := prices(t)
	// shared-cpu-1x with 1GB: $1.944 + (1024-256)/1024 GB × $5.00 = $5.694 per 720 h.
	near(t, "shared-cpu-1x 1GB hourly", p.FlyMachineHourly(types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 1024}, "iad"), 5.694/720)
	// performance-2x 4GB includes 2 × 2GB: 2 × $31 = $62 per 720 h,
	// × 1.153846154 in fra = $71.538... per 720 h.
	near(t, "performance-2x fra hourly", p.FlyMachineHourly(types.MachineGuest{CPUKind: "performance", CPUs: 2, MemoryMB: 4096}, "fra"), 62*1.153846154/720)
	// shared-cpu-2x with 2GB: 2 × $1.944 + (2048-512)/1024 × $5 = $11.388
	near(t, "shared-cpu-2x 2GB month", p.FlyMachineHourly(types.MachineGuest{CPUKind: "shared", CPUs: 2, MemoryMB: 2048}, "iad")*720, 11.388)
}

// TestFlyPricesMatchFlysExamples checks the table against the worked
// examples on Fly's cost-management page (superfly/docs
// about/cost-management.html.md @a868d495, 2026-01-20): one shared-1x
// 256MB in sjc running full-time is $2.32 a month; three shared-1x 1GB in
// sjc are $20.37. The $2.19 + $6/GB prices this table used before gave
// $2.61 and $23.81 and failed this test.
func TestFlyPricesMatchFlysExamples(t *testing.T) {
	t.Parallel()
	p := prices(t)
	month := func(mem int) float64 {
		return p.FlyMachineHourly(types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: mem}, "sjc") * 720
	}
	if got := math.Round(month(256)*100) / 100; got != 2.32 {
		t.Errorf("shared-1x 256MB in sjc = $%.2f a month, Fly's page says $2.32", got)
	}
	if got := math.Round(3*month(1024)*100) / 100; got != 20.37 {
		t.Errorf("3 × shared-1x 1GB in sjc = $%.2f a month, Fly's page says $20.37", got)
	}
}

func TestAWSColumnsHandCalculation(t *testing.T) {
	t.Parallel()
	e, err := prices(t).Estimate(smallApp())
	if err != nil {
		t.Fatal(err)
	}
	// Fargate: shared-cpu-1x 256MB → 0.25 vCPU / 512 MB (smallest size).
	// 2 tasks × 730 h × (0.25 × $0.04048 + 0.5 GB × $0.004445) = $18.02005
	fg := column(t, e, "aws-fargate")
	near(t, "fargate tasks", line(t, fg, "app: 2 × Fargate task (0.25 vCPU, 512 MB)").Monthly, 2*730*(0.25*0.04048+0.5*0.004445))
	near(t, "fargate tasks", line(t, fg, "app: 2 × Fargate task").Monthly, 18.02005)
	near(t, "ALB hours", line(t, fg, "Application Load Balancer").Monthly, 730*0.0225) // $16.425
	near(t, "ALB LCU", line(t, fg, "ALB capacity units").Monthly, 150*0.008)           // $1.20
	near(t, "ALB IPv4", line(t, fg, "ALB public IPv4").Monthly, 2*730*0.005)           // $7.30
	near(t, "NAT hours", line(t, fg, "NAT gateway (").Monthly, 730*0.045)              // $32.85
	near(t, "NAT IPv4", line(t, fg, "NAT gateway public IPv4").Monthly, 730*0.005)     // $3.65
	near(t, "AWS egress", line(t, fg, "egress").Monthly, (150-100)*0.09)               // $4.50
	near(t, "fargate total", fg.Total, 18.02005+16.425+1.20+7.30+32.85+3.65+4.50)      // $83.94505

	// EC2 + ALB: each 256MB machine fits a t3.micro (1024 MB - 512 MB kept for the OS).
	// 2 × 730 h × $0.0104 = $15.184; 2 × 8 GB root × $0.08 = $1.28;
	// instance IPv4 2 × 730 × $0.005 = $7.30.
	ec2 := column(t, e, "aws-ec2")
	near(t, "ec2 instances", line(t, ec2, "app: 2 × t3.micro").Monthly, 15.184)
	near(t, "ec2 root", line(t, ec2, "root volumes").Monthly, 1.28)
	near(t, "ec2 total", ec2.Total, 15.184+1.28+16.425+1.20+7.30+7.30+4.50)

	// Hangar: both machines fit one t3.micro, but a group of 2 gets 2 hosts.
	// 2 × t3.micro $15.184 + root $1.28 + IPv4 $7.30 + egress $4.50 = $28.264
	hg := column(t, e, "hangar-ec2")
	near(t, "hangar hosts", line(t, hg, "2 × t3.micro").Monthly, 15.184)
	near(t, "hangar total", hg.Total, 15.184+1.28+7.30+4.50)
	for _, l := range hg.Lines {
		if strings.Contains(l.Item, "Load Balancer") || strings.Contains(l.Item, "NAT") {
			t.Errorf("hangar column has %q", l.Item)
		}
	}
}

func TestVolumesAndIPs(t *testing.T) {
	t.Parallel()
	in := Input{Region: "iad", DedicatedIPv4: 1, Groups: []GroupInput{
		{Name: "db", Guest: shared1x256, Count: 3, VolumesGB: []int{10}},
	}}
	e, err := prices(t).Estimate(in)
	if err != nil {
		t.Fatal(err)
	}
	fly := column(t, e, "fly")
	// 3 machines × 10 GB × $0.15 = $4.50; one dedicated IPv4 $2.00.
	near(t, "fly volumes", line(t, fly, "db: volumes").Monthly, 4.50)
	near(t, "fly ipv4", line(t, fly, "dedicated IPv4").Monthly, 2.00)
	// 30 GB of gp3 at $0.08 = $2.40 on every AWS column.
	for _, id := range []string{"aws-fargate", "aws-ec2", "hangar-ec2"} {
		c := column(t, e, id)
		var vol Line
		for _, l := range c.Lines {
			if strings.HasPrefix(l.Item, "db: ") && strings.Contains(l.Item, "gp3") {
				vol = l
			}
		}
		near(t, id+" volumes", vol.Monthly, 2.40)
	}
	// No HTTP service: no ALB anywhere, and no egress line below 100 GB.
	for _, c := range e.Columns {
		for _, l := range c.Lines {
			if strings.Contains(l.Item, "Load Balancer") || strings.HasPrefix(l.Item, "egress") {
				t.Errorf("%s: unexpected line %q", c.ID, l.Item)
			}
		}
	}
}

func TestPackHangarPicksCheapestSize(t *testing.T) {
	t.Parallel()
	p := prices(t)
	// 6 × 1GB shared machines: t3.small holds 1 (2048-512=1536 MB) → 6 ×
	// $0.0208 = $0.1248/h; t3.medium holds 3 (3584 MB) → 2 × $0.0416 =
	// $0.0832/h; t3.large holds all 6 but 2 hosts are kept for a group of
	// 6 → 2 × $0.0832 = $0.1664/h. t3.medium × 2 is cheapest.
	pk, err := p.PackHangar(Input{Groups: []GroupInput{{Name: "web", Count: 6, Guest: types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 1024}}}})
	if err != nil {
		t.Fatal(err)
	}
	if pk.Instance.Type != "t3.medium" || pk.Hosts != 2 {
		t.Errorf("packing = %d × %s, want 2 × t3.medium", pk.Hosts, pk.Instance.Type)
	}
	// One performance-2x (2 dedicated vCPU, 4GB): t3.large has 2 - 0.25 =
	// 1.75 vCPU free, too few; t3.xlarge (4 vCPU) is the smallest.
	pk, err = p.PackHangar(Input{Groups: []GroupInput{{Name: "worker", Count: 1, Guest: types.MachineGuest{CPUKind: "performance", CPUs: 2, MemoryMB: 4096}}}})
	if err != nil {
		t.Fatal(err)
	}
	if pk.Instance.Type != "t3.xlarge" || pk.Hosts != 1 {
		t.Errorf("packing = %d × %s, want 1 × t3.xlarge", pk.Hosts, pk.Instance.Type)
	}
	// performance-16x does not fit any t3.
	if _, err := p.PackHangar(Input{Groups: []GroupInput{{Name: "big", Count: 1, Guest: types.MachineGuest{CPUKind: "performance", CPUs: 16, MemoryMB: 32768}}}}); err == nil {
		t.Error("a 16-CPU machine packed onto a t3")
	}
}

func TestEstimateRejectsBadInput(t *testing.T) {
	t.Parallel()
	p := prices(t)
	cases := map[string]Input{
		"no groups":     {Region: "iad"},
		"zero count":    {Region: "iad", Groups: []GroupInput{{Name: "a", Guest: shared1x256}}},
		"negative gb":   {Region: "iad", EgressGB: -1, Groups: []GroupInput{{Name: "a", Guest: shared1x256, Count: 1}}},
		"negative host": {Region: "local", HostMonthly: -5, Groups: []GroupInput{{Name: "a", Guest: shared1x256, Count: 1}}},
		"gpu":           {Region: "iad", Groups: []GroupInput{{Name: "a", Guest: types.MachineGuest{CPUKind: "performance", CPUs: 8, MemoryMB: 32768, GPUKind: "a10", GPUs: 1}, Count: 1}}},
		"bad cpu kind":  {Region: "iad", Groups: []GroupInput{{Name: "a", Guest: types.MachineGuest{CPUKind: "turbo", CPUs: 1, MemoryMB: 256}, Count: 1}}},
	}
	for name, in := range cases {
		if _, err := p.Estimate(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPriceTableProvenance(t *testing.T) {
	t.Parallel()
	p := prices(t)
	for name, pr := range p.named() {
		if pr.Source == "" || pr.Date == "" {
			t.Errorf("%s has no source or date", name)
		}
		if pr.Unsourced && !strings.HasPrefix(pr.Source, "unsourced") {
			t.Errorf("%s is marked unsourced but its source does not say so: %q", name, pr.Source)
		}
	}
	if got := p.Unsourced(); len(got) != 1 || got[0] != "aws.ebs_gp3_gb_month" {
		t.Errorf("unsourced prices = %v, want [aws.ebs_gp3_gb_month]", got)
	}
	// A price without a source is refused.
	bad := strings.Replace(string(pricesJSON), `"source": "https://www.vantage.sh/blog/fargate-pricing (us-east-1`, `"source": "", "x": "(`, 1)
	if bad == string(pricesJSON) {
		t.Fatal("test did not alter the table")
	}
	if _, err := ParsePrices([]byte(bad)); err == nil || !strings.Contains(err.Error(), "fargate_vcpu_hour") {
		t.Errorf("table with an unsourced Fargate price: err = %v", err)
	}
}

func TestFromFlyToml(t *testing.T) {
	t.Parallel()
	p := prices(t)
	cfg, err := appconfig.Load("../export/testdata/shop.fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	app, err := export.FromConfig(cfg, "img", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	vols := map[string][]int{}
	for _, g := range app.Groups {
		v, err := export.VolumeSizesGB(cfg, g)
		if err != nil {
			t.Fatal(err)
		}
		vols[g.Name] = v
	}
	in, err := p.FromApp(app, vols, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := p.Estimate(in)
	if err != nil {
		t.Fatal(err)
	}
	fly := column(t, e, "fly")
	// web: shared-cpu-2x with 1GB in fra, min_machines_running = 1:
	// (2 × $1.944 + (1024 - 512)/1024 × $5) × 1.153846154 / 720 h × 730 h
	// = $6.388 × 1.153846154 × 730/720 = $7.473...
	near(t, "web", line(t, fly, "web: 1 × machine").Monthly, (2*1.944+0.5*5)*1.153846154/720*730)
	// worker: performance-1x 2GB: $31 × 1.153846154 × 730/720.
	near(t, "worker", line(t, fly, "worker: 1 × machine").Monthly, 31*1.153846154/720*730)
	// 5 GB volume × $0.15 = $0.75
	near(t, "volume", line(t, fly, "web: volumes").Monthly, 0.75)
	if fg := column(t, e, "aws-fargate"); line(t, fg, "Application Load Balancer").Monthly == 0 {
		t.Error("the web group serves HTTP: Fargate column needs an ALB")
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	e, err := prices(t).Estimate(smallApp())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := e.WriteText(&b, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// The totals row carries each column's total, rounded to cents:
	// Fly $6.94, Fargate $83.95, EC2+ALB $53.19, Hangar $28.26 (see the
	// hand calculations above).
	var totals string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "total") && !strings.Contains(l, ":") {
			totals = l
		}
	}
	if got := strings.Fields(totals); strings.Join(got, " ") != "total 6.94 83.95 53.19 28.26" {
		t.Errorf("totals row = %q\n%s", totals, out)
	}
	for _, want := range []string{"Fly.io", "Fargate+ALB+NAT", "EC2+ALB", "Hangar on EC2", "2 × t3.micro running hangar", "Unsourced prices used", "aws.ebs_gp3_gb_month"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestRegionsOutsideThePriceTable: real fly.toml files name regions Fly no
// longer offers (bog, den, yul, sea) and Hangar's own default, local. Each
// is priced, with a note saying how; before, each failed with "Fly region
// not in the price table".
func TestRegionsOutsideThePriceTable(t *testing.T) {
	t.Parallel()
	p := prices(t)
	app := func(region string, host float64) Input {
		return Input{App: "a", Region: region, HostMonthly: host, Groups: []GroupInput{{Name: "app", Guest: shared1x256, Count: 1, Public: true}}}
	}
	for _, c := range []struct{ region, pricedAs, note string }{
		{"bog", "iad", "Bogotá"}, {"den", "dfw", "Denver"}, {"yul", "yyz", "Montreal"}, {"sea", "sjc", "Seattle"},
		{"fra", "fra", ""}, {"", "iad", ""}, {"local", "iad", "Hangar's own"}, {"zzz", "iad", "not in the price table"},
	} {
		e, err := p.Estimate(app(c.region, 0))
		if err != nil {
			t.Errorf("region %q: %v", c.region, err)
			continue
		}
		if e.FlyRegion != c.pricedAs {
			t.Errorf("region %q priced as %s, want %s", c.region, e.FlyRegion, c.pricedAs)
		}
		notes := strings.Join(e.Notes, "\n")
		if c.note == "" && notes != "" || c.note != "" && !strings.Contains(notes, c.note) {
			t.Errorf("region %q: notes %q, want %q", c.region, notes, c.note)
		}
		want := p.FlyMachineHourly(shared1x256, c.pricedAs) * 730
		near(t, "fly machine in "+c.region, line(t, column(t, e, "fly"), "app: 1 × machine").Monthly, want)
	}
	// Hangar on your own server costs the server.
	e, err := p.Estimate(app("local", 40))
	if err != nil {
		t.Fatal(err)
	}
	local := column(t, e, "hangar-local")
	near(t, "Hangar on this host", local.Total, 40)
	var b strings.Builder
	if err := e.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Hangar (this host)") || !strings.Contains(b.String(), "Note: primary_region local") {
		t.Errorf("text output:\n%s", b.String())
	}
	// Without a host price the column is there, at 0, saying what to pass.
	e, _ = p.Estimate(app("local", 0))
	if c := column(t, e, "hangar-local"); c.Total != 0 || !strings.Contains(strings.Join(c.Notes, " "), "--host-monthly") {
		t.Errorf("local column without a host price: %+v", c)
	}
	// Every retired region is priced as a region of the table.
	for code, r := range p.Fly.RetiredRegions {
		if got, _ := p.PricedRegion(code); got != r.PricedAs || p.Fly.Regions[got] == (FlyRegion{}) {
			t.Errorf("retired region %s priced as %q", code, got)
		}
	}
}
