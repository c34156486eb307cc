package dashboard

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

// TestChartsStayInTheirBox: every point of every line lies inside the
// SVG's viewBox, the lines of a chart share its scale (the peak touches
// the top), a chart of zeros is flat and marked empty, and the
// per-machine charts have a line per machine, busiest first, at most
// maxMachineLines.
func TestChartsStayInTheirBox(t *testing.T) {
	if chartsOf(types.MetricsHistory{}) != nil {
		t.Fatal("charts without points")
	}
	h := types.MetricsHistory{IntervalSeconds: 15}
	for i, v := range []float64{0, 5, 10, 2.5} {
		p := types.MetricsPoint{Responses2xxPS: v, Errors5xxPS: v / 5, Running: 1}
		for m := 0; m < 7; m++ {
			p.Machines = append(p.Machines, types.MachineMetricsPoint{ID: "m" + strconv.Itoa(m), MemoryBytes: float64((m + 1) << 20), CPUCores: float64(i) / 10})
		}
		h.Points = append(h.Points, p)
	}
	h.Points[3].Volumes = []types.VolumeMetricsPoint{{ID: "vol_1", UsedPct: 40}}
	cs := chartsOf(h)
	if len(cs) != 7 {
		t.Fatalf("%d charts", len(cs))
	}
	resp := cs[0]
	if resp.Title != "Responses by status" || resp.Peak != "10.00/s" || len(resp.Lines) != 3 || resp.Lines[0].Latest != "2.50/s" || resp.Lines[2].Latest != "0.50/s" || resp.Empty {
		t.Fatalf("responses chart %+v", resp)
	}
	if !cs[2].Empty || cs[2].Title != "Concurrency" {
		t.Fatalf("concurrency of zeros: %+v", cs[2])
	}
	mem := cs[3]
	if len(mem.Lines) != maxMachineLines || mem.Lines[0].Name != "m6" || mem.Peak != "7.0 MiB" {
		t.Fatalf("memory per machine: %+v", mem)
	}
	if v := cs[6]; v.Title != "Volume usage" || v.Peak != "100 %" || len(v.Lines) != 1 || v.Lines[0].Latest != "40 %" {
		t.Fatalf("volume chart: %+v", v)
	}
	for _, c := range cs {
		for _, l := range c.Lines {
			pts := strings.Fields(l.Points)
			if len(pts) != 4 {
				t.Fatalf("%s %s: %d points", c.Title, l.Name, len(pts))
			}
			for _, p := range pts {
				xs, ys, _ := strings.Cut(p, ",")
				x, _ := strconv.ParseFloat(xs, 64)
				y, _ := strconv.ParseFloat(ys, 64)
				if x < 0 || x > chartW || y < 0 || y > chartH {
					t.Fatalf("%s %s: point %s outside 0..%v × 0..%v", c.Title, l.Name, p, chartW, chartH)
				}
			}
		}
	}
	// 2xx: the peak (third point) is the highest on screen (lowest y),
	// and 5xx, a fifth of it, stays lower on the same scale.
	y := func(l chartLine, i int) float64 {
		_, s, _ := strings.Cut(strings.Fields(l.Points)[i], ",")
		v, _ := strconv.ParseFloat(s, 64)
		return v
	}
	ok := resp.Lines[0]
	if !(y(ok, 2) < y(ok, 1) && y(ok, 1) < y(ok, 3) && y(ok, 3) < y(ok, 0)) {
		t.Fatalf("2xx drawn out of order: %s", ok.Points)
	}
	if y(resp.Lines[2], 2) <= y(ok, 2) {
		t.Fatalf("5xx (%s) not below 2xx (%s) on the shared scale", resp.Lines[2].Points, ok.Points)
	}
}

// TestMetricsWindowRefused: a window the history does not keep is a 400
// naming the windows, from the page and from the API.
func TestMetricsWindowRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(e.admin)
	if rec := b.get("/apps/alpha?window=2d"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "5m, 1h, 24h") {
		t.Fatalf("page with window=2d: %d\n%s", rec.Code, rec.Body)
	}
	req := httptest.NewRequest("GET", "/v1/apps/alpha/metrics?window=2d", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "5m, 1h, 24h") {
		t.Fatalf("API with window=2d: %d %s", rec.Code, rec.Body)
	}
}
