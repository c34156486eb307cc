package cost

import (
	"fmt"
	"math"
	"sort"

	"github.com/hangar-dev/hangar/internal/export"
	"github.com/hangar-dev/hangar/internal/types"
)

// Input is the app to price.
type Input struct {
	App string `json:"app"`
	// Region is the Fly region the machines run in (primary_region).
	Region string       `json:"region"`
	Groups []GroupInput `json:"groups"`
	// EgressGB is the data sent to the internet per month.
	EgressGB float64 `json:"egress_gb"`
	// DedicatedIPv4 is the number of dedicated IPv4 addresses on Fly
	// (apps get a shared IPv4 and IPv6 for free).
	DedicatedIPv4 int `json:"dedicated_ipv4"`
	// HostMonthly is what the server running Hangar costs a month, for
	// the region "local" (Hangar on your own server); 0 when unknown.
	HostMonthly float64 `json:"host_monthly,omitempty"`
}

// LocalRegion is Hangar's default region: the machines run on the host
// the daemon runs on.
const LocalRegion = "local"

// GroupInput is one process group.
type GroupInput struct {
	Name  string             `json:"name"`
	Guest types.MachineGuest `json:"guest"`
	Count int                `json:"count"`
	// VolumesGB are the sizes of the volumes each machine mounts.
	VolumesGB []int `json:"volumes_gb,omitempty"`
	// Public is true when the group has HTTP services behind the proxy (a
	// load balancer on AWS).
	Public bool `json:"public"`
}

// Line is one item of a bill.
type Line struct {
	// Category groups lines across columns: compute, storage, load
	// balancer, network (NAT, IPs) or egress.
	Category  string  `json:"category"`
	Item      string  `json:"item"`
	Quantity  float64 `json:"quantity"`
	Unit      string  `json:"unit"`
	UnitPrice float64 `json:"unit_price"`
	Monthly   float64 `json:"monthly"`
}

// Column is one way of running the app, with its bill.
type Column struct {
	ID    string   `json:"id"`
	Short string   `json:"short"`
	Title string   `json:"title"`
	Lines []Line   `json:"lines"`
	Total float64  `json:"total"`
	Notes []string `json:"notes,omitempty"`
}

// Estimate is the side-by-side comparison.
type Estimate struct {
	App           string   `json:"app"`
	Currency      string   `json:"currency"`
	HoursPerMonth float64  `json:"hours_per_month"`
	FlyRegion     string   `json:"fly_region"`
	AWSRegion     string   `json:"aws_region"`
	EgressGB      float64  `json:"egress_gb"`
	Columns       []Column `json:"columns"`
	// Unsourced names prices in the table that could not be confirmed
	// from a public page and are used here.
	Unsourced  []string `json:"unsourced_prices,omitempty"`
	PricesRead string   `json:"prices_read_on"`
	// Notes say how the input was read (a region priced as another).
	Notes []string `json:"notes,omitempty"`
}

// Line categories.
const (
	CatCompute = "compute"
	CatStorage = "storage"
	CatLB      = "load balancer"
	CatNetwork = "network"
	CatEgress  = "egress"
)

// Categories is the order categories are shown in.
var Categories = []string{CatCompute, CatStorage, CatLB, CatNetwork, CatEgress}

func (c *Column) add(cat, item string, qty float64, unit string, unitPrice float64) {
	m := qty * unitPrice
	c.Lines = append(c.Lines, Line{Category: cat, Item: item, Quantity: qty, Unit: unit, UnitPrice: unitPrice, Monthly: m})
	c.Total += m
}

