package main

// /text for the edge proxy's compression tests: a large text body whose
// SHA-256 the response carries, so a test can check that what it decoded
// is exactly what the app sent.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
)

func textHandlers(mux *http.ServeMux) {
	// /text?n=<bytes>&type=<content type>&length=1 answers n bytes of
	// text (default 256 KiB, at most 64 MiB) as type (default text/plain),
	// with X-Body-Sha256 and, with length=1, a Content-Length (else Go
	// sends it chunked).
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		n := 256 << 10
		if s := r.URL.Query().Get("n"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 || v > 64<<20 {
				http.Error(w, "n must be a byte count from 0 to 67108864", http.StatusBadRequest)
				return
			}
			n = v
		}
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "%08d the quick brown fox jumps over the lazy dog\n", i)
		}
		body := b.Bytes()[:n]
		sum := sha256.Sum256(body)
		ct := r.URL.Query().Get("type")
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Body-Sha256", hex.EncodeToString(sum[:]))
		if r.URL.Query().Get("length") == "1" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		_, _ = w.Write(body)
	})
}
