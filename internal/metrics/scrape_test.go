package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// An app's series come back with the app, instance, region and host
// labels (the app's own values of those replaced); an endpoint that sends
// more than the cap, or hangs, is cut off and counted, and the daemon
// serves on.
func TestAppScraper(t *testing.T) {
	good := appMetricsServer(t, "web", "m1", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# TYPE jobs_total counter\njobs_total{queue=\"a\",region=\"spoofed\"} 3\n")
	})
	huge := appMetricsServer(t, "web", "m2", func(w http.ResponseWriter, _ *http.Request) {
		line := strings.Repeat("#", 1023) + "\n"
		for n := 0; n < 20<<20; n += len(line) {
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
		}
	})
	release := make(chan struct{})
	hang := appMetricsServer(t, "other", "m3", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial 1\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	insts := []Instance{good, huge, hang}
	sc := &AppScraper{List: func(context.Context) ([]Instance, error) { return insts, nil }, Region: "tst", Host: "abcd",
		Timeout: 3 * time.Second, MaxBytes: 16 << 20}
	sc.ScrapeAll(context.Background())

	only := NewRegistry("tst", "abcd")
	only.AddText(sc)
	appSeries := func() []*dto.MetricFamily {
		var out []*dto.MetricFamily
		for _, mf := range gatherText(t, only, "") {
			if !strings.HasPrefix(mf.GetName(), "hangar_") {
				out = append(out, mf)
			}
		}
		return out
	}
	mfs := appSeries()
	if len(mfs) != 1 || mfs[0].GetName() != "jobs_total" || len(mfs[0].Metric) != 1 {
		t.Fatalf("gathered %v, want jobs_total of m1 only", describe(mfs))
	}
	labels := map[string]string{}
	for _, l := range mfs[0].Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"app": "web", "instance": "m1", "region": "tst", "host": "abcd", "queue": "a"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q (all: %v)", k, labels[k], v, labels)
		}
	}
	if n := testutil.ToFloat64(sc.failures.WithLabelValues("web", "m2", "too_large")); n != 1 {
		t.Errorf("20 MB answer: %v too_large failures, want 1", n)
	}
	if n := testutil.ToFloat64(sc.failures.WithLabelValues("other", "m3", "timeout")); n != 1 {
		t.Errorf("hanging answer: %v timeout failures, want 1", n)
	}
	if up := testutil.ToFloat64(sc.up.WithLabelValues("web", "m1")); up != 1 {
		t.Errorf("m1 up = %v", up)
	}
	if up := testutil.ToFloat64(sc.up.WithLabelValues("web", "m2")); up != 0 {
		t.Errorf("m2 up = %v", up)
	}
	// A machine that stops is forgotten: its series and up go.
	insts = []Instance{huge}
	sc.ScrapeAll(context.Background())
	if mfs := appSeries(); len(mfs) != 0 {
		t.Fatalf("stopped machine's series still served: %v", describe(mfs))
	}
	if n := testutil.CollectAndCount(sc.up); n != 1 {
		t.Fatalf("%d up series after m1 and m3 went, want 1", n)
	}
}

// Through the registry: an admin sees every app's series, an app's token
// only its app's, no token nothing.
func TestHandlerAccess(t *testing.T) {
	reg, _ := newTestRegistry(t)
	other := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_other_total", Help: "Another app's."}, []string{LabelApp})
	other.WithLabelValues("other").Inc()
	reg.Registerer().MustRegister(other)
	srv := httptest.NewServer(reg.Handler(func(r *http.Request) (Access, bool) {
		switch BearerToken(r) {
		case "admin":
			return Access{Admin: true}, true
		case "web":
			return Access{App: "web"}, true
		}
		return Access{}, false
	}))
	defer srv.Close()
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(""); code != 401 || !strings.Contains(body, "token") {
		t.Fatalf("no token: %d %q", code, body)
	}
	if code, _ := get("wrong"); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	code, body := get("admin")
	if code != 200 || !strings.Contains(body, `app="web"`) || !strings.Contains(body, `app="other"`) || !strings.Contains(body, "hangar_store_write_seconds") {
		t.Fatalf("admin: %d, other app or daemon series missing", code)
	}
	code, body = get("web")
	if code != 200 || !strings.Contains(body, `fly_edge_http_responses_count{app="web"`) || strings.Contains(body, `app="other"`) || strings.Contains(body, "hangar_store_write_seconds") {
		t.Fatalf("app token: %d; wants web's series only:\n%s", code, body)
	}
}