// Validate checks the input.
func (in *Input) Validate() error {
	if len(in.Groups) == 0 {
		return fmt.Errorf("cost: no process groups to price")
	}
	if in.EgressGB < 0 || math.IsNaN(in.EgressGB) || math.IsInf(in.EgressGB, 0) {
		return fmt.Errorf("cost: egress %v GB: must be a number ≥ 0", in.EgressGB)
	}
	if in.HostMonthly < 0 || math.IsNaN(in.HostMonthly) || math.IsInf(in.HostMonthly, 0) {
		return fmt.Errorf("cost: host cost %v a month: must be a number ≥ 0", in.HostMonthly)
	}
	if in.DedicatedIPv4 < 0 {
		return fmt.Errorf("cost: dedicated IPv4 count %d is negative", in.DedicatedIPv4)
	}
	for _, g := range in.Groups {
		if g.Count < 1 {
			return fmt.Errorf("cost: process group %s: count %d: must be at least 1", g.Name, g.Count)
		}
		if g.Guest.CPUs < 1 || g.Guest.MemoryMB < 1 {
			return fmt.Errorf("cost: process group %s: guest needs cpus and memory_mb", g.Name)
		}
		if g.Guest.CPUKind != "shared" && g.Guest.CPUKind != "performance" {
			return fmt.Errorf("cost: process group %s: cpu_kind %q: must be shared or performance", g.Name, g.Guest.CPUKind)
		}
		if g.Guest.GPUs > 0 || g.Guest.GPUKind != "" {
			return fmt.Errorf("cost: process group %s: GPU machines are not in the price table", g.Name)
		}
		for _, v := range g.VolumesGB {
			if v < 1 {
				return fmt.Errorf("cost: process group %s: volume of %d GB: must be at least 1", g.Name, v)
			}
		}
	}
	return nil
}

// Estimate prices the input with the table.
func (p *Prices) Estimate(in Input) (*Estimate, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	region, note := p.PricedRegion(in.Region)
	e := &Estimate{
		App:           in.App,
		Currency:      "USD",
		HoursPerMonth: p.HoursPerMonth.Value,
		FlyRegion:     region,
		AWSRegion:     p.AWS.Region,
		EgressGB:      in.EgressGB,
		Unsourced:     p.Unsourced(),
		PricesRead:    p.ReadOn,
	}
	if note != "" {
		e.Notes = append(e.Notes, note)
	}
	fly := p.fly(in, region)
	fargate, err := p.fargate(in)
	if err != nil {
		return nil, err
	}
	ec2alb, err := p.ec2ALB(in)
	if err != nil {
		return nil, err
	}
	hangar, err := p.hangarEC2(in)
	if err != nil {
		return nil, err
	}
	e.Columns = []Column{fly, fargate, ec2alb, hangar}
	if in.Region == LocalRegion || in.HostMonthly > 0 {
		e.Columns = append(e.Columns, p.hangarLocal(in))
	}
	return e, nil
}

// PricedRegion returns the region whose Fly prices apply to region, and a
// note when it is not region itself: a retired region is priced as the
// nearest priced one, Hangar's "local" and an unknown region as iad (the
// base price every markup is relative to).
func (p *Prices) PricedRegion(region string) (string, string) {
	switch r, retired := p.Fly.RetiredRegions[region]; {
	case region == "":
		return "iad", ""
	case p.Fly.Regions[region] != (FlyRegion{}):
		return region, ""
	case retired:
		return r.PricedAs, fmt.Sprintf("Fly region %s (%s) is no longer offered: priced as %s, the nearest region Fly prices", region, r.City, r.PricedAs)
	case region == LocalRegion:
		return "iad", "primary_region local is Hangar's own (the machines run on this host): the Fly.io column prices them in iad, Fly's base price; \"Hangar on this host\" is what your server costs"
	}
	return "iad", fmt.Sprintf("Fly region %q is not in the price table: priced as iad, Fly's base price (pass --region with one of %v)", region, sortedKeys(p.Fly.Regions))
}

// hangarLocal is Hangar on the host it runs on: the machines cost what
// the server costs, whatever runs on it.
func (p *Prices) hangarLocal(in Input) Column {
	c := Column{ID: "hangar-local", Short: "Hangar (this host)", Title: "Hangar on this host"}
	c.add(CatCompute, "your server (its monthly price, from --host-monthly)", 1, "server-months", in.HostMonthly)
	if in.HostMonthly == 0 {
		c.Notes = append(c.Notes, "Hangar on your own server costs the server: pass --host-monthly with its monthly price (rent, or hardware and power) to compare")
	}
	c.Notes = append(c.Notes, "machines, volumes and the proxy run on the server: no per-machine, load balancer or NAT charges; egress is whatever the server's provider charges")
	return c
}

