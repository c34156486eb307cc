package types

import (
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	from := at("2026-12-07T10:30:15Z") // a Monday
	for _, tc := range []struct{ sched, want string }{
		{"hourly", "2026-12-07T11:00:00Z"},
		{"daily", "2026-12-08T00:00:00Z"},
		{"weekly", "2026-12-14T00:00:00Z"},
		{"monthly", "2027-01-01T00:00:00Z"},
		{"* * * * *", "2026-12-07T10:31:00Z"},
		{"*/15 * * * *", "2026-12-07T10:45:00Z"},
		{"5 4 * * 0", "2026-12-13T04:05:00Z"},
		{"5 4 * * 7", "2026-12-13T04:05:00Z"},
		{"0 9-17/4 * * 1-5", "2026-12-07T13:00:00Z"},
		{"0 0 13 * 5", "2026-12-11T00:00:00Z"}, // the 13th or a Friday
		{"0 0 29 2 *", "2028-02-29T00:00:00Z"},
		{"30 1,2 1 1 *", "2027-01-01T01:30:00Z"},
	} {
		s, err := ParseSchedule(tc.sched)
		if err != nil {
			t.Errorf("%q: %v", tc.sched, err)
			continue
		}
		if got := s.Next(from).Format(time.RFC3339); got != tc.want {
			t.Errorf("%q: next after %s = %s, want %s", tc.sched, from.Format(time.RFC3339), got, tc.want)
		}
	}
	for _, bad := range []string{"", "yearly", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
