package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// filesQuery is the query of the .../files routes, documented in routes.go.
var filesQuery = []Param{{Name: "path", Type: "string", Desc: "the file's path in the machine (absolute; a path that climbs above / is a 400)"}}

// getFile streams a regular file of a started machine (`hangar ssh sftp
// get`), read from the machine's root filesystem by the daemon: the image
// needs no tool.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) error {
	root, err := s.sup.MachineFS(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	defer root.Close()
	f, fi, err := root.OpenFile(r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set("Hangar-File-Mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		s.log.Debug("files: get cut short", "path", f.Name(), "err", err)
	}
	return nil
}

// putFile writes the request body to a file of a started machine (`hangar
// ssh sftp put`): in a temporary file beside it, renamed into place once
// whole, so a cut upload leaves the old file (or none).
func (s *Server) putFile(w http.ResponseWriter, r *http.Request) error {
	var perm uint32
	if v := r.URL.Query().Get("mode"); v != "" {
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n > 0o7777 {
			return badRequest("mode %q: octal permission bits, e.g. 0644", v)
		}
		perm = uint32(n)
	}
	root, err := s.sup.MachineFS(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	defer root.Close()
	p := r.URL.Query().Get("path")
	up, err := root.Create(p, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(up, r.Body); err != nil {
		up.Abort()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return fmt.Errorf("upload to %s: %v: %w", p, err, errBadRequest)
	}
	if err := up.Commit(); err != nil {
		return err
	}
	info, err := root.Stat(p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// statFile describes a file of a started machine, with the entries of a
// directory (`hangar ssh sftp shell`'s ls).
func (s *Server) statFile(w http.ResponseWriter, r *http.Request) error {
	root, err := s.sup.MachineFS(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	defer root.Close()
	info, err := root.Stat(r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(info)
}
