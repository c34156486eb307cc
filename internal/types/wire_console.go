package types

// The console protocol: GET /v1/apps/{app}/machines/{id}/console upgraded
// to a WebSocket. Every message is binary: its first byte is a channel,
// the rest its payload.
//
//	client → server: ConsoleStdin (bytes), ConsoleStdinEOF (empty),
//	                 ConsoleResize (ConsoleSize JSON)
//	server → client: ConsoleStdout, ConsoleStderr (bytes), then one
//	                 ConsoleExit (ConsoleExitStatus JSON) before the close
//
// With a TTY the command's output is all on ConsoleStdout.
const (
	ConsoleStdin    byte = 0
	ConsoleStdout   byte = 1
	ConsoleStderr   byte = 2
	ConsoleExit     byte = 3
	ConsoleStdinEOF byte = 4
	ConsoleResize   byte = 5
)

// ConsoleSize is a terminal's size in characters.
type ConsoleSize struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// ConsoleExitStatus ends a console session: the command's exit code
// (128+n when signal n killed it), or why the session failed.
type ConsoleExitStatus struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}
