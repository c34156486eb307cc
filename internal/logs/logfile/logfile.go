// Package logfile is the format of machine log files that the shim
// (internal/runtime) writes and internal/logs reads: line timestamps, the
// names of rotated and archived files, and the count of lost lines. It
// imports only the standard library, so the shim, which starts from the
// daemon's binary, does not initialise the log readers' dependencies (the
// NATS server, Prometheus) before it runs: a package's imports are all
// initialised before it, and the shim runs from internal/runtime's init.
//
// A machine's log is <id>.log (being written), <id>.log.1 (the file
// rotated last) and archives <id>.log.<first timestamp> (older rotated
// files, named by the time of their first line so that they sort by time
// as text). A line is "<timestamp> <stream> <message>".
package logfile

import (
	"fmt"
	"strings"
)

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

// ArchivePath is the name a rotated log file is archived under: the
// machine's log path followed by the timestamp of its first line.
func ArchivePath(logPath, firstTimestamp string) string {
	return logPath + "." + firstTimestamp
}

// LostPath is where a machine's shim keeps the count of lines it could
// not write to the log at logPath: <id>.lost beside <id>.log. The file is
// made at the shim's start and rewritten in place, so counting needs no
// new disk block on a full disk.
func LostPath(logPath string) string {
	return strings.TrimSuffix(logPath, ".log") + ".lost"
}
