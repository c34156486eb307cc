package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/types"
)

// Shells are tried, in order, for a console without a command (Fly's ssh
// console: bash when the image has it).
var Shells = []string{"/bin/bash", "/bin/sh"}

// SessionRequest is a command to run in a machine with streamed input and
// output (ssh console, machine exec): Command empty runs a shell.
type SessionRequest struct {
	Command []string
	User    string // a name or uid[:gid] in the image; "" is the machine's user
	TTY     bool
	Cols    uint16
	Rows    uint16
	Env     []string // added to the machine's environment (TERM)
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer // unused with a TTY: one stream
}

// StartSession starts a command in a started machine, with the machine's
// environment, and returns it running: the caller waits for it (Wait) and
// ends it early with Kill.
func (s *Supervisor) StartSession(ctx context.Context, app, id string, req SessionRequest) (runtime.ExecSession, error) {
	ex, ok := s.opt.Driver.(runtime.ExecStarter)
	if !ok {
		return nil, fmt.Errorf("console in machine %s: %w", id, ErrUnsupported)
	}
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if r.State != types.StateStarted {
		return nil, fmt.Errorf("machine %s is %s; a console needs a started machine: start it with `hangar machine start %s`: %w", id, r.State, id, ErrConflict)
	}
	p := runtime.ExecProcess{Args: req.Command, Env: req.Env, TTY: req.TTY, Cols: req.Cols, Rows: req.Rows, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr}
	if req.User != "" {
		img, err := s.opt.Images.Get(ctx, r.Config.Image)
		if err != nil {
			return nil, fmt.Errorf("machine %s: image %q: %w", id, r.Config.Image, err)
		}
		uid, gid, err := resolveUser(img.RootFS, req.User)
		if err != nil {
			return nil, fmt.Errorf("machine %s: %w: %w", id, err, ErrInvalid)
		}
		p.User = &runtime.ExecUser{UID: uid, GID: gid}
	}
	if len(p.Args) > 0 {
		sess, err := ex.StartExec(ctx, id, p)
		if err != nil {
			return nil, fmt.Errorf("machine %s: %w", id, err)
		}
		return sess, nil
	}
	for _, sh := range Shells {
		p.Args = []string{sh}
		sess, err := ex.StartExec(ctx, id, p)
		if errors.Is(err, runtime.ErrNoExecutable) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("machine %s: %w", id, err)
		}
		return sess, nil
	}
	return nil, fmt.Errorf("machine %s: its image has no shell (%s): run a command of the image instead, e.g. `hangar ssh console -C /app`: %w", id, Shells, ErrInvalid)
}
