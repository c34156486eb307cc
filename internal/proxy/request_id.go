package proxy

import (
	mrand "math/rand/v2"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// requestID returns a Fly-Request-Id: 20 random hex digits and the region.
// It identifies a request in logs; it is not a secret.
func requestID(region string) string {
	return string(appendRequestID(make([]byte, 0, 21+len(region)), region))
}

// appendRequestID appends a Fly-Request-Id to dst.
func appendRequestID(dst []byte, region string) []byte {
	var b [20]byte
	x, y := mrand.Uint64(), mrand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hexDigits[x&15]
		x >>= 4
	}
	for i := 16; i < 20; i++ {
		b[i] = hexDigits[y&15]
		y >>= 4
	}
	dst = append(dst, b[:]...)
	dst = append(dst, '-')
	return append(dst, region...)
}

// newRequestID makes the Fly-Request-Id of the connection's next request
// (cs.rid) in the connection's own buffer, without allocating. cs.rid is
// valid until the next call: it is written to the client and the machine
// during the request and must never be kept beyond it (copy it with
// strings.Clone to keep it).
func (cs *connState) newRequestID() {
	cs.ridBuf = appendRequestID(cs.ridBuf[:0], cs.p.region)
	cs.rid = unsafe.String(unsafe.SliceData(cs.ridBuf), len(cs.ridBuf))
}
