package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Volume is one volume of this host as its series need it.
type Volume struct {
	ID, App string
	// SizeBytes is its provisioned size; Blocks, BlocksFree and
	// BlocksAvail its file system's (statfs; Blocks 0 if not mounted:
	// used_pct is not reported).
	SizeBytes                       int64
	Blocks, BlocksFree, BlocksAvail uint64
}

// Volumes lists the volumes of this host.
type Volumes func(ctx context.Context) ([]Volume, error)

type volumeCollector struct {
	list       Volumes
	size, used *prometheus.Desc
}

// NewVolumeCollector makes the collector of Fly's fly_volume_* series.
func NewVolumeCollector(list Volumes) prometheus.Collector {
	l := []string{LabelApp, "id"}
	return &volumeCollector{list: list,
		size: prometheus.NewDesc("fly_volume_size_bytes", "Provisioned size of the volume in bytes.", l, nil),
		used: prometheus.NewDesc("fly_volume_used_pct", "Space used on the volume's file system, 0-100.", l, nil),
	}
}

func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.size; ch <- c.used }

func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vols, err := c.list(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.size, err)
		return
	}
	for _, v := range vols {
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(v.SizeBytes), v.App, v.ID)
		if pct, ok := v.UsedPct(); ok {
			ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, pct, v.App, v.ID)
		}
	}
}

// UsedPct is the share of the volume's file system in use, 0-100, as df
// counts it: used over what a user may use (used + available); false
// when it is not mounted.
func (v Volume) UsedPct() (float64, bool) {
	if v.Blocks == 0 || v.BlocksFree > v.Blocks {
		return 0, false
	}
	used := float64(v.Blocks - v.BlocksFree)
	if used+float64(v.BlocksAvail) == 0 {
		return 0, false
	}
	return 100 * used / (used + float64(v.BlocksAvail)), true
}
