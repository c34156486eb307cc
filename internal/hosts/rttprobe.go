package hosts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

// RTTPort is the UDP port of every host's RTT echo, on the host's own
// address of its 6PN /64 (its bridge's ::1): probes between hosts go over
// the mesh, the path machines' traffic takes.
const RTTPort = 4282

// The probe's wire format, one UDP datagram each way:
//
//	hangar-rtt1 ping <seq> <host>   (<host>: the sender)
//	hangar-rtt1 pong <seq> <host>   (<host>: the host that answers)
//
// The answer names its host, so a prober learns who is at an address
// from the echo itself.
const probeMagic = "hangar-rtt1"

func formatProbe(pong bool, seq uint64, host string) []byte {
	kind := "ping"
	if pong {
		kind = "pong"
	}
	return []byte(probeMagic + " " + kind + " " + strconv.FormatUint(seq, 10) + " " + host)
}

// parseProbe reads a probe datagram.
func parseProbe(b []byte) (pong bool, seq uint64, host string, err error) {
	if len(b) > 128 {
		return false, 0, "", errors.New("rtt probe: too long")
	}
	f := strings.Split(string(b), " ")
	if len(f) != 4 || f[0] != probeMagic {
		return false, 0, "", errors.New("rtt probe: not a probe")
	}
	switch f[1] {
	case "ping":
	case "pong":
		pong = true
	default:
		return false, 0, "", fmt.Errorf("rtt probe: kind %q", f[1])
	}
	if seq, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return false, 0, "", fmt.Errorf("rtt probe: sequence %q", f[2])
	}
	if !idRE.MatchString(f[3]) {
		return false, 0, "", fmt.Errorf("rtt probe: host %q", f[3])
	}
	return pong, seq, f[3], nil
}

// Prober measures this host's RTT to the other hosts and publishes it
// (PublishRTT), smoothed; it also answers the other hosts' probes on the
// same socket. Serve reads the socket; Round is one measurement of every
// target (Run repeats it), so a test can step it.
type Prober struct {
	// Self is this host's id.
	Self string
	// Conn is the socket, bound to this host's mesh address and RTTPort.
	Conn net.PacketConn
	// Targets returns the other hosts' echo addresses.
	Targets func(ctx context.Context) ([]netip.AddrPort, error)
	Store   store.Store
	// Timeout is how long a round waits for answers (default 1s).
	Timeout time.Duration
	Log     *slog.Logger

	mu       sync.Mutex // guards seq, pending, answered and wake (Serve and Round share them)
	seq      uint64
	pending  map[uint64]probeSent
	answered map[uint64]probeAnswer
	wake     chan struct{} // signalled when pending becomes empty
	// The rest is Round's own (rounds never overlap: one caller).
	smoothed map[string]time.Duration
	lastPub  map[string]published
	hostAt   map[netip.AddrPort]string
	misses   map[netip.AddrPort]int
}

type probeSent struct {
	to   netip.AddrPort
	sent time.Time
}

type probeAnswer struct {
	host string
	rtt  time.Duration
}

type published struct {
	rtt time.Duration
	at  time.Time
}

// Smoothing: a new sample weighs rttAlpha in the published value; a
// target that misses rttMaxMisses rounds in a row has no RTT any more.
const (
	rttAlpha     = 0.3
	rttMaxMisses = 3
)

func (p *Prober) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *Prober) initLocked() {
	if p.pending == nil {
		p.pending = map[uint64]probeSent{}
		p.answered = map[uint64]probeAnswer{}
		p.wake = make(chan struct{}, 1)
		p.smoothed = map[string]time.Duration{}
		p.lastPub = map[string]published{}
		p.hostAt = map[netip.AddrPort]string{}
		p.misses = map[netip.AddrPort]int{}
	}
}

