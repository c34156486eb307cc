package types

import "time"

// MetricsHistory is the recent history of an app's key series
// (GET /v1/apps/{app}/metrics): points at IntervalSeconds steps, oldest
// first, kept in the daemon's memory for the last hour.
type MetricsHistory struct {
	App             string         `json:"app"`
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
}
