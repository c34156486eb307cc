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
	"strconv"
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
	return c.sendWith(ctx, method, path, body, contentType, nil)
}

// sendWith is send with extra request headers (a lease nonce).
func (c *client) sendWith(ctx context.Context, method, path string, body any, contentType string, header map[string]string) (*http.Response, error) {
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
	for k, v := range header {
		req.Header.Set(k, v)
	}
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

// Typed calls of the API, one per endpoint, over the wire types in types.
// Each returns the decoded answer or the API's error (*apiError).

// Apps lists the apps the token may see.
func (c *client) Apps(ctx context.Context) ([]types.App, error) {
	var res struct {
		Apps []types.App `json:"apps"`
	}
	err := c.do(ctx, "GET", "/v1/apps", nil, &res)
	return res.Apps, err
}

// App gets one app.
func (c *client) App(ctx context.Context, app string) (*types.App, error) {
	var a types.App
	if err := c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(app), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// CreateApp creates an app.
func (c *client) CreateApp(ctx context.Context, app string) (*types.App, error) {
	var a types.App
	if err := c.do(ctx, "POST", "/v1/apps", types.CreateAppRequest{AppName: app}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// DeleteApp destroys an app and all its machines.
func (c *client) DeleteApp(ctx context.Context, app string) error {
	return c.do(ctx, "DELETE", "/v1/apps/"+url.PathEscape(app), nil, nil)
}

// Machines lists an app's machines.
func (c *client) Machines(ctx context.Context, app string) ([]types.Machine, error) {
	var ms []types.Machine
	err := c.do(ctx, "GET", appPath(app, "machines"), nil, &ms)
	return ms, err
}

// Machine gets one machine.
func (c *client) Machine(ctx context.Context, app, id string) (*types.Machine, error) {
	var m types.Machine
	if err := c.do(ctx, "GET", appPath(app, "machines", id), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// CreateMachine creates and starts a machine.
func (c *client) CreateMachine(ctx context.Context, app string, req types.CreateMachineRequest) (*types.Machine, error) {
	var m types.Machine
	if err := c.do(ctx, "POST", appPath(app, "machines"), req, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Releases lists an app's releases, newest first.
func (c *client) Releases(ctx context.Context, app string) ([]types.Release, error) {
	var rels []types.Release
	err := c.do(ctx, "GET", appPath(app, "releases"), nil, &rels)
	return rels, err
}

// Release gets release version of an app.
func (c *client) Release(ctx context.Context, app string, version int) (*types.Release, error) {
	var rel types.Release
	if err := c.do(ctx, "GET", appPath(app, "releases", strconv.Itoa(version)), nil, &rel); err != nil {
		return nil, err
	}
	return &rel, nil
}

// Volumes lists an app's volumes.
func (c *client) Volumes(ctx context.Context, app string) ([]types.Volume, error) {
	var vs []types.Volume
	err := c.do(ctx, "GET", appPath(app, "volumes"), nil, &vs)
	return vs, err
}

// Volume gets one volume.
func (c *client) Volume(ctx context.Context, app, id string) (*types.Volume, error) {
	return c.volumeCall(ctx, "GET", appPath(app, "volumes", id), nil)
}

// CreateVolume creates a volume: empty, restored or forked.
func (c *client) CreateVolume(ctx context.Context, app string, req types.CreateVolumeRequest) (*types.Volume, error) {
	return c.volumeCall(ctx, "POST", appPath(app, "volumes"), req)
}

// DestroyVolume destroys a volume no machine holds and returns it.
func (c *client) DestroyVolume(ctx context.Context, app, id string) (*types.Volume, error) {
	return c.volumeCall(ctx, "DELETE", appPath(app, "volumes", id), nil)
}

func (c *client) volumeCall(ctx context.Context, method, path string, body any) (*types.Volume, error) {
	var v types.Volume
	if err := c.do(ctx, method, path, body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Snapshots lists a volume's snapshots.
func (c *client) Snapshots(ctx context.Context, app, volumeID string) ([]types.VolumeSnapshot, error) {
	var ss []types.VolumeSnapshot
	err := c.do(ctx, "GET", appPath(app, "volumes", volumeID, "snapshots"), nil, &ss)
	return ss, err
}

// CreateSnapshot snapshots a volume now.
func (c *client) CreateSnapshot(ctx context.Context, app, volumeID string) (*types.VolumeSnapshot, error) {
	var s types.VolumeSnapshot
	if err := c.do(ctx, "POST", appPath(app, "volumes", volumeID, "snapshots"), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Certificate gets a hostname's certificate.
func (c *client) Certificate(ctx context.Context, app, hostname string) (*types.Certificate, error) {
	return c.certCall(ctx, "GET", appPath(app, "certificates", hostname))
}

// CheckCertificate checks a hostname, waiting up to wait (the daemon's
// default when empty) for a retried issuance.
func (c *client) CheckCertificate(ctx context.Context, app, hostname, wait string) (*types.Certificate, error) {
	path := appPath(app, "certificates", hostname, "check")
	if wait != "" {
		path += "?wait=" + url.QueryEscape(wait)
	}
	return c.certCall(ctx, "POST", path)
}

// RemoveCertificate removes a hostname and its certificate.
func (c *client) RemoveCertificate(ctx context.Context, app, hostname string) error {
	return c.do(ctx, "DELETE", appPath(app, "certificates", hostname), nil, nil)
}

func (c *client) certCall(ctx context.Context, method, path string) (*types.Certificate, error) {
	var in types.Certificate
	if err := c.do(ctx, method, path, nil, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// Images lists the daemon's images.
func (c *client) Images(ctx context.Context) ([]types.Image, error) {
	var imgs []types.Image
	err := c.do(ctx, "GET", "/v1/images", nil, &imgs)
	return imgs, err
}

// PullImage has the daemon pull an image from a registry.
func (c *client) PullImage(ctx context.Context, req types.PullImageRequest) (*types.Image, error) {
	var img types.Image
	if err := c.do(ctx, "POST", "/v1/images/pull", req, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// UploadImage sends an image archive (OCI archive, OCI layout tar or
// docker-save tarball) to the daemon, named ref (or as the archive says).
func (c *client) UploadImage(ctx context.Context, archive, ref string) (*types.Image, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	resp, err := c.send(ctx, "POST", "/v1/images?ref="+url.QueryEscape(ref), f, "application/x-tar")
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", archive, err)
	}
	defer resp.Body.Close()
	var img types.Image
	if err := decodeJSON(resp.Body, &img); err != nil {
		return nil, fmt.Errorf("upload %s: decode answer: %w", archive, err)
	}
	return &img, nil
}
