package main

// /log for the machine log tests: it prints numbered lines to stdout, so a
// test can fill and rotate the machine's log and check every line.

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func logHandlers(mux *http.ServeMux) {
	// /log?n=<lines>&tag=<word>&pad=<bytes> prints n lines (default 1,
	// at most 1,000,000) "<tag> <seq> <pad x's>", seq from 0 with six
	// digits, and answers how many it printed.
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, pad := 1, 0
		var err error
		if s := q.Get("n"); s != "" {
			if n, err = strconv.Atoi(s); err != nil || n < 0 || n > 1000000 {
				http.Error(w, "n must be a line count from 0 to 1000000", http.StatusBadRequest)
				return
			}
		}
		if s := q.Get("pad"); s != "" {
			if pad, err = strconv.Atoi(s); err != nil || pad < 0 || pad > 1<<20 {
				http.Error(w, "pad must be a byte count from 0 to 1048576", http.StatusBadRequest)
				return
			}
		}
		tag := q.Get("tag")
		if tag == "" {
			tag = "line"
		}
		padding := strings.Repeat("x", pad)
		out := bufio.NewWriterSize(os.Stdout, 64<<10)
		for i := 0; i < n; i++ {
			fmt.Fprintf(out, "%s %06d %s\n", tag, i, padding)
		}
		if err := out.Flush(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "printed %d lines\n", n)
	})
}
