package api

import (
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// History is the daemon's recent history of the apps' key series (the
// metrics package's History).
type History interface {
	App(app string) []types.MetricsPoint
}

// historyInterval is the step of History's points.
const historyInterval = 15 * time.Second

var errMetricsOff = types.NewError(types.ErrNotFound, "metrics are off on this daemon: start it with --metrics-listen (default 127.0.0.1:9091)")

func (s *Server) metricsHistory(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	if _, err := s.apps.Get(r.Context(), app); err != nil {
		return err
	}
	if s.history == nil {
		return errMetricsOff
	}
	pts := s.history.App(app)
	if pts == nil {
		pts = []types.MetricsPoint{}
	}
	writeJSON(w, http.StatusOK, types.MetricsHistory{App: app, IntervalSeconds: int(historyInterval / time.Second), Points: pts})
	return nil
}
