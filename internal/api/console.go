package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// consoleQuery is the query of GET .../console, documented in routes.go.
var consoleQuery = []Param{
	{Name: "command", Type: "string", Desc: "one argument of the command; repeat for each (none: the machine's shell, /bin/bash or /bin/sh)"},
	{Name: "tty", Type: "boolean", Desc: "run on a terminal (output all on stdout)"},
	{Name: "cols", Type: "integer", Desc: "the terminal's width"},
	{Name: "rows", Type: "integer", Desc: "the terminal's height"},
	{Name: "term", Type: "string", Desc: "TERM for the command (with tty; default xterm)"},
	{Name: "user", Type: "string", Desc: "run as this user of the image (name or uid[:gid])"},
	{Name: "timeout", Type: "integer", Desc: "seconds after which the command is killed (default: none)"},
}

// machineConsole runs a command (or a shell) in a machine over a
// WebSocket: `hangar ssh console` and `hangar machine exec`. The protocol
// is in types/wire_console.go. The command starts before the upgrade, so
// a stopped machine, an unknown user or a missing shell answer with an
// HTTP error.
func (s *Server) machineConsole(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req := supervisor.SessionRequest{Command: q["command"], User: q.Get("user"), TTY: q.Get("tty") == "true" || q.Get("tty") == "1"}
	for _, f := range []struct {
		name string
		dst  *uint16
	}{{"cols", &req.Cols}, {"rows", &req.Rows}} {
		if v := q.Get(f.name); v != "" {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return badRequest("%s %q: a number from 0 to 65535", f.name, v)
			}
			*f.dst = uint16(n)
		}
	}
	var timeout time.Duration
	if v := q.Get("timeout"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("timeout %q: seconds, 0 or more", v)
		}
		timeout = time.Duration(n) * time.Second
	}
	if req.TTY {
		term := q.Get("term")
		if term == "" {
			term = "xterm"
		}
		req.Env = []string{"TERM=" + term}
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return badRequest("this endpoint speaks WebSocket: use `hangar ssh console` or `hangar machine exec`")
	}
	// Stdin is an OS pipe: the runtime's client reads it directly, so its
	// end never waits for a copier.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer stdinW.Close()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	req.Stdin, req.Stdout, req.Stderr = stdinR, outW, errW
	// stdinR stays open until the end: with a TTY the runtime reads it.
	defer stdinR.Close()
	sess, err := s.sup.StartSession(r.Context(), r.PathValue("app"), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		sess.Kill()
		outR.Close()
		errR.Close()
		_, _ = sess.Wait()
		return nil // Accept answered
	}
	conn.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	var wmu sync.Mutex // guards writes to conn
	send := func(ch byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.Write(ctx, websocket.MessageBinary, append([]byte{ch}, p...))
	}
	var pumps sync.WaitGroup
	pump := func(ch byte, src *io.PipeReader) {
		defer pumps.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && send(ch, buf[:n]) != nil {
				src.CloseWithError(io.ErrClosedPipe) // the client is gone
				sess.Kill()
				return
			}
			if err != nil {
				return
			}
		}
	}
	pumps.Add(2)
	go pump(types.ConsoleStdout, outR)
	go pump(types.ConsoleStderr, errR)
	// The client's messages: input, its end, resizes. A client that goes
	// away ends the command.
	go func() {
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				sess.Kill()
				return
			}
			if len(msg) == 0 {
				continue
			}
			switch msg[0] {
			case types.ConsoleStdin:
				if _, err := stdinW.Write(msg[1:]); err != nil {
					s.log.Debug("console: stdin", "err", err)
				}
			case types.ConsoleStdinEOF:
				stdinW.Close()
			case types.ConsoleResize:
				var sz types.ConsoleSize
				if json.Unmarshal(msg[1:], &sz) == nil && sz.Cols > 0 && sz.Rows > 0 {
					_ = sess.Resize(sz.Cols, sz.Rows)
				}
			}
		}
	}()
	var timedOut atomic.Bool
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() {
			timedOut.Store(true)
			sess.Kill()
		})
	}
	code, err := sess.Wait()
	if timer != nil {
		timer.Stop()
	}
	outW.Close()
	errW.Close()
	pumps.Wait()
	exit := types.ConsoleExitStatus{ExitCode: code}
	switch {
	case timedOut.Load():
		exit.ExitCode = -1
		exit.Error = fmt.Sprintf("the command did not finish within %v and was killed: raise --timeout", timeout)
	case err != nil:
		exit.ExitCode = -1
		exit.Error = err.Error()
	}
	b, _ := json.Marshal(exit)
	if err := send(types.ConsoleExit, b); err == nil {
		wmu.Lock()
		_ = conn.Close(websocket.StatusNormalClosure, "")
		wmu.Unlock()
	} else {
		_ = conn.CloseNow()
	}
	return nil
}
