package logs

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/logs/logfile"
)

// The log files' format is defined in logfile, shared by the shim that
// writes them (internal/runtime's lineWriter) and the readers here.

// TimeFormat is a line's timestamp (logfile.TimeFormat).
const TimeFormat = logfile.TimeFormat

// LostStream is the stream of the lines the shim writes itself
// (logfile.LostStream).
const LostStream = logfile.LostStream

// LostLinesMessage is logfile.LostLinesMessage.
func LostLinesMessage(n int64, err error) string { return logfile.LostLinesMessage(n, err) }

var lostRE = regexp.MustCompile(`^\[hangar: ([0-9]{1,18}) log lines lost: `)

// ParseLostLines returns n when msg is LostLinesMessage(n, …).
func ParseLostLines(msg string) (int64, bool) {
	m := lostRE.FindStringSubmatch(msg)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

// ArchivePath is logfile.ArchivePath.
func ArchivePath(logPath, firstTimestamp string) string {
	return logfile.ArchivePath(logPath, firstTimestamp)
}

// LogFile is one file of a machine's log in an app's log directory.
type LogFile struct {
	Name      string
	MachineID string
	// Kind is "current" (<id>.log), "rotated" (<id>.log.1) or "archive".
	Kind string
	// Start is an archive's first line's time (zero for the others).
	Start time.Time
}

// ParseLogFileName reads a file name of an app's log directory; ok is
// false for names that are not machine logs.
func ParseLogFileName(name string) (LogFile, bool) {
	name = filepath.Base(name)
	id, rest, ok := strings.Cut(name, ".log")
	if !ok || id == "" || strings.Contains(id, ".") {
		return LogFile{}, false
	}
	switch {
	case rest == "":
		return LogFile{Name: name, MachineID: id, Kind: "current"}, true
	case rest == ".1":
		return LogFile{Name: name, MachineID: id, Kind: "rotated"}, true
	case strings.HasPrefix(rest, ".") && len(rest) == len(TimeFormat)+1:
		at, err := time.Parse(TimeFormat, rest[1:])
		if err != nil || at.Format(TimeFormat) != rest[1:] {
			return LogFile{}, false // not a name the shim writes (they sort as text)
		}
		return LogFile{Name: name, MachineID: id, Kind: "archive", Start: at}, true
	}
	return LogFile{}, false
}
