package types

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Machine schedules (config.schedule), Fly's four intervals. Hangar also
// takes a standard 5-field cron expression ("30 2 * * 1-5").
const (
	ScheduleHourly  = "hourly"
	ScheduleDaily   = "daily"
	ScheduleWeekly  = "weekly"
	ScheduleMonthly = "monthly"
)

// Schedule says when a scheduled machine runs next.
type Schedule interface {
	// Next is the first run time strictly after t (UTC); the zero time
	// if there is none within five years.
	Next(t time.Time) time.Time
}

// ParseSchedule reads config.schedule: hourly, daily, weekly (Monday),
// monthly (the 1st), each starting at the interval's start in UTC, or a
// 5-field cron expression (minute hour day-of-month month day-of-week,
// UTC, with *, lists, ranges and steps; day-of-week 0-7, Sunday is 0 or
// 7; day-of-month and day-of-week both restricted match either, as cron).
func ParseSchedule(s string) (Schedule, error) {
	switch strings.TrimSpace(s) {
	case ScheduleHourly:
		return ParseSchedule("0 * * * *")
	case ScheduleDaily:
		return ParseSchedule("0 0 * * *")
	case ScheduleWeekly:
		return ParseSchedule("0 0 * * 1")
	case ScheduleMonthly:
		return ParseSchedule("0 0 1 * *")
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return nil, fmt.Errorf("schedule %q: use hourly, daily, weekly, monthly or a 5-field cron expression like \"*/15 * * * *\"", s)
	}
	var c cron
	specs := []struct {
		name     string
		min, max int
		dst      *uint64
	}{
		{"minute", 0, 59, &c.minute}, {"hour", 0, 23, &c.hour}, {"day of month", 1, 31, &c.dom},
		{"month", 1, 12, &c.month}, {"day of week", 0, 7, &c.dow},
	}
	for i, sp := range specs {
		bits, err := cronField(fields[i], sp.min, sp.max)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %s field %q: %v", s, sp.name, fields[i], err)
		}
		*sp.dst = bits
	}
	if c.dow&(1<<7) != 0 {
		c.dow |= 1 // 7 is Sunday too
	}
	c.domStar = strings.HasPrefix(fields[2], "*")
	c.dowStar = strings.HasPrefix(fields[4], "*")
	return c, nil
}

// cronField parses one cron field into a bit set of the values it takes.
func cronField(f string, min, max int) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(f, ",") {
		rng, step := part, 1
		if i := strings.Index(part, "/"); i >= 0 {
			n, err := strconv.Atoi(part[i+1:])
			if err != nil || n < 1 {
				return 0, fmt.Errorf("step %q must be a positive number", part[i+1:])
			}
			rng, step = part[:i], n
		}
		lo, hi := min, max
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err1, err2 error
			lo, err1 = strconv.Atoi(a)
			hi, err2 = strconv.Atoi(b)
			if err1 != nil || err2 != nil {
				return 0, fmt.Errorf("range %q: want two numbers", rng)
			}
		default:
			n, err := strconv.Atoi(rng)
			if err != nil {
				return 0, fmt.Errorf("%q is not a number, *, a range or a list", rng)
			}
			lo, hi = n, n
			if strings.Contains(part, "/") {
				hi = max
			}
		}
		if lo < min || hi > max || lo > hi {
			return 0, fmt.Errorf("%d-%d is outside %d-%d", lo, hi, min, max)
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

// cron is a parsed 5-field expression: a bit per value each field takes.
type cron struct {
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
}

func (c cron) dayMatches(t time.Time) bool {
	d := c.dom&(1<<t.Day()) != 0
	w := c.dow&(1<<int(t.Weekday())) != 0
	if c.domStar || c.dowStar {
		return d && w
	}
	return d || w
}

// Next finds the next matching minute after t, skipping whole months,
// days and hours that cannot match.
func (c cron) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(5, 0, 0)
	for t.Before(end) {
		if c.month&(1<<int(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !c.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if c.hour&(1<<t.Hour()) == 0 {
			t = t.Truncate(time.Hour).Add(time.Hour)
			continue
		}
		if c.minute&(1<<t.Minute()) == 0 {
			t = t.Add(time.Minute)
			continue
		}
		return t
	}
	return time.Time{}
}
