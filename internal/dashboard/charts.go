package dashboard

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// chart is one series of the app's last hour, drawn server-side as an SVG
// polyline (no script, no library: the page's Content-Security-Policy
// stays strict).
type chart struct {
	Title  string
	Latest string // the last point, formatted
	Peak   string // the highest point, formatted
	Points string // "x,y x,y …" in the chart's viewBox
	Empty  bool   // no point above zero: drawn as a flat line
}

// Chart geometry: the SVG's viewBox.
const (
	chartW = 300.0
	chartH = 60.0
)

// chartsOf turns the metrics history into the app page's charts: requests,
// 5xx, p99 response time, memory, CPU and running machines.
func chartsOf(h types.MetricsHistory) []chart {
	if len(h.Points) == 0 {
		return nil
	}
	series := []struct {
		title  string
		value  func(types.MetricsPoint) float64
		format func(float64) string
	}{
		{"Requests", func(p types.MetricsPoint) float64 { return p.RequestsPS }, perSecond},
		{"5xx responses", func(p types.MetricsPoint) float64 { return p.Errors5xxPS }, perSecond},
		{"Response time p99", func(p types.MetricsPoint) float64 { return p.P99Seconds }, duration},
		{"Memory", func(p types.MetricsPoint) float64 { return p.MemoryBytes }, bytesSize},
		{"CPU", func(p types.MetricsPoint) float64 { return p.CPUCores }, cores},
		{"Running machines", func(p types.MetricsPoint) float64 { return float64(p.Running) }, count},
	}
	out := make([]chart, 0, len(series))
	for _, s := range series {
		vals := make([]float64, len(h.Points))
		peak := 0.0
		for i, p := range h.Points {
			vals[i] = s.value(p)
			peak = max(peak, vals[i])
		}
		c := chart{Title: s.title, Latest: s.format(vals[len(vals)-1]), Peak: s.format(peak), Empty: peak <= 0}
		c.Points = polyline(vals, peak)
		out = append(out, c)
	}
	return out
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
