package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// History is the daemon's recent history of the apps' key series (the
// metrics package's History).
type History interface {
	// Window is an app's points of the last d, oldest first, and their
	// step.
	Window(app string, d time.Duration) ([]types.MetricsPoint, time.Duration)
}

var errMetricsOff = types.NewError(types.ErrNotFound, "metrics are off on this daemon: start it with --metrics-listen (default 127.0.0.1:9091)")

func (s *Server) metricsHistory(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	if _, err := s.apps.Get(r.Context(), app); err != nil {
		return err
	}
	if s.history == nil {
		return errMetricsOff
	}
	window := r.URL.Query().Get("window")
	if window == "" {
		window = "1h"
	}
	if !slices.Contains(types.MetricsWindows, window) {
		return types.NewError(types.ErrInvalid, fmt.Sprintf("window=%q: one of %s", window, strings.Join(types.MetricsWindows, ", ")))
	}
	d, _ := time.ParseDuration(window)
	pts, step := s.history.Window(app, d)
	if pts == nil {
		pts = []types.MetricsPoint{}
	}
	writeJSON(w, http.StatusOK, types.MetricsHistory{App: app, Window: window, IntervalSeconds: int(step / time.Second), Points: pts})
	return nil
}
