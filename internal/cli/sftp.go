package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/google/shlex"
	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// newSFTPCmd is `hangar ssh sftp`: flyctl's file transfer to and from a
// machine, through the API: the daemon reads and writes the machine's
// files itself, so the image needs no sftp server or shell.
func newSFTPCmd() *cobra.Command {
	var app, config, machine, region string
	var sel bool
	cmd := &cobra.Command{Use: "sftp", Short: "Copy files to and from a machine (get, put, shell)"}
	f := cmd.PersistentFlags()
	f.StringVarP(&app, "app", "a", "", "app name")
	f.StringVarP(&config, "config", "c", "", "path to fly.toml (to find the app name)")
	f.BoolVarP(&sel, "select", "s", false, "pick the machine from a list")
	f.StringVar(&machine, "machine", "", "the machine's id (default: a started machine of the app)")
	f.StringVarP(&region, "region", "r", "", "a machine of this region")
	open := func(ctx context.Context) (*sftpSession, error) {
		name, c, err := appAndClient(app, config)
		if err != nil {
			return nil, err
		}
		id, err := pickMachine(ctx, c, name, machine, region, sel)
		if err != nil {
			return nil, err
		}
		return &sftpSession{c: c, app: name, id: id, cwd: "/"}, nil
	}
	get := &cobra.Command{
		Use:   "get REMOTE [LOCAL]",
		Short: "Copy a file of the machine here (LOCAL: default its name in this directory; never overwritten)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd.Context())
			if err != nil {
				return err
			}
			local := ""
			if len(args) == 2 {
				local = args[1]
			}
			return s.get(cmd.Context(), args[0], local, cmd.OutOrStdout())
		},
	}
	var mode string
	put := &cobra.Command{
		Use:   "put LOCAL REMOTE",
		Short: "Copy a file to the machine (REMOTE a directory: the file keeps its name in it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd.Context())
			if err != nil {
				return err
			}
			return s.put(cmd.Context(), args[0], args[1], mode, cmd.OutOrStdout())
		},
	}
	put.Flags().StringVarP(&mode, "mode", "m", "", "octal permission bits of the file (default: the replaced file's, else 0644)")
	shell := &cobra.Command{
		Use:   "shell",
		Short: "Browse the machine's files: ls, cd, pwd, get, put, exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd.Context())
			if err != nil {
				return err
			}
			return s.shell(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.AddCommand(get, put, shell)
	return cmd
}

// sftpSession is one machine's files, with a working directory (shell).
type sftpSession struct {
	c       *client
	app, id string
	cwd     string
}

// remote is p taken from the working directory.
func (s *sftpSession) remote(p string) string {
	if path.IsAbs(p) {
		return p
	}
	// Not cleaned here: a path that climbs above / is the daemon's to
	// refuse, by name.
	return strings.TrimSuffix(s.cwd, "/") + "/" + p
}

// filesPath is the files route (suffix "" or "stat") for machine path p.
func (s *sftpSession) filesPath(suffix, p string, extra url.Values) string {
	q := url.Values{"path": {p}}
	for k, v := range extra {
		q[k] = v
	}
	parts := []string{s.id, "files"}
	if suffix != "" {
		parts = append(parts, suffix)
	}
	return appPath(s.app, "machines", parts...) + "?" + q.Encode()
}

func (s *sftpSession) stat(ctx context.Context, p string) (*types.FileInfo, error) {
	var info types.FileInfo
	if err := s.c.do(ctx, "GET", s.filesPath("stat", s.remote(p), nil), nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// get copies remote to local (a new file; an existing directory gets the
// remote's name in it), written beside and renamed once whole.
func (s *sftpSession) get(ctx context.Context, remote, local string, out io.Writer) error {
	rp := s.remote(remote)
	if local == "" {
		local = path.Base(rp)
	}
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		local = filepath.Join(local, path.Base(rp))
	}
	if _, err := os.Lstat(local); err == nil {
		return &HintError{Err: fmt.Errorf("%s exists here", local), Hint: "name another local path, or remove it first"}
	}
	resp, err := s.c.send(ctx, "GET", s.filesPath("", rp, nil), nil, "")
	if err != nil {
		return fmt.Errorf("get %s from machine %s: %w", rp, s.id, err)
	}
	defer resp.Body.Close()
	perm := os.FileMode(0o644)
	if m, err := strconv.ParseUint(resp.Header.Get("Hangar-File-Mode"), 8, 32); err == nil {
		perm = os.FileMode(m) & 0o777
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".hangar-get-*")
	if err != nil {
		return fmt.Errorf("get %s: %w", rp, err)
	}
	n, err := io.Copy(tmp, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("the transfer ended after %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), local)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("get %s from machine %s: %w", rp, s.id, err)
	}
	fmt.Fprintf(out, "%d bytes written to %s\n", n, local)
	return nil
}

// put copies local to remote (an existing remote directory gets the local
// file's name in it).
func (s *sftpSession) put(ctx context.Context, local, remote, mode string, out io.Writer) error {
	f, err := os.Open(local)
	if err != nil {
		return &HintError{Err: fmt.Errorf("put: %w", err), Hint: "name a local file to copy"}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return &HintError{Err: fmt.Errorf("put: %s is not a regular file", local), Hint: "copy files one at a time"}
	}
	rp := s.remote(remote)
	if info, err := s.stat(ctx, rp); err == nil && info.IsDir {
		rp = strings.TrimSuffix(rp, "/") + "/" + filepath.Base(local)
	}
	var extra url.Values
	if mode != "" {
		extra = url.Values{"mode": {mode}}
	}
	resp, err := s.c.send(ctx, "PUT", s.filesPath("", rp, extra), io.Reader(f), "application/octet-stream")
	if err != nil {
		return fmt.Errorf("put %s to machine %s: %w", rp, s.id, err)
	}
	defer resp.Body.Close()
	var info types.FileInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return fmt.Errorf("put %s: read the answer: %w", rp, err)
	}
	fmt.Fprintf(out, "%d bytes written to %s\n", info.Size, info.Path)
	return nil
}

// shell reads commands from in until exit or its end.
func (s *sftpSession) shell(ctx context.Context, in io.Reader, out, errOut io.Writer) error {
	sc := bufio.NewScanner(in)
	for {
		fmt.Fprintf(out, "%s:%s> ", s.id, s.cwd)
		if !sc.Scan() {
			fmt.Fprintln(out)
			return sc.Err()
		}
		args, err := shlex.Split(sc.Text())
		if err != nil {
			fmt.Fprintf(errOut, "error: %v\n", err)
			continue
		}
		if len(args) == 0 {
			continue
		}
		err = s.shellCommand(ctx, args, out)
		if errors.Is(err, errExitShell) {
			return nil
		}
		if err != nil {
			fmt.Fprintf(errOut, "error: %v\n", err)
		}
	}
}

var errExitShell = errors.New("exit")

func (s *sftpSession) shellCommand(ctx context.Context, args []string, out io.Writer) error {
	usage := func(u string) error { return fmt.Errorf("usage: %s", u) }
	switch args[0] {
	case "exit", "quit", "bye":
		return errExitShell
	case "help", "?":
		fmt.Fprintln(out, "ls [PATH]  cd PATH  pwd  get REMOTE [LOCAL]  put LOCAL [REMOTE]  exit")
	case "pwd":
		fmt.Fprintln(out, s.cwd)
	case "cd":
		if len(args) != 2 {
			return usage("cd PATH")
		}
		info, err := s.stat(ctx, args[1])
		if err != nil {
			return err
		}
		if !info.IsDir {
			return fmt.Errorf("%s is not a directory", info.Path)
		}
		s.cwd = info.Path
	case "ls":
		p := "."
		if len(args) > 1 {
			p = args[1]
		}
		info, err := s.stat(ctx, p)
		if err != nil {
			return err
		}
		entries := info.Entries
		if !info.IsDir {
			entries = []types.FileInfo{*info}
		}
		tw := tabwriter.NewWriter(out, 0, 4, 1, ' ', 0)
		for _, e := range entries {
			name := e.Name
			if e.Link != "" {
				name += " -> " + e.Link
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", e.Mode, e.UID, e.GID, e.Size, e.ModTime, name)
		}
		tw.Flush()
	case "get":
		if len(args) < 2 || len(args) > 3 {
			return usage("get REMOTE [LOCAL]")
		}
		local := ""
		if len(args) == 3 {
			local = args[2]
		}
		return s.get(ctx, args[1], local, out)
	case "put":
		if len(args) < 2 || len(args) > 3 {
			return usage("put LOCAL [REMOTE]")
		}
		remote := filepath.Base(args[1])
		if len(args) == 3 {
			remote = args[2]
		}
		return s.put(ctx, args[1], remote, "", out)
	default:
		return fmt.Errorf("unknown command %q: try help", args[0])
	}
	return nil
}
