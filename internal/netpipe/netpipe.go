// Package netpipe joins two byte streams in both directions with TCP's
// half-close carried across: when one side ends its output, the other
// side's output is ended too (CloseWrite) while data keeps flowing the
// other way. `hangar proxy` uses it on both ends of a forwarded
// connection (the CLI's local socket to the API, the daemon's API
// connection to the machine).
package netpipe

import (
	"io"
	"sync"
)

// Conn is one side: what it sends is read, what it receives is written.
type Conn interface {
	io.ReadWriteCloser
}

// closeWriter is a connection that can end its output alone (*net.TCPConn,
// *net.UnixConn, *tls.Conn).
type closeWriter interface{ CloseWrite() error }

// Join copies a's output to b and b's output to a until both have ended,
// passing each end on as a half-close, then closes both. A side whose
// read fails with an error (not io.EOF) ends both directions at once.
// It returns the bytes copied each way.
func Join(a, b Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = a.Close()
			_ = b.Close()
		})
	}
	one := func(dst, src Conn, n *int64) {
		defer wg.Done()
		var err error
		*n, err = io.Copy(dst, src)
		if err != nil {
			closeBoth()
			return
		}
		if cw, ok := dst.(closeWriter); ok {
			if cw.CloseWrite() == nil {
				return
			}
		}
		// No half-close on dst: end it whole.
		closeBoth()
	}
	wg.Add(2)
	go one(b, a, &aToB)
	go one(a, b, &bToA)
	wg.Wait()
	closeBoth()
	return aToB, bToA
}

// ReaderConn is c whose reads come from r first (bytes an HTTP reader
// buffered past an upgrade's answer), keeping c's CloseWrite.
type ReaderConn struct {
	io.Reader
	C Conn
}

func (r ReaderConn) Write(p []byte) (int, error) { return r.C.Write(p) }

// Close closes the connection.
func (r ReaderConn) Close() error { return r.C.Close() }

// CloseWrite ends the connection's output, or closes it when it cannot
// half-close.
func (r ReaderConn) CloseWrite() error {
	if cw, ok := r.C.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return r.C.Close()
}
