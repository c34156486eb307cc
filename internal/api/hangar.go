package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
)

// MaxImageBytes bounds an uploaded image archive.
const MaxImageBytes = 4 << 30

// DeployRequest is the body of POST /v1/deploys.
type DeployRequest struct {
	App        string `json:"app"`
	Config     string `json:"config"`      // fly.toml contents
	ConfigFile string `json:"config_file"` // its name, for error messages
	// LocalFiles holds the [[files]] local_path contents (base64 in JSON).
	LocalFiles  map[string][]byte `json:"local_files,omitempty"`
	Image       string            `json:"image"`
	Strategy    string            `json:"strategy,omitempty"`
	WaitTimeout string            `json:"wait_timeout,omitempty"`
}

// DeployLine is one line of the deploy stream: an event, or at the end the
// release or the error.
type DeployLine struct {
	Event   *deploy.Event   `json:"event,omitempty"`
	Release *deploy.Release `json:"release,omitempty"`
	Error   string          `json:"error,omitempty"`
	Status  int             `json:"status,omitempty"`
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) error {
	var req DeployRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Config) == "" {
		return badRequest("config is required: send the fly.toml contents")
	}
	var wt time.Duration
	if req.WaitTimeout != "" {
		d, err := time.ParseDuration(req.WaitTimeout)
		if err != nil || d <= 0 {
			return badRequest("wait_timeout %q: use a duration like \"2m\"", req.WaitTimeout)
		}
		wt = d
	}
	tok := r.Context().Value(tokenKey{}).(*auth.Token)
	if req.App != "" && !tok.CanAccessApp(req.App) {
		return fmt.Errorf("token %s may not deploy app %s: %w", tok.ID, req.App, auth.ErrUnauthorized)
	}
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.Deployer.Deploy(ctx, deploy.Request{
			App: req.App, Config: []byte(req.Config), ConfigFile: req.ConfigFile, LocalFiles: req.LocalFiles, Image: req.Image,
			Strategy: req.Strategy, WaitTimeout: wt, User: tok.Name,
		}, p)
	})
	return nil
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	rels, err := deploy.Releases(r.Context(), s.Store, app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rels)
	return nil
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.Images.List(r.Context())
	if err != nil {
		return err
	}
	if imgs == nil {
		imgs = []*image.Image{}
	}
	writeJSON(w, http.StatusOK, imgs)
	return nil
}

func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("ref")
	body := http.MaxBytesReader(w, r.Body, MaxImageBytes)
	img, err := s.Images.ImportReader(r.Context(), body, ref)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("image archive over %d bytes: %w", int64(MaxImageBytes), errTooLarge)
		}
		return badRequest("import image: %v", err)
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}

func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Ref      string `json:"ref"`
		Insecure bool   `json:"insecure"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Ref == "" {
		return badRequest("ref is required")
	}
	var opts []image.PullOption
	if req.Insecure {
		opts = append(opts, image.WithInsecure())
	}
	img, err := s.Images.Pull(r.Context(), req.Ref, opts...)
	if err != nil {
		return badRequest("pull %s: %v", req.Ref, err)
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}

// LogLine is one line of an app's logs.
type LogLine struct {
	Timestamp string `json:"timestamp"`
	App       string `json:"app"`
	MachineID string `json:"machine_id"`
	Region    string `json:"region"`
	Stream    string `json:"stream"`
	Message   string `json:"message"`
}

func parseLogLine(app, machine, region, line string) (LogLine, bool) {
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		return LogLine{}, false
	}
	stream, msg, _ := strings.Cut(rest, " ")
	return LogLine{Timestamp: ts, App: app, MachineID: machine, Region: region, Stream: stream, Message: msg}, true
}

// logs streams an app's machine logs as NDJSON: the last `lines` lines
// (default 100), then, with follow=true, new lines as they are written.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "true"
	onlyMachine := q.Get("machine")
	n := 100
	if v := q.Get("lines"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 {
			return badRequest("lines %q: a non-negative number", v)
		}
	}
	dir := filepath.Join(filepath.Dir(s.Sup.LogPath(app, "x")))
	offsets := map[string]int64{}
	readNew := func(all bool) []LogLine {
		files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		var out []LogLine
		for _, f := range files {
			id := strings.TrimSuffix(filepath.Base(f), ".log")
			if onlyMachine != "" && id != onlyMachine {
				continue
			}
			fh, err := os.Open(f)
			if err != nil {
				continue
			}
			if off, ok := offsets[f]; ok {
				_, _ = fh.Seek(off, io.SeekStart)
			}
			br := bufio.NewReader(fh)
			var pos int64 = offsets[f]
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					break // a partial last line is read next time
				}
				pos += int64(len(line))
				if l, ok := parseLogLine(app, id, s.Region, strings.TrimRight(line, "\n")); ok {
					out = append(out, l)
				}
			}
			offsets[f] = pos
			fh.Close()
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Timestamp < out[j].Timestamp })
		if all && len(out) > n {
			out = out[len(out)-n:]
		}
		return out
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for _, l := range readNew(true) {
		_ = enc.Encode(l)
	}
	if flusher != nil {
		flusher.Flush()
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-t.C:
			lines := readNew(false)
			for _, l := range lines {
				if err := enc.Encode(l); err != nil {
					return nil
				}
			}
			if len(lines) > 0 && flusher != nil {
				flusher.Flush()
			}
		}
	}
}
