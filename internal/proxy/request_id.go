package proxy

import mrand "math/rand/v2"

const hexDigits = "0123456789abcdef"

// requestID returns a Fly-Request-Id: 20 random hex digits and the region.
// It identifies a request in logs; it is not a secret.
func requestID(region string) string {
	b := make([]byte, 20, 21+len(region))
	x, y := mrand.Uint64(), mrand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hexDigits[x&15]
		x >>= 4
	}
	for i := 16; i < 20; i++ {
		b[i] = hexDigits[y&15]
		y >>= 4
	}
	b = append(b, '-')
	b = append(b, region...)
	return string(b)
}
