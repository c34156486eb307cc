//go:build race

package proxy

// raceEnabled: under the race detector sync.Pool drops some of what is
// put in it, so code that pools buffers (crypto/tls's records) allocates.
const raceEnabled = true