// FlyMachineHourly is the hourly price of one started machine of guest g
// in region: (vCPUs × CPU price + RAM above the included amount × RAM
// price) per published month, times the region's markup, over the hours in
// the published month.
func (p *Prices) FlyMachineHourly(g types.MachineGuest, region string) float64 {
	cpuPrice, included := p.Fly.SharedVCPUMonth.Value, p.Fly.SharedIncludedRAMMBPerVCPU.Value
	if g.CPUKind == "performance" {
		cpuPrice, included = p.Fly.PerformanceVCPUMonth.Value, p.Fly.PerfIncludedRAMMBPerVCPU.Value
	}
	extraGB := (float64(g.MemoryMB) - float64(g.CPUs)*included) / 1024
	if extraGB < 0 {
		extraGB = 0
	}
	month := float64(g.CPUs)*cpuPrice + extraGB*p.Fly.AdditionalRAMGBMonth.Value
	markup := 1.0
	if r, ok := p.Fly.Regions[region]; ok {
		markup = r.Markup
	}
	return month * markup / p.Fly.HoursInPublishedMonth.Value
}

func guestLabel(g types.MachineGuest) string {
	return fmt.Sprintf("%d %s CPU, %d MB", g.CPUs, g.CPUKind, g.MemoryMB)
}

func (p *Prices) fly(in Input, region string) Column {
	h := p.HoursPerMonth.Value
	c := Column{ID: "fly", Short: "Fly.io", Title: "Fly.io (" + region + ")"}
	for _, g := range in.Groups {
		c.add(CatCompute, fmt.Sprintf("%s: %d × machine (%s), always on", g.Name, g.Count, guestLabel(g.Guest)),
			float64(g.Count)*h, "machine-hours", p.FlyMachineHourly(g.Guest, region))
		if gb := volumeGB(g); gb > 0 {
			c.add(CatStorage, fmt.Sprintf("%s: volumes, %d GB per machine", g.Name, gb/g.Count), float64(gb), "GB-months", p.Fly.VolumeGBMonth.Value)
		}
	}
	if in.DedicatedIPv4 > 0 {
		c.add(CatNetwork, "dedicated IPv4", float64(in.DedicatedIPv4), "addresses", p.Fly.DedicatedIPv4Month.Value)
	}
	group := p.Fly.Regions[region].EgressGroup
	if in.EgressGB > 0 {
		c.add(CatEgress, "egress to the internet ("+group+")", in.EgressGB, "GB", p.Fly.EgressGB[group].Value)
	}
	c.Notes = append(c.Notes, "shared IPv4 and IPv6 addresses are free; machines that auto-stop cost less (only their rootfs while stopped)")
	return c
}

func volumeGB(g GroupInput) int {
	t := 0
	for _, v := range g.VolumesGB {
		t += v
	}
	return t * g.Count
}

func anyPublic(in Input) bool {
	for _, g := range in.Groups {
		if g.Public {
			return true
		}
	}
	return false
}

// alb adds an internet-facing ALB in two Availability Zones.
func (p *Prices) alb(c *Column, in Input) {
	if !anyPublic(in) {
		c.Notes = append(c.Notes, "no HTTP services: no load balancer")
		return
	}
	h := p.HoursPerMonth.Value
	c.add(CatLB, "Application Load Balancer", h, "hours", p.AWS.ALBHour.Value)
	if in.EgressGB > 0 {
		c.add(CatLB, "ALB capacity units (processed bytes: 1 LCU-hour per GB)", in.EgressGB, "LCU-hours", p.AWS.ALBLCUHour.Value)
	}
	c.add(CatLB, "ALB public IPv4 (2 Availability Zones)", 2*h, "address-hours", p.AWS.PublicIPv4Hour.Value)
}

