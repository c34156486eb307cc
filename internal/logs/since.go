package logs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// ErrBadTime is returned for a --since or --until that is neither a
// duration nor a time.
var ErrBadTime = types.NewError(types.ErrInvalid, "not a time")

// ParseTime reads a --since or --until value: a duration back from now
// ("90s", "15m", "1h30m", "2d", "1w"; days and weeks are 24 h and 7 days),
// an RFC 3339 time ("2026-03-01T12:00:00Z", with any fraction or
// offset), or a date ("2026-03-01", midnight UTC).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: empty: use a duration like 1h or a time like 2026-03-01T12:00:00Z", ErrBadTime)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: %q: use a duration back from now (30m, 1h, 2d, 1w) or an RFC 3339 time (2026-03-01T12:00:00Z)", ErrBadTime, s)
}

// maxAgo bounds a duration back from now (about 100 years), so that
// now-d cannot overflow.
const maxAgo = 100 * 365 * 24 * time.Hour

// parseAgo reads a non-negative Go duration, or a whole number of days
// ("2d") or weeks ("1w").
func parseAgo(s string) (time.Duration, bool) {
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
		if err != nil || time.Duration(n) > maxAgo/unit {
			return 0, false
		}
		return time.Duration(n) * unit, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxAgo {
		return 0, false
	}
	return d, true
}
