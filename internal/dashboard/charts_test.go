package dashboard

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

// TestChartsStayInTheirBox: every point of every chart lies inside the
// SVG's viewBox, the peak touches the top, zero the bottom, and a series
// that is all zero is a flat line marked empty.
func TestChartsStayInTheirBox(t *testing.T) {
	if chartsOf(types.MetricsHistory{}) != nil {
		t.Fatal("charts without points")
	}
	h := types.MetricsHistory{IntervalSeconds: 15}
	for _, v := range []float64{0, 5, 10, 2.5} {
		h.Points = append(h.Points, types.MetricsPoint{RequestsPS: v, Running: 1})
	}
	cs := chartsOf(h)
	if len(cs) != 6 || cs[0].Title != "Requests" || cs[0].Peak != "10.00/s" || cs[0].Latest != "2.50/s" || cs[0].Empty {
		t.Fatalf("charts %+v", cs)
	}
	if !cs[1].Empty || cs[1].Peak != "0.00/s" {
		t.Fatalf("5xx chart of zeros: %+v", cs[1])
	}
	for _, c := range cs {
		pts := strings.Fields(c.Points)
		if len(pts) != 4 {
			t.Fatalf("%s: %d points", c.Title, len(pts))
		}
		for _, p := range pts {
			xs, ys, _ := strings.Cut(p, ",")
			x, _ := strconv.ParseFloat(xs, 64)
			y, _ := strconv.ParseFloat(ys, 64)
			if x < 0 || x > chartW || y < 0 || y > chartH {
				t.Fatalf("%s: point %s outside 0..%v × 0..%v", c.Title, p, chartW, chartH)
			}
		}
	}
	// Requests: the peak (third point) is the highest on screen (lowest y).
	pts := strings.Fields(cs[0].Points)
	y := func(i int) float64 { _, s, _ := strings.Cut(pts[i], ","); v, _ := strconv.ParseFloat(s, 64); return v }
	if !(y(2) < y(1) && y(1) < y(3) && y(3) < y(0)) {
		t.Fatalf("requests drawn out of order: %v", pts)
	}
}
