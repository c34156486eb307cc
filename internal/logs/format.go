package logs

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The log files' format, shared by the shim that writes them
// (internal/runtime's lineWriter) and the readers here.
//
// A machine's log is <id>.log (being written), <id>.log.1 (the file
// rotated last) and archives <id>.log.<first timestamp> (older rotated
// files, named by the time of their first line so that they sort by
// time as text). A line is "<timestamp> <stream> <message>".

// TimeFormat is a line's timestamp: RFC 3339 in UTC with a fixed-width
// fraction, so lines and archive names sort as text.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// LostStream is the stream of the lines the shim writes itself: how many
// lines it lost (LostLinesMessage).
const LostStream = "hangar"

// LostLinesMessage is the message of the line the shim writes after it
// failed to write n lines (the disk full), with the error.
func LostLinesMessage(n int64, err error) string {
	why := "write failed"
	if err != nil {
		why = strings.ReplaceAll(err.Error(), "\n", " ")
	}
	return fmt.Sprintf("[hangar: %d log lines lost: %s]", n, why)
}

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

// ArchivePath is the name a rotated log file is archived under: the
// machine's log path followed by the timestamp of its first line.
func ArchivePath(logPath, firstTimestamp string) string {
	return logPath + "." + firstTimestamp
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
