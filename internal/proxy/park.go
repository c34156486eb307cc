package proxy

import (
	"runtime/debug"
	"time"
)

// Parking idle keep-alive connections. A goroutine blocked reading an
// idle connection costs its stack (8 KiB at least, more if it grew while
// serving a request) on top of the connection's own few hundred bytes;
// with thousands of idle clients that is most of the proxy's memory. So a
// keep-alive connection that has waited bufferHold for its next request
// (and given its buffers back) is parked: its goroutine ends, and one
// poller (park_linux.go, an epoll instance of its own) watches every
// parked connection, gives a connection a new goroutine (connState.run)
// when it becomes readable or is closed by the client, and closes it when
// its idle timeout ends. Shutdown wakes every parked connection, which
// then ends. Where parking is not available (not Linux, a connection
// that is not a socket) the goroutine waits as before.

// parkMin is the least idle time left for which a connection is parked;
// shorter waits (tests' short idle timeouts) stay on their goroutine, so
// that the timeout is exact. The poller checks timeouts every
// parkSweep, so a parked connection is closed up to parkSweep late.
const (
	parkMin   = 2 * time.Second
	parkSweep = time.Second
)

// Outcomes for a parked connection (connState.woke).
const (
	wokeReadable = 1 + iota // data, or the client closed: serve or end it
	wokeExpired             // the idle timeout ended: close it
)

// freeAfterDrop: when the number of open client connections, or of busy
// ones (open and not parked), has fallen by this many since its peak, the
// janitor (closeIdleBackends, every 4s) has the runtime return the memory
// they used (buffers, goroutine stacks, connection state) to the
// operating system at once (a garbage collection and
// debug.FreeOSMemory): with a fast path that does not allocate per
// request, nothing else would trigger a collection for up to two
// minutes, and the memory of a burst of connections would stay resident.
const freeAfterDrop = 1000

// connPeaks are the peaks releaseMemory compares with (guarded by
// Proxy.srvMu): open connections and busy ones, raised as connections
// are accepted (count) and woken from parking (raiseBusyPeak), so that a
// burst between two of the janitor's ticks counts.
type connPeaks struct{ open, busy int }

// raiseBusyPeakLocked raises the peaks to the connections open and busy
// now (srvMu held).
func (p *Proxy) raiseBusyPeakLocked() {
	pk := &p.connPeak
	pk.open = max(pk.open, p.open)
	pk.busy = max(pk.busy, p.open-int(p.parkedN.Load()))
}

// releaseMemory is called by the janitor on each tick with the number of
// open and of busy client connections; it frees memory after a large
// drop of either, and starts both peaks again from now.
func (p *Proxy) releaseMemory(open, busy int) {
	p.srvMu.Lock()
	pk := &p.connPeak
	pk.open, pk.busy = max(pk.open, open), max(pk.busy, busy)
	drop := pk.open-open >= freeAfterDrop || pk.busy-busy >= freeAfterDrop
	if drop {
		pk.open, pk.busy = open, busy
	}
	p.srvMu.Unlock()
	if drop {
		// Two collections: buffers given back to the pools survive one
		// (the pools' victim cache).
		debug.FreeOSMemory()
		debug.FreeOSMemory()
	}
}
