package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// This file parses HTTP/1.1 message heads and chunked bodies for the fast
// path (fast.go). Everything here reads client (or app) input, so each
// parser is fuzzed.

// errHeadTooLarge: the head is over the size limit (431 for requests).
var errHeadTooLarge = errors.New("message head too large")

// badRequest is a malformed request: the client gets 400 (or Code) and the
// connection is closed; the app never sees it.
type badRequest struct {
	Code int
	Msg  string
}

func (e *badRequest) Error() string { return e.Msg }

func bad(format string, args ...any) error {
	return &badRequest{Code: 400, Msg: fmt.Sprintf(format, args...)}
}

// readHead reads a message head (start line, headers, empty line) into
// buf[:0] and returns it. Leading empty lines are skipped (RFC 9112 2.2).
func readHead(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	return readHeadCheck(br, buf, max, nil)
}

// readRequestHead is readHead for a request: it fails at once when the
// request line has no HTTP/1.x version (HTTP/0.9, or not HTTP at all),
// rather than wait for headers that will never come.
func readRequestHead(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	return readHeadCheck(br, buf, max, checkRequestLine)
}

// checkRequestLine rejects a request line (with its line end) that does
// not end in an HTTP/1.x version.
func checkRequestLine(line []byte) error {
	line = bytes.TrimRight(line, "\r\n")
	sp := bytes.LastIndexByte(line, ' ')
	if sp < 0 || bytes.IndexByte(line, ' ') == sp || !bytes.HasPrefix(line[sp+1:], []byte("HTTP/")) {
		return bad("request line without an HTTP version (HTTP/0.9 is not served); use HTTP/1.1")
	}
	return nil
}

// readHeadCheck is readHead; first, if set, checks the start line as
// soon as it is complete.
func readHeadCheck(br *bufio.Reader, buf []byte, max int, first func([]byte) error) ([]byte, error) {
	buf = buf[:0]
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max {
			return buf, errHeadTooLarge
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		line := buf[lineStart:]
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			if lineStart == 0 {
				// Empty line before the start line: skip it.
				buf = buf[:0]
				continue
			}
			return buf, nil
		}
		if lineStart == 0 && first != nil {
			if err := first(line); err != nil {
				return buf, err
			}
		}
		lineStart = len(buf)
	}
}

type header struct {
	name, value []byte
}

// reqHead is a parsed request head; its slices point into raw.
type reqHead struct {
	raw           []byte
	method        []byte
	target        []byte
	minor         int // HTTP/1.minor
	headers       []header
	host          []byte
	contentLength int64 // -1: none
	chunked       bool
	close         bool // Connection: close
	upgrade       bool // an Upgrade header or Connection: upgrade
	expect        bool // an Expect header
	connTokens    [][]byte
}

// parseRequestHead parses a request head read by readHead.
func parseRequestHead(raw []byte, h *reqHead) error {
	*h = reqHead{raw: raw, headers: h.headers[:0], connTokens: h.connTokens[:0], contentLength: -1}
	line, rest := cutLine(raw)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return bad("malformed request line")
	}
	h.method = line[:sp1]
	for _, c := range h.method {
		if !isTchar(c) {
			return bad("malformed request method")
		}
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return bad("malformed request line")
	}
	h.target = line[sp1+1 : sp1+1+sp2]
	for _, c := range h.target {
		if c <= ' ' || c == 0x7f {
			return bad("malformed request target")
		}
	}
	proto := line[sp1+1+sp2+1:]
	switch string(proto) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		return &badRequest{Code: 505, Msg: "unsupported HTTP version; use HTTP/1.1"}
	}
	hosts := 0
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return bad("obsolete header line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return bad("malformed header line")
		}
		name := line[:colon]
		for _, c := range name {
			if !isTchar(c) {
				return bad("malformed header name %q", truncate(string(name), 40))
			}
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return bad("invalid character in header %s", name)
			}
		}
		h.headers = append(h.headers, header{name, value})
		switch {
		case eqFold(name, "host"):
			hosts++
			h.host = value
		case eqFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok {
				return bad("malformed Content-Length")
			}
			if h.contentLength >= 0 && h.contentLength != n {
				return bad("conflicting Content-Length headers")
			}
			h.contentLength = n
		case eqFold(name, "transfer-encoding"):
			if h.chunked || !eqFold(value, "chunked") {
				return &badRequest{Code: 501, Msg: "unsupported Transfer-Encoding; only chunked is accepted"}
			}
			h.chunked = true
		case eqFold(name, "connection"):
			var closeTok, upgradeTok bool
			closeTok, upgradeTok, h.connTokens = connectionOptions(value, h.connTokens)
			h.close = h.close || closeTok
			h.upgrade = h.upgrade || upgradeTok
		case eqFold(name, "upgrade"):
			h.upgrade = true
		case eqFold(name, "expect"):
			h.expect = true
		}
	}
	if h.chunked && h.contentLength >= 0 {
		return bad("both Content-Length and Transfer-Encoding")
	}
	if hosts > 1 {
		return bad("more than one Host header")
	}
	if hosts == 0 && h.minor == 1 {
		return bad("missing Host header")
	}
	return nil
}

