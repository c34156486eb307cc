// Package cost estimates what an app described by fly.toml costs per month
// on Fly.io, on AWS (ECS Fargate behind an ALB with a NAT gateway, or one
// EC2 instance per machine behind an ALB) and on EC2 instances running
// Hangar, from a price table embedded in the binary (prices.json) in which
// every number names its source and the date it was read.
package cost

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
)

//go:embed prices.json
var pricesJSON []byte

// Price is one number of the price table with its provenance.
type Price struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Source string  `json:"source"`
	Date   string  `json:"date"`
	Note   string  `json:"note,omitempty"`
	// Derived prices are computed from sourced ones as Source explains.
	Derived bool `json:"derived,omitempty"`
	// Unsourced prices could not be confirmed from a public page.
	Unsourced bool `json:"unsourced,omitempty"`
}

// FlyRegion is a Fly region's machine price markup and egress group.
type FlyRegion struct {
	Markup      float64 `json:"markup"`
	EgressGroup string  `json:"egress_group"`
}

// RetiredRegion is a Fly region that is no longer priced (closed or
// merged), with the nearest priced region used in its place.
type RetiredRegion struct {
	City     string `json:"city"`
	PricedAs string `json:"priced_as"`
}

// EC2Instance is one instance type.
type EC2Instance struct {
	Type     string `json:"type"`
	VCPUs    int    `json:"vcpus"`
	MemoryMB int    `json:"memory_mb"`
	Hour     Price  `json:"hour"`
}

// Prices is the whole table.
type Prices struct {
	About         string `json:"about"`
	ReadOn        string `json:"read_on"`
	HoursPerMonth Price  `json:"hours_per_month"`
	Fly           struct {
		HoursInPublishedMonth      Price                    `json:"hours_in_published_month"`
		SharedVCPUMonth            Price                    `json:"shared_vcpu_month"`
		PerformanceVCPUMonth       Price                    `json:"performance_vcpu_month"`
		SharedIncludedRAMMBPerVCPU Price                    `json:"shared_included_ram_mb_per_vcpu"`
		PerfIncludedRAMMBPerVCPU   Price                    `json:"performance_included_ram_mb_per_vcpu"`
		AdditionalRAMGBMonth       Price                    `json:"additional_ram_gb_month"`
		VolumeGBMonth              Price                    `json:"volume_gb_month"`
		DefaultVolumeSizeGB        Price                    `json:"default_volume_size_gb"`
		DedicatedIPv4Month         Price                    `json:"dedicated_ipv4_month"`
		EgressGB                   map[string]Price         `json:"egress_gb"`
		RegionMarkupSource         string                   `json:"region_markup_source"`
		Regions                    map[string]FlyRegion     `json:"regions"`
		RetiredRegionsSource       string                   `json:"retired_regions_source"`
		RetiredRegions             map[string]RetiredRegion `json:"retired_regions"`
	} `json:"fly"`
	AWS struct {
		Region          string `json:"region"`
		FargateVCPUHour Price  `json:"fargate_vcpu_hour"`
		FargateGBHour   Price  `json:"fargate_gb_hour"`
		ALBHour         Price  `json:"alb_hour"`
		ALBLCUHour      Price  `json:"alb_lcu_hour"`
		NATHour         Price  `json:"nat_gateway_hour"`
		NATGB           Price  `json:"nat_gateway_gb"`
		PublicIPv4Hour  Price  `json:"public_ipv4_hour"`
		EBSGp3GBMonth   Price  `json:"ebs_gp3_gb_month"`
		EBSRootGB       Price  `json:"ebs_root_gb"`
		EgressGB        Price  `json:"egress_gb"`
		EgressFreeGB    Price  `json:"egress_free_gb"`
		EC2Family       string `json:"ec2_family"`
		EC2Overhead     struct {
			VCPU     float64 `json:"vcpu"`
			MemoryMB int     `json:"memory_mb"`
			Source   string  `json:"source"`
		} `json:"ec2_overhead"`
		EC2Instances []EC2Instance `json:"ec2_instances"`
	} `json:"aws"`
}

// DefaultPrices parses the embedded table.
func DefaultPrices() (*Prices, error) { return ParsePrices(pricesJSON) }

// ParsePrices parses and checks a price table: every price used must be
// present with a source and a date, and instances must be sorted by price.
func ParsePrices(b []byte) (*Prices, error) {
	var p Prices
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	return &p, nil
}