// Serve reads the socket until it is closed: it answers pings and
// completes this host's probes with their pongs.
func (p *Prober) Serve() {
	buf := make([]byte, 256)
	for {
		n, from, err := p.Conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := time.Now()
		pong, seq, host, err := parseProbe(buf[:n])
		if err != nil {
			continue
		}
		if !pong {
			_, _ = p.Conn.WriteTo(formatProbe(true, seq, p.Self), from)
			continue
		}
		p.mu.Lock()
		p.initLocked()
		if s, ok := p.pending[seq]; ok {
			delete(p.pending, seq)
			p.answered[seq] = probeAnswer{host: host, rtt: now.Sub(s.sent)}
			if len(p.pending) == 0 {
				select {
				case p.wake <- struct{}{}:
				default:
				}
			}
		}
		p.mu.Unlock()
	}
}

// Round probes every target once, waits for the answers (Timeout at
// most), and publishes the smoothed RTT of each host that answered. A
// target that did not answer rttMaxMisses rounds in a row, or is no
// longer a target, has its RTT deleted.
func (p *Prober) Round(ctx context.Context) error {
	targets, err := p.Targets(ctx)
	if err != nil {
		return fmt.Errorf("rtt: the hosts to measure: %w", err)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	p.mu.Lock()
	p.initLocked()
	clear(p.pending)
	clear(p.answered)
	select { // a stale wake-up from the last round
	case <-p.wake:
	default:
	}
	sent := map[uint64]netip.AddrPort{}
	for _, t := range targets {
		p.seq++
		p.pending[p.seq] = probeSent{to: t, sent: time.Now()}
		sent[p.seq] = t
		if _, err := p.Conn.WriteTo(formatProbe(false, p.seq, p.Self), net.UDPAddrFromAddrPort(t)); err != nil {
			delete(p.pending, p.seq)
		}
	}
	waitAll := len(p.pending) > 0
	p.mu.Unlock()
	if waitAll {
		select {
		case <-p.wake:
		case <-time.After(timeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	answered := map[netip.AddrPort]probeAnswer{}
	for seq, a := range p.answered {
		answered[sent[seq]] = a
	}
	clear(p.pending)
	p.mu.Unlock()

	now := time.Now()
	isTarget := map[netip.AddrPort]bool{}
	var firstErr error
	for _, t := range targets {
		isTarget[t] = true
		a, ok := answered[t]
		if !ok {
			p.misses[t]++
			if host := p.hostAt[t]; host != "" && p.misses[t] >= rttMaxMisses {
				p.forget(ctx, t, host)
			}
			continue
		}
		p.misses[t] = 0
		if old := p.hostAt[t]; old != "" && old != a.host {
			p.forget(ctx, t, old) // another host took the address
		}
		p.hostAt[t] = a.host
		s, seen := p.smoothed[a.host]
		if !seen {
			s = a.rtt
		} else {
			s = time.Duration(rttAlpha*float64(a.rtt) + (1-rttAlpha)*float64(s))
		}
		p.smoothed[a.host] = s
		last, was := p.lastPub[a.host]
		if was && now.Sub(last.at) < RTTStale/3 && !changed(last.rtt, s) {
			continue
		}
		if err := PublishRTT(ctx, p.Store, p.Self, a.host, s, now); err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		p.lastPub[a.host] = published{rtt: s, at: now}
	}
	for t, host := range p.hostAt {
		if !isTarget[t] {
			p.forget(ctx, t, host)
		}
	}
	return firstErr
}

// forget drops what is known of the host at t, and its published RTT.
func (p *Prober) forget(ctx context.Context, t netip.AddrPort, host string) {
	delete(p.hostAt, t)
	delete(p.misses, t)
	delete(p.smoothed, host)
	delete(p.lastPub, host)
	if err := DeleteRTT(ctx, p.Store, p.Self, host); err != nil {
		p.log().Warn("rtt: delete a host's RTT", "host", host, "err", err)
	}
}

// changed reports whether the smoothed RTT moved enough to publish again
// (by a tenth, and by more than 200µs: below that it is scheduling noise).
func changed(old, cur time.Duration) bool {
	d := cur - old
	if d < 0 {
		d = -d
	}
	return d > old/10 && d > 200*time.Microsecond
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// Run measures every interval until ctx ends.
func (p *Prober) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastErr string
	for {
		if err := p.Round(ctx); err != nil && ctx.Err() == nil && err.Error() != lastErr {
			p.log().Warn("rtt: measuring the other hosts", "err", err)
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
