package types

import "time"

// MetricsHistory is the recent history of an app's key series
// (GET /v1/apps/{app}/metrics): points at IntervalSeconds steps, oldest
// first, kept in the daemon's memory (the last hour at 15 s, the last day
// at 5 minutes).
type MetricsHistory struct {
	App             string         `json:"app"`
	Window          string         `json:"window"`
	IntervalSeconds int            `json:"interval_seconds"`
	Points          []MetricsPoint `json:"points"`
}

// MetricsPoint is one app at one time; rates are over the interval before
// it.
type MetricsPoint struct {
	Time        time.Time `json:"time"`
	RequestsPS  float64   `json:"requests_per_second"`
	Errors5xxPS float64   `json:"errors_5xx_per_second"`
	// P99Seconds is the 99th percentile edge response time over the
	// interval (the upper bound of its histogram bucket; 0 without
	// requests).
	P99Seconds  float64 `json:"p99_seconds"`
	MemoryBytes float64 `json:"memory_bytes"` // used, all its running machines
	CPUCores    float64 `json:"cpu_cores"`    // busy, all its running machines (1-minute average)
	Running     int     `json:"running"`      // machines running

	// Responses by status class (the 5xx are Errors5xxPS).
	Responses2xxPS float64 `json:"responses_2xx_per_second"`
	Responses4xxPS float64 `json:"responses_4xx_per_second"`
	// P50Seconds is the median edge response time (as P99Seconds).
	P50Seconds float64 `json:"p50_seconds"`
	// Concurrency is the requests in flight at the app's machines when
	// the point was taken (an average over a coarse point).
	Concurrency float64 `json:"concurrency"`
	// Machines are the running machines' own memory and CPU.
	Machines []MachineMetricsPoint `json:"machines,omitempty"`
	// Volumes are the app's mounted volumes on this host.
	Volumes []VolumeMetricsPoint `json:"volumes,omitempty"`
}

// VolumeMetricsPoint is one volume in a MetricsPoint.
type VolumeMetricsPoint struct {
	ID      string  `json:"id"`
	UsedPct float64 `json:"used_pct"` // 0-100, as df
}

// MachineMetricsPoint is one machine in a MetricsPoint.
type MachineMetricsPoint struct {
	ID          string  `json:"id"`
	MemoryBytes float64 `json:"memory_bytes"`
	CPUCores    float64 `json:"cpu_cores"`
}

// MetricsWindows are the windows GET /v1/apps/{app}/metrics?window=
// serves: the last 5 minutes and hour at 15 s steps, the last day at 5
// minute steps.
var MetricsWindows = []string{"5m", "1h", "24h"}
