package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// metricsHandlers serve Prometheus metrics as an app with [metrics]
// would: /metrics a small set, /metrics/huge 20 MB of series, and
// /metrics/hang an answer that never ends.
func metricsHandlers(mux *http.ServeMux, hits *atomic.Int64) {
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP testapp_hits_total Requests to / served.\n# TYPE testapp_hits_total counter\ntestapp_hits_total{path=\"/\",region=\"spoofed\"} %d\n", hits.Load())
		fmt.Fprintf(w, "# HELP testapp_up_seconds Seconds since start.\n# TYPE testapp_up_seconds gauge\ntestapp_up_seconds %d\n", int(time.Since(started).Seconds()))
	})
	mux.HandleFunc("/metrics/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		line := "testapp_filler{n=\"" + strings.Repeat("x", 90) + "\"} 1\n"
		for n := 0; n < 20<<20; n += len(line) {
			if _, err := w.Write([]byte(line)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/metrics/hang", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "testapp_partial 1")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
}

var started = time.Now()