// respHead is a parsed response head from an app.
type respHead struct {
	raw           []byte
	status        int
	reason        []byte
	minor         int
	headers       []header
	contentLength int64
	chunked       bool
	close         bool
	connTokens    [][]byte
}

// parseResponseHead parses a response head read by readHead.
func parseResponseHead(raw []byte, h *respHead) error {
	*h = respHead{raw: raw, headers: h.headers[:0], connTokens: h.connTokens[:0], contentLength: -1}
	line, rest := cutLine(raw)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return fmt.Errorf("malformed status line %q", truncate(string(line), 40))
	}
	h.minor = int(line[7] - '0')
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || code > 999 || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("malformed status line %q", truncate(string(line), 40))
	}
	h.status = code
	if len(line) > 13 {
		h.reason = line[13:]
	}
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("malformed response header line")
		}
		name := line[:colon]
		for _, c := range name {
			if !isTchar(c) {
				return fmt.Errorf("malformed response header name")
			}
		}
		value := trimOWS(line[colon+1:])
		h.headers = append(h.headers, header{name, value})
		switch {
		case eqFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || (h.contentLength >= 0 && h.contentLength != n) {
				return fmt.Errorf("malformed Content-Length in response")
			}
			h.contentLength = n
		case eqFold(name, "transfer-encoding"):
			// Only chunked is understood; anything else is read to EOF.
			if eqFold(value, "chunked") {
				h.chunked = true
			} else {
				h.close = true
			}
		case eqFold(name, "connection"):
			var closeTok, upgradeTok bool
			closeTok, upgradeTok, h.connTokens = connectionOptions(value, h.connTokens)
			h.close = h.close || closeTok
			if upgradeTok {
				// A response's Connection: upgrade names a hop-by-hop
				// header like any other.
				h.connTokens = append(h.connTokens, upgradeToken)
			}
		}
	}
	if h.chunked {
		h.contentLength = -1 // chunked wins (RFC 9112 6.3)
	}
	if h.minor == 0 {
		h.close = true // no keep-alive negotiation with HTTP/1.0 apps
	}
	return nil
}

