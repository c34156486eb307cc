package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
)

// fileHandlers let tests use the machine's filesystem (volumes, [[files]]):
//
//	POST /file?path=P   body → P (directories made)
//	GET  /file?path=P   P's contents (404 if missing)
//	POST /fill?path=P   write 1 MB blocks to P until a write fails; the
//	                    answer names the bytes written and the error
//	                    ("ENOSPC" when the filesystem is full)
//	GET  /statfs?path=P size and free bytes of P's filesystem
func fileHandlers(mux *http.ServeMux) {
	mux.HandleFunc("POST /file", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		f, err := os.Open(p)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "wrote %d bytes\n", len(b))
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /fill", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(i*7 + 1)
		}
		var n int64
		for n < 64<<30 {
			k, werr := f.Write(buf)
			n += int64(k)
			if werr == nil {
				continue
			}
			name := werr.Error()
			if errors.Is(werr, syscall.ENOSPC) {
				name = "ENOSPC"
			}
			fmt.Fprintf(w, "wrote %d bytes, then %s\n", n, name)
			return
		}
		fmt.Fprintf(w, "wrote %d bytes without an error\n", n)
		_ = f.Sync()
	})
	mux.HandleFunc("GET /statfs", func(w http.ResponseWriter, r *http.Request) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(r.URL.Query().Get("path"), &st); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, "size=%d free=%d\n", st.Blocks*uint64(st.Bsize), st.Bavail*uint64(st.Bsize))
	})
}
