package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// DefaultDataDir is the daemon's data dir unless --data-dir says otherwise.
const DefaultDataDir = "/var/lib/hangar"

// client talks to a Hangar daemon's API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// newClient finds the daemon and a token: HANGAR_API_URL (default
// http://127.0.0.1:4280, or the address the local daemon recorded), and
// HANGAR_API_TOKEN or the local daemon's admin-token file.
func newClient() (*client, error) {
	dataDir := os.Getenv("HANGAR_DATA_DIR")
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	base := os.Getenv("HANGAR_API_URL")
	if base == "" {
		base = "http://127.0.0.1:4280"
		if b, err := os.ReadFile(filepath.Join(dataDir, "api-addr")); err == nil {
			base = "http://" + strings.TrimSpace(string(b))
		}
	}
	token := os.Getenv("HANGAR_API_TOKEN")
	if token == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
		if err != nil {
			return nil, &HintError{
				Err:  fmt.Errorf("no API token: HANGAR_API_TOKEN is unset and %s/admin-token is unreadable (%v)", dataDir, err),
				Hint: "start the daemon with `hangar server` (as root), set HANGAR_DATA_DIR to its --data-dir, or export HANGAR_API_TOKEN",
			}
		}
		token = strings.TrimSpace(string(b))
	}
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func (c *client) do(ctx context.Context, method, path string, body any, out any) error {
	resp, err := c.send(ctx, method, path, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send performs a request and returns the response if its status is 2xx.
func (c *client) send(ctx context.Context, method, path string, body any, contentType string) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &HintError{Err: fmt.Errorf("cannot reach the Hangar API at %s: %w", c.base, err),
			Hint: "is `hangar server` running? Set HANGAR_API_URL to its --api-listen address"}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e types.ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ago(ts string) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return ts
	}
	d := time.Since(t).Round(time.Second)
	return d.String() + " ago"
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// tarDir packs a directory (an OCI layout) into a tar file.
func tarDir(dir, dst string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(out)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// appPath is the API path of an app's resource, each part escaped:
// appPath("web", "machines", id, "stop") = /v1/apps/web/machines/<id>/stop.
func appPath(app, resource string, parts ...string) string {
	p := "/v1/apps/" + url.PathEscape(app) + "/" + resource
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}