// copyChunked copies one chunked body from src to dst, re-framing each
// chunk canonically (extensions dropped) and passing trailers through. It
// stops after the last chunk. limit bounds the body's data bytes (0: no
// limit). With eager, dst is flushed whenever src has nothing buffered,
// so streamed responses reach the client as they are produced.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, limit int64, eager bool, buf []byte) (int64, error) {
	var total int64
	var line [80]byte
	for {
		if eager && src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return total, err
			}
		}
		l, err := readLine(src, line[:0], 4096)
		if err != nil {
			return total, err
		}
		if i := bytes.IndexByte(l, ';'); i >= 0 {
			l = l[:i]
		}
		l = trimOWS(l)
		size, ok := parseHex(l)
		if !ok {
			return total, bad("malformed chunk size")
		}
		if limit > 0 && total+size > limit {
			return total, errBodyTooLarge
		}
		if size == 0 {
			if _, err := dst.WriteString("0\r\n"); err != nil {
				return total, err
			}
			// Trailers, then the empty line.
			for n := 0; ; n++ {
				t, err := readLine(src, nil, 8192)
				if err != nil {
					return total, err
				}
				if len(t) == 0 {
					_, err = dst.WriteString("\r\n")
					return total, err
				}
				if n > 100 || bytes.IndexByte(t, ':') <= 0 || t[0] == ' ' || t[0] == '\t' {
					return total, bad("malformed chunked trailer")
				}
				dst.Write(t)
				dst.WriteString("\r\n")
			}
		}
		dst.Write(strconv.AppendInt(line[:0], size, 16))
		dst.WriteString("\r\n")
		if err := copyN(dst, src, size, eager, buf); err != nil {
			return total, err
		}
		total += size
		crlf, err := readLine(src, line[:0], 2)
		if err != nil {
			return total, err
		}
		if len(crlf) != 0 {
			return total, bad("malformed chunk: data longer than its size")
		}
		dst.WriteString("\r\n")
	}
}

var errBodyTooLarge = errors.New("body too large")

// readLine reads one line (without its CRLF or LF) of at most max bytes.
func readLine(br *bufio.Reader, dst []byte, max int) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		if len(dst)+len(frag) > max+2 {
			return nil, bad("line too long")
		}
		dst = append(dst, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		dst = dst[:len(dst)-1]
		if len(dst) > 0 && dst[len(dst)-1] == '\r' {
			dst = dst[:len(dst)-1]
		}
		return dst, nil
	}
}

// copyN copies n bytes (n < 0: until EOF) from src to dst; with eager, dst
// is flushed whenever src has nothing buffered. What src has buffered is
// written from its own buffer; buf (which may be empty) is used for
// reading the rest, so that a body that arrived with its head needs no
// buffer of its own.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64, eager bool, buf []byte) error {
	for n != 0 {
		if k := src.Buffered(); k > 0 {
			if n > 0 && int64(k) > n {
				k = int(n)
			}
			b, _ := src.Peek(k)
			if _, werr := dst.Write(b); werr != nil {
				return werr
			}
			_, _ = src.Discard(k)
			if n > 0 {
				n -= int64(k)
			}
			continue
		}
		if eager {
			if err := dst.Flush(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			// No buffer: fill src's.
			if _, err := src.Peek(1); err != nil {
				if err == io.EOF {
					if n < 0 {
						return nil
					}
					return io.ErrUnexpectedEOF
				}
				return err
			}
			continue
		}
		want := len(buf)
		if n > 0 && int64(want) > n {
			want = int(n)
		}
		k, err := src.Read(buf[:want])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			if n > 0 {
				n -= int64(k)
			}
		}
		if err != nil {
			if err == io.EOF {
				if n < 0 {
					return nil
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// upgradeToken is the Connection option naming the Upgrade header.
var upgradeToken = []byte("upgrade")

// connectionOptions reads a Connection header's value: whether it says
// close or upgrade, and its other options (names of hop-by-hop headers),
// appended to tokens. keep-alive, empty options and options naming
// end-to-end headers (see nominable) are dropped.
func connectionOptions(value []byte, tokens [][]byte) (closeTok, upgradeTok bool, _ [][]byte) {
	for len(value) > 0 {
		tok := value
		if i := bytes.IndexByte(value, ','); i >= 0 {
			tok, value = value[:i], value[i+1:]
		} else {
			value = nil
		}
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0, eqFold(tok, "keep-alive"):
		case eqFold(tok, "close"):
			closeTok = true
		case eqFold(tok, "upgrade"):
			upgradeTok = true
		case nominable(tok):
			tokens = append(tokens, tok)
		}
	}
	return closeTok, upgradeTok, tokens
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the lower-case ASCII string s, ignoring
// case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
