package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/types"
)

// consoleOptions is a command to run in a machine over the console
// WebSocket (ssh console, machine exec).
type consoleOptions struct {
	command []string // none: the machine's shell
	tty     bool
	user    string
	timeout int // seconds; 0: none
	stdin   *os.File
	stdout  io.Writer
	stderr  io.Writer
}

// console runs o in machine id of app and returns the command's exit code.
// With a TTY, a terminal on stdin is put in raw mode for the session (so
// Ctrl-C and Ctrl-D reach the machine) and its resizes are passed on.
func (c *client) console(ctx context.Context, app, id string, o consoleOptions) (int, error) {
	q := url.Values{}
	q["command"] = o.command
	if o.user != "" {
		q.Set("user", o.user)
	}
	if o.timeout > 0 {
		q.Set("timeout", strconv.Itoa(o.timeout))
	}
	var restore func()
	if o.tty {
		q.Set("tty", "true")
		if term := os.Getenv("TERM"); term != "" {
			q.Set("term", term)
		}
		if ws, err := unix.IoctlGetWinsize(int(o.stdin.Fd()), unix.TIOCGWINSZ); err == nil {
			q.Set("cols", strconv.Itoa(int(ws.Col)))
			q.Set("rows", strconv.Itoa(int(ws.Row)))
		}
	}
	u := c.base + appPath(app, "machines", id, "console") + "?" + q.Encode()
	u = "ws" + strings.TrimPrefix(u, "http")
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var e types.ErrorResponse
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if json.Unmarshal(b, &e) != nil || e.Error == "" {
				e.Error = strings.TrimSpace(string(b))
			}
			if e.Error == "" {
				e.Error = err.Error()
			}
			return -1, &apiError{Status: resp.StatusCode, Message: e.Error}
		}
		return -1, &HintError{Err: fmt.Errorf("cannot open a console at %s: %w", c.base, err),
			Hint: "is `hangar server` running? Set HANGAR_API_URL to its --api-listen address"}
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	var wmu sync.Mutex // guards writes to conn
	send := func(ch byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.Write(ctx, websocket.MessageBinary, append([]byte{ch}, p...))
	}
	if o.tty {
		if r, err := makeRaw(int(o.stdin.Fd())); err == nil {
			restore = r
			defer restore()
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if ws, err := unix.IoctlGetWinsize(int(o.stdin.Fd()), unix.TIOCGWINSZ); err == nil {
					b, _ := json.Marshal(types.ConsoleSize{Cols: ws.Col, Rows: ws.Row})
					_ = send(types.ConsoleResize, b)
				}
			}
		}()
	}
	if o.stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := o.stdin.Read(buf)
				if n > 0 && send(types.ConsoleStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					if o.tty {
						// A terminal has no end of input: what ends
						// it is Ctrl-D.
						_ = send(types.ConsoleStdin, []byte{4})
					} else {
						_ = send(types.ConsoleStdinEOF, nil)
					}
					return
				}
			}
		}()
	} else {
		_ = send(types.ConsoleStdinEOF, nil)
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return -1, fmt.Errorf("console of machine %s: the connection ended before the command's exit: %w", id, err)
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case types.ConsoleStdout:
			_, _ = o.stdout.Write(msg[1:])
		case types.ConsoleStderr:
			_, _ = o.stderr.Write(msg[1:])
		case types.ConsoleExit:
			var ex types.ConsoleExitStatus
			if err := json.NewDecoder(bytes.NewReader(msg[1:])).Decode(&ex); err != nil {
				return -1, fmt.Errorf("console of machine %s: bad exit message: %w", id, err)
			}
			_ = conn.Close(websocket.StatusNormalClosure, "")
			if ex.Error != "" {
				return ex.ExitCode, fmt.Errorf("machine %s: %s", id, ex.Error)
			}
			return ex.ExitCode, nil
		}
	}
}

// makeRaw puts the terminal fd in raw mode (as cfmakeraw does) and returns
// how to restore it.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// exitWith turns a command's exit code into the CLI's.
func exitWith(code int, err error) error {
	if err != nil {
		if code <= 0 {
			code = 1
		}
		return &ExitError{Code: code, Err: err}
	}
	if code != 0 {
		if code < 0 {
			code = 1
		}
		return &ExitError{Code: code}
	}
	return nil
}

// errNoStartedMachine is returned when an app has no machine to open a
// console in.
var errNoStartedMachine = errors.New("no started machine")