func (p *Prices) named() map[string]Price {
	m := map[string]Price{
		"hours_per_month":                          p.HoursPerMonth,
		"fly.hours_in_published_month":             p.Fly.HoursInPublishedMonth,
		"fly.shared_vcpu_month":                    p.Fly.SharedVCPUMonth,
		"fly.performance_vcpu_month":               p.Fly.PerformanceVCPUMonth,
		"fly.shared_included_ram_mb_per_vcpu":      p.Fly.SharedIncludedRAMMBPerVCPU,
		"fly.performance_included_ram_mb_per_vcpu": p.Fly.PerfIncludedRAMMBPerVCPU,
		"fly.additional_ram_gb_month":              p.Fly.AdditionalRAMGBMonth,
		"fly.volume_gb_month":                      p.Fly.VolumeGBMonth,
		"fly.default_volume_size_gb":               p.Fly.DefaultVolumeSizeGB,
		"fly.dedicated_ipv4_month":                 p.Fly.DedicatedIPv4Month,
		"aws.fargate_vcpu_hour":                    p.AWS.FargateVCPUHour,
		"aws.fargate_gb_hour":                      p.AWS.FargateGBHour,
		"aws.alb_hour":                             p.AWS.ALBHour,
		"aws.alb_lcu_hour":                         p.AWS.ALBLCUHour,
		"aws.nat_gateway_hour":                     p.AWS.NATHour,
		"aws.nat_gateway_gb":                       p.AWS.NATGB,
		"aws.public_ipv4_hour":                     p.AWS.PublicIPv4Hour,
		"aws.ebs_gp3_gb_month":                     p.AWS.EBSGp3GBMonth,
		"aws.ebs_root_gb":                          p.AWS.EBSRootGB,
		"aws.egress_gb":                            p.AWS.EgressGB,
		"aws.egress_free_gb":                       p.AWS.EgressFreeGB,
	}
	for k, v := range p.Fly.EgressGB {
		m["fly.egress_gb."+k] = v
	}
	for _, it := range p.AWS.EC2Instances {
		m["aws.ec2."+it.Type] = it.Hour
	}
	return m
}

func (p *Prices) check() error {
	named := p.named()
	for _, k := range sortedKeys(named) {
		v := named[k]
		if v.Value <= 0 {
			return fmt.Errorf("%s: missing or not positive", k)
		}
		if v.Source == "" || v.Date == "" {
			return fmt.Errorf("%s: every price needs a source and a date", k)
		}
	}
	if len(p.Fly.EgressGB) == 0 {
		return fmt.Errorf("fly.egress_gb: empty")
	}
	for code, r := range p.Fly.Regions {
		if r.Markup <= 0 {
			return fmt.Errorf("fly.regions.%s: markup must be positive", code)
		}
		if _, ok := p.Fly.EgressGB[r.EgressGroup]; !ok {
			return fmt.Errorf("fly.regions.%s: egress group %q has no price", code, r.EgressGroup)
		}
	}
	for code, r := range p.Fly.RetiredRegions {
		if _, ok := p.Fly.Regions[r.PricedAs]; !ok {
			return fmt.Errorf("fly.retired_regions.%s: priced_as %q is not a priced region", code, r.PricedAs)
		}
		if _, ok := p.Fly.Regions[code]; ok {
			return fmt.Errorf("fly.retired_regions.%s: also a priced region", code)
		}
	}
	if len(p.Fly.RetiredRegions) > 0 && p.Fly.RetiredRegionsSource == "" {
		return fmt.Errorf("fly.retired_regions_source: the retired regions need a source")
	}
	if len(p.AWS.EC2Instances) == 0 {
		return fmt.Errorf("aws.ec2_instances: empty")
	}
	for i, it := range p.AWS.EC2Instances {
		if it.VCPUs <= 0 || it.MemoryMB <= 0 {
			return fmt.Errorf("aws.ec2_instances[%d] %s: needs vcpus and memory_mb", i, it.Type)
		}
		if i > 0 && it.Hour.Value < p.AWS.EC2Instances[i-1].Hour.Value {
			return fmt.Errorf("aws.ec2_instances: list them from cheapest to dearest (%s before %s)", p.AWS.EC2Instances[i-1].Type, it.Type)
		}
	}
	return nil
}

// Unsourced lists the names of the prices marked unsourced.
func (p *Prices) Unsourced() []string {
	var out []string
	for k, v := range p.named() {
		if v.Unsourced {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
