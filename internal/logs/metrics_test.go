package logs

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetrics: the logs' collectors register on a pedantic registry, have
// the names and types the docs list, and the count of lost lines is the
// sum of the shims' counts per app.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	for path, n := range map[string]string{"web/m1.lost": "                  30\n", "web/m2.lost": "7\n", "db/m3.lost": "0\n"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(n), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	m := NewMetrics(dir)
	m.SetNATS(func() (int, int64) { return 3, 2 })
	m.RetentionRemoved("web", "size", 100)
	m.shipped("s1", 10)
	m.shipError("s1")
	m.publishedLines(5)
	reg := prometheus.NewPedanticRegistry()
	for _, c := range m.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	values := map[string]float64{}
	for _, mf := range mfs {
		got = append(got, mf.GetName()+" "+mf.GetType().String())
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			values[key] = mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
		}
	}
	sort.Strings(got)
	want := []string{
		"hangar_log_lines_lost_total COUNTER",
		"hangar_log_nats_clients GAUGE",
		"hangar_log_nats_lines_published_total COUNTER",
		"hangar_log_nats_slow_consumers_total COUNTER",
		"hangar_log_retention_removed_bytes_total COUNTER",
		"hangar_log_retention_removed_files_total COUNTER",
		"hangar_log_sink_batches_shipped_total COUNTER",
		"hangar_log_sink_errors_total COUNTER",
		"hangar_log_sink_lines_shipped_total COUNTER",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("metrics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for k, v := range map[string]float64{
		"hangar_log_lines_lost_total,app=web": 37, "hangar_log_lines_lost_total,app=db": 0,
		"hangar_log_nats_clients": 3, "hangar_log_nats_slow_consumers_total": 2,
		"hangar_log_retention_removed_bytes_total,reason=size": 100, "hangar_log_sink_lines_shipped_total,sink=s1": 10,
		"hangar_log_sink_errors_total,sink=s1": 1, "hangar_log_nats_lines_published_total": 5,
	} {
		if values[k] != v {
			t.Errorf("%s = %v, want %v", k, values[k], v)
		}
	}
}
