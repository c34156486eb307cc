package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// ToHTTP maps an error to its HTTP status by its category (types.Err*,
// and the store's, which is a leaf and has its own). It is the only such
// mapping: packages wrap a category, never a status.
func ToHTTP(err error) int {
	switch {
	case errors.Is(err, types.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, types.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, types.ErrConflict), errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, types.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, types.ErrTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, types.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, types.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, types.ErrUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, types.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, types.ErrUnavailable), errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var (
	errBadRequest = types.NewError(types.ErrInvalid, "bad request")
	errNotFound   = types.NewError(types.ErrNotFound, "not found")
	errConflict   = types.NewError(types.ErrConflict, "conflict")
	errTooLarge   = types.NewError(types.ErrTooLarge, "request body too large")
	errForbidden  = types.NewError(types.ErrForbidden, "forbidden")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errBadRequest)
}

// notConfigured is the error of an endpoint whose dependency this daemon
// was not given.
func notConfigured(what string) error {
	return fmt.Errorf("%s are not configured on this daemon: %w", what, errNotFound)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := ToHTTP(err)
	if code == http.StatusInternalServerError {
		s.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, types.ErrorResponse{Error: err.Error()})
}