func (p *Prices) awsEgress(c *Column, in Input) {
	free := p.AWS.EgressFreeGB.Value
	if billable := in.EgressGB - free; billable > 0 {
		c.add(CatEgress, fmt.Sprintf("egress to the internet (after %g GB free)", free), billable, "GB", p.AWS.EgressGB.Value)
	}
}

func (p *Prices) ebsVolumes(c *Column, in Input, what string) {
	for _, g := range in.Groups {
		if gb := volumeGB(g); gb > 0 {
			c.add(CatStorage, fmt.Sprintf("%s: %s gp3, %d GB per machine", g.Name, what, gb/g.Count), float64(gb), "GB-months", p.AWS.EBSGp3GBMonth.Value)
		}
	}
}

func (p *Prices) fargate(in Input) (Column, error) {
	h := p.HoursPerMonth.Value
	c := Column{ID: "aws-fargate", Short: "Fargate+ALB+NAT", Title: "AWS ECS Fargate + ALB + NAT (" + p.AWS.Region + ")"}
	for _, g := range in.Groups {
		size, err := export.FargateFor(g.Guest)
		if err != nil {
			return c, fmt.Errorf("cost: process group %s: %w", g.Name, err)
		}
		hourly := size.VCPU()*p.AWS.FargateVCPUHour.Value + float64(size.MemoryMB)/1024*p.AWS.FargateGBHour.Value
		c.add(CatCompute, fmt.Sprintf("%s: %d × Fargate task (%g vCPU, %d MB)", g.Name, g.Count, size.VCPU(), size.MemoryMB), float64(g.Count)*h, "task-hours", hourly)
	}
	p.ebsVolumes(&c, in, "ECS-managed EBS volume")
	p.alb(&c, in)
	c.add(CatNetwork, "NAT gateway (tasks in private subnets)", h, "hours", p.AWS.NATHour.Value)
	c.add(CatNetwork, "NAT gateway public IPv4", h, "address-hours", p.AWS.PublicIPv4Hour.Value)
	p.awsEgress(&c, in)
	c.Notes = append(c.Notes,
		fmt.Sprintf("a Fly shared CPU is counted as %g Fargate vCPU", export.SharedCPUFraction),
		"NAT data processing, CloudWatch Logs and Secrets Manager are not included: they depend on traffic, log volume and the number of secrets")
	return c, nil
}

// fitInstance is the cheapest instance that holds one machine of guest g
// next to the OS/daemon overhead.
func (p *Prices) fitInstance(g types.MachineGuest) (EC2Instance, error) {
	need := export.EffectiveVCPU(g)
	for _, it := range p.AWS.EC2Instances {
		if float64(it.VCPUs)-p.AWS.EC2Overhead.VCPU >= need && it.MemoryMB-p.AWS.EC2Overhead.MemoryMB >= g.MemoryMB {
			return it, nil
		}
	}
	return EC2Instance{}, fmt.Errorf("a machine with %s is larger than the largest %s instance in the price table", guestLabel(g), p.AWS.EC2Family)
}

func (p *Prices) ec2ALB(in Input) (Column, error) {
	h := p.HoursPerMonth.Value
	c := Column{ID: "aws-ec2", Short: "EC2+ALB", Title: "AWS EC2 (one instance per machine) + ALB (" + p.AWS.Region + ")"}
	n := 0
	for _, g := range in.Groups {
		it, err := p.fitInstance(g.Guest)
		if err != nil {
			return c, fmt.Errorf("cost: process group %s: %w", g.Name, err)
		}
		c.add(CatCompute, fmt.Sprintf("%s: %d × %s", g.Name, g.Count, it.Type), float64(g.Count)*h, "instance-hours", it.Hour.Value)
		n += g.Count
	}
	c.add(CatStorage, fmt.Sprintf("root volumes, %g GB gp3 each", p.AWS.EBSRootGB.Value), float64(n)*p.AWS.EBSRootGB.Value, "GB-months", p.AWS.EBSGp3GBMonth.Value)
	p.ebsVolumes(&c, in, "EBS volume")
	p.alb(&c, in)
	c.add(CatNetwork, "instance public IPv4 (public subnets, no NAT)", float64(n)*h, "address-hours", p.AWS.PublicIPv4Hour.Value)
	p.awsEgress(&c, in)
	c.Notes = append(c.Notes, "instances are the smallest "+p.AWS.EC2Family+" size that holds the machine after the OS's share; on-demand prices")
	return c, nil
}

