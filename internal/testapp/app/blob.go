package main

// /blob and /sink for the proxy's bandwidth benchmark: bodies that cost
// the app next to nothing to produce or take, so that what is measured is
// the path between client and app.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

var (
	blobOnce sync.Once
	blob     []byte
)

func blobHandlers(mux *http.ServeMux) {
	// GET /blob?n=<bytes> answers n bytes (default 1 MiB, at most 64 MiB)
	// of a fixed pattern, with a Content-Length.
	mux.HandleFunc("GET /blob", func(w http.ResponseWriter, r *http.Request) {
		blobOnce.Do(func() { blob = bytes.Repeat([]byte("0123456789abcdef"), 64<<20/16) })
		n := 1 << 20
		if s := r.URL.Query().Get("n"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 || v > len(blob) {
				http.Error(w, "n must be a byte count from 0 to 67108864", http.StatusBadRequest)
				return
			}
			n = v
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(blob[:n])
	})
	// POST /sink reads the request body, discards it and answers its
	// length.
	mux.HandleFunc("POST /sink", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "read %d bytes\n", n)
	})
}
