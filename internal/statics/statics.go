// Package statics serves an app's `[[statics]]` straight from its image's
// root filesystem, as Fly's proxy does: requests under `url_prefix` are
// answered with files below `guest_path`, without reaching a machine.
//
// Paths are resolved the way the guest would see them — symlinks are
// followed, an absolute link target starts at the rootfs, and ".." stops at
// the rootfs — so no request and no link in the image can reach a file
// outside the rootfs. Responses carry a content type (by extension, else
// sniffed), an ETag, Last-Modified, and honour If-None-Match and Range.
package statics

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Static is one `[[statics]]` entry of fly.toml.
type Static struct {
	GuestPath     string `json:"guest_path"`
	URLPrefix     string `json:"url_prefix"`
	IndexDocument string `json:"index_document,omitempty"`
}

// Handler serves one app's statics from one rootfs.
type Handler struct {
	root    string
	statics []Static // longest url_prefix first
	// Next, if set, gets the requests no static file answers (the app).
	// Without it they get 404 (or 405 for methods other than GET/HEAD).
	Next http.Handler
}

// maxLinks bounds symlinks followed while resolving one path.
const maxLinks = 40

// New returns a handler for the statics of an image unpacked at rootfs.
func New(rootfs string, statics []Static) (*Handler, error) {
	root, err := filepath.Abs(rootfs)
	if err != nil {
		return nil, fmt.Errorf("statics rootfs %s: %w", rootfs, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("statics rootfs %s: not a directory (%v)", rootfs, err)
	}
	h := &Handler{root: root}
	for i, s := range statics {
		if !strings.HasPrefix(s.URLPrefix, "/") || !strings.HasPrefix(s.GuestPath, "/") {
			return nil, fmt.Errorf("statics[%d]: url_prefix %q and guest_path %q must be absolute paths", i, s.URLPrefix, s.GuestPath)
		}
		if strings.Contains(s.IndexDocument, "/") {
			return nil, fmt.Errorf("statics[%d]: index_document %q must be a file name", i, s.IndexDocument)
		}
		s.URLPrefix = strings.TrimSuffix(path.Clean(s.URLPrefix), "/")
		h.statics = append(h.statics, s)
	}
	sort.SliceStable(h.statics, func(i, j int) bool { return len(h.statics[i].URLPrefix) > len(h.statics[j].URLPrefix) })
	return h, nil
}

// Match returns the static entry for a URL path and the path below its
// prefix, or ok=false.
func (h *Handler) Match(urlPath string) (s Static, rest string, ok bool) {
	for _, s := range h.statics {
		if urlPath == s.URLPrefix || s.URLPrefix == "" {
			return s, strings.TrimPrefix(urlPath, s.URLPrefix), true
		}
		if r, found := strings.CutPrefix(urlPath, s.URLPrefix+"/"); found {
			return s, "/" + r, true
		}
	}
	return Static{}, "", false
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, rest, ok := h.Match(r.URL.Path)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		h.next(w, r, ok)
		return
	}
	f, fi, err := h.open(s, rest)
	if err != nil {
		h.next(w, r, false)
		return
	}
	defer f.Close()
	w.Header().Set("ETag", etag(fi))
	w.Header().Set("Accept-Ranges", "bytes")
	// ServeContent picks the type by extension (else sniffs), and answers
	// If-None-Match, If-Modified-Since, Range and If-Range.
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

func (h *Handler) next(w http.ResponseWriter, r *http.Request, matchedMethod bool) {
	if h.Next != nil {
		h.Next.ServeHTTP(w, r)
		return
	}
	if matchedMethod {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed for static files", http.StatusMethodNotAllowed)
		return
	}
	http.NotFound(w, r)
}

// etag is a strong validator from size, modification time and inode
// (an image's files never change in place).
func etag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + inode(fi) + `"`
}

// open resolves a request path below a static entry and opens the regular
// file it names (the index document for a directory).
func (h *Handler) open(s Static, rest string) (*os.File, fs.FileInfo, error) {
	if strings.IndexByte(rest, 0) >= 0 {
		return nil, nil, fs.ErrNotExist
	}
	guest := path.Join(s.GuestPath, path.Clean("/"+rest))
	p, err := h.Resolve(guest)
	if err != nil {
		return nil, nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		if s.IndexDocument == "" {
			return nil, nil, fs.ErrNotExist
		}
		if p, err = h.Resolve(path.Join(guest, s.IndexDocument)); err != nil {
			return nil, nil, err
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	fi, err = f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fs.ErrNotExist
	}
	return f, fi, nil
}

// Resolve maps an absolute guest path to a host path inside the rootfs,
// following symlinks as the guest would: an absolute target restarts at the
// rootfs, ".." never climbs above it. The result has no symlink left in it
// (the last component may not exist).
func (h *Handler) Resolve(guestPath string) (string, error) {
	var done []string // resolved components, none a symlink
	todo := strings.Split(guestPath, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		p := filepath.Join(h.root, filepath.Join(append(done, c)...))
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if len(todo) > 0 {
				return "", err
			}
			done = append(done, c)
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s: too many symlinks", guestPath)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(h.root, filepath.Join(done...)), nil
}
