package types

import "errors"

// Error categories. Every package wraps one of these (directly, or through
// its own sentinel made with NewError), so that callers test the category
// with errors.Is and the API maps each category to one HTTP status in one
// place.
var (
	// ErrNotFound: the object named does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request or input is malformed or out of range (400).
	ErrInvalid = errors.New("invalid")
	// ErrConflict: the object exists or changed under the caller (409).
	ErrConflict = errors.New("conflict")
	// ErrUnauthorized: no valid credential (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the credential is valid but may not do this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrTimeout: the operation did not finish in the time allowed (408).
	ErrTimeout = errors.New("timed out")
	// ErrTooLarge: the input is over a size limit (413).
	ErrTooLarge = errors.New("too large")
	// ErrUnsupported: this host or runtime cannot do it (501).
	ErrUnsupported = errors.New("not supported")
	// ErrUnavailable: a dependency is down or busy; retrying may work (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrNoSpace: the disk is full (507).
	ErrNoSpace = errors.New("no space left on device")
)

// categorized is a package's own sentinel that belongs to a category.
type categorized struct {
	msg  string
	kind error
}

func (e *categorized) Error() string { return e.msg }
func (e *categorized) Unwrap() error { return e.kind }

// NewError makes a sentinel error with its own message that also matches
// the category kind under errors.Is, e.g.
//
//	ErrNotFound = types.NewError(types.ErrNotFound, "volume not found")
func NewError(kind error, msg string) error { return &categorized{msg: msg, kind: kind} }