// Packing is how the machines are placed on Hangar hosts.
type Packing struct {
	Instance EC2Instance
	Hosts    int
}

// PackHangar picks the instance size and count that run every machine at
// the lowest price: machines are placed first-fit by decreasing memory on
// hosts that keep the OS/daemon overhead free. When some group runs two or
// more machines, at least two hosts are used so a host failure does not
// take the whole group down.
func (p *Prices) PackHangar(in Input) (Packing, error) {
	type item struct{ cpu, mem float64 }
	var items []item
	minHosts := 1
	for _, g := range in.Groups {
		for i := 0; i < g.Count; i++ {
			items = append(items, item{export.EffectiveVCPU(g.Guest), float64(g.Guest.MemoryMB)})
		}
		if g.Count >= 2 {
			minHosts = 2
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].mem != items[j].mem {
			return items[i].mem > items[j].mem
		}
		return items[i].cpu > items[j].cpu
	})
	best := Packing{}
	bestCost := math.Inf(1)
	for _, it := range p.AWS.EC2Instances {
		capCPU := float64(it.VCPUs) - p.AWS.EC2Overhead.VCPU
		capMem := float64(it.MemoryMB - p.AWS.EC2Overhead.MemoryMB)
		var hosts []item // free capacity per host
		ok := true
		for _, m := range items {
			if m.cpu > capCPU+1e-9 || m.mem > capMem {
				ok = false
				break
			}
			placed := false
			for h := range hosts {
				if hosts[h].cpu+1e-9 >= m.cpu && hosts[h].mem >= m.mem {
					hosts[h].cpu -= m.cpu
					hosts[h].mem -= m.mem
					placed = true
					break
				}
			}
			if !placed {
				hosts = append(hosts, item{capCPU - m.cpu, capMem - m.mem})
			}
		}
		if !ok {
			continue
		}
		n := len(hosts)
		if n < minHosts {
			n = minHosts
		}
		if cost := float64(n) * it.Hour.Value; cost < bestCost-1e-12 {
			best, bestCost = Packing{Instance: it, Hosts: n}, cost
		}
	}
	if best.Hosts == 0 {
		return best, fmt.Errorf("cost: a machine is larger than the largest %s instance in the price table", p.AWS.EC2Family)
	}
	return best, nil
}

func (p *Prices) hangarEC2(in Input) (Column, error) {
	h := p.HoursPerMonth.Value
	c := Column{ID: "hangar-ec2", Short: "Hangar on EC2", Title: "Hangar on EC2 (" + p.AWS.Region + ")"}
	pk, err := p.PackHangar(in)
	if err != nil {
		return c, err
	}
	c.add(CatCompute, fmt.Sprintf("%d × %s running hangar", pk.Hosts, pk.Instance.Type), float64(pk.Hosts)*h, "instance-hours", pk.Instance.Hour.Value)
	c.add(CatStorage, fmt.Sprintf("root volumes, %g GB gp3 each", p.AWS.EBSRootGB.Value), float64(pk.Hosts)*p.AWS.EBSRootGB.Value, "GB-months", p.AWS.EBSGp3GBMonth.Value)
	p.ebsVolumes(&c, in, "volume on EBS")
	c.add(CatNetwork, "host public IPv4", float64(pk.Hosts)*h, "address-hours", p.AWS.PublicIPv4Hour.Value)
	p.awsEgress(&c, in)
	c.Notes = append(c.Notes, "hangar's own proxy terminates TLS and balances load: no ALB, no NAT gateway")
	return c, nil
}
