package dashboard

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// chart is one panel of the app's metrics, drawn server-side as SVG
// polylines (no script, no library: the page's Content-Security-Policy
// stays strict). Its lines share one scale, from zero to the peak.
type chart struct {
	Title string
	Peak  string // the highest point of any line, formatted
	Lines []chartLine
	Empty bool // no point above zero: flat lines
}

// chartLine is one series of a chart.
type chartLine struct {
	Name   string
	Latest string // its last point, formatted
	Points string // "x,y x,y …" in the chart's viewBox
	Class  string // l0…l4: its color in style.css
}

// Chart geometry: the SVG's viewBox.
const (
	chartW = 300.0
	chartH = 60.0
)

// maxMachineLines bounds the per-machine charts (the busiest first).
const maxMachineLines = 5

// series is one line's values and its formatting.
type series struct {
	name   string
	vals   []float64
	format func(float64) string
}

// chartsOf turns the metrics history into the app page's charts:
// responses by status, response time (p50, p99), concurrency, memory and
// CPU per machine, running machines.
func chartsOf(h types.MetricsHistory) []chart {
	ps := h.Points
	if len(ps) == 0 {
		return nil
	}
	of := func(name string, f func(types.MetricsPoint) float64, format func(float64) string) series {
		v := make([]float64, len(ps))
		for i, p := range ps {
			v[i] = f(p)
		}
		return series{name, v, format}
	}
	return []chart{
		makeChart("Responses by status",
			of("2xx", func(p types.MetricsPoint) float64 { return p.Responses2xxPS }, perSecond),
			of("4xx", func(p types.MetricsPoint) float64 { return p.Responses4xxPS }, perSecond),
			of("5xx", func(p types.MetricsPoint) float64 { return p.Errors5xxPS }, perSecond)),
		makeChart("Response time",
			of("p50", func(p types.MetricsPoint) float64 { return p.P50Seconds }, duration),
			of("p99", func(p types.MetricsPoint) float64 { return p.P99Seconds }, duration)),
		makeChart("Concurrency", of("in flight", func(p types.MetricsPoint) float64 { return p.Concurrency }, decimal)),
		makeChart("Memory per machine", perMachine(ps, func(m types.MachineMetricsPoint) float64 { return m.MemoryBytes }, bytesSize)...),
		makeChart("CPU per machine", perMachine(ps, func(m types.MachineMetricsPoint) float64 { return m.CPUCores }, cores)...),
		makeChart("Running machines", of("running", func(p types.MetricsPoint) float64 { return float64(p.Running) }, count)),
		volumeChart(ps),
	}
}

// volumeChart is the usage of each of the app's volumes, on a 0-100 %
// scale (so a volume filling up shows as such, not scaled to its peak).
func volumeChart(ps []types.MetricsPoint) chart {
	idx := map[string]int{}
	var ss []series
	for i, p := range ps {
		for _, v := range p.Volumes {
			j, ok := idx[v.ID]
			if !ok {
				j = len(ss)
				idx[v.ID] = j
				ss = append(ss, series{name: v.ID, vals: make([]float64, len(ps)), format: percent})
			}
			ss[j].vals[i] = v.UsedPct
		}
	}
	if len(ss) > maxMachineLines {
		ss = ss[:maxMachineLines]
	}
	c := chart{Title: "Volume usage", Peak: percent(100), Empty: len(ss) == 0}
	for i, s := range ss {
		c.Lines = append(c.Lines, chartLine{Name: s.name, Latest: percent(s.vals[len(s.vals)-1]), Points: polyline(s.vals, 100), Class: "l" + strconv.Itoa(i%5)})
	}
	return c
}

func percent(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " %" }

// perMachine is one series per machine (0 where it was not running), the
// maxMachineLines with the highest peaks.
func perMachine(ps []types.MetricsPoint, f func(types.MachineMetricsPoint) float64, format func(float64) string) []series {
	idx := map[string]int{}
	var out []series
	for i, p := range ps {
		for _, m := range p.Machines {
			j, ok := idx[m.ID]
			if !ok {
				j = len(out)
				idx[m.ID] = j
				out = append(out, series{name: m.ID, vals: make([]float64, len(ps)), format: format})
			}
			out[j].vals[i] = f(m)
		}
	}
	peak := func(s series) float64 {
		p := 0.0
		for _, v := range s.vals {
			p = max(p, v)
		}
		return p
	}
	sort.SliceStable(out, func(a, b int) bool { return peak(out[a]) > peak(out[b]) })
	if len(out) > maxMachineLines {
		out = out[:maxMachineLines]
	}
	return out
}

func makeChart(title string, ss ...series) chart {
	peak := 0.0
	for _, s := range ss {
		for _, v := range s.vals {
			peak = max(peak, v)
		}
	}
	c := chart{Title: title, Empty: peak <= 0}
	format := decimal
	for i, s := range ss {
		format = s.format
		c.Lines = append(c.Lines, chartLine{Name: s.name, Latest: s.format(s.vals[len(s.vals)-1]), Points: polyline(s.vals, peak), Class: "l" + strconv.Itoa(i%5)})
	}
	c.Peak = format(peak)
	return c
}

// polyline places vals across the chart's width, scaled to peak (a flat
// line at the bottom when everything is zero).
func polyline(vals []float64, peak float64) string {
	var b strings.Builder
	n := len(vals)
	for i, v := range vals {
		x := chartW
		if n > 1 {
			x = chartW * float64(i) / float64(n-1)
		}
		y := chartH - 1
		if peak > 0 {
			y = (chartH - 2) - (chartH-4)*(v/peak) + 1
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return b.String()
}

func perSecond(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "/s" }

func decimal(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func duration(v float64) string {
	return (time.Duration(v * float64(time.Second))).Round(time.Millisecond).String()
}

func bytesSize(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", v/(1<<10))
	}
}

func cores(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " cores" }

func count(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
