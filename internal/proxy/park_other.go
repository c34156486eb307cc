//go:build !linux

package proxy

import "time"

// parker: parking needs epoll; elsewhere idle connections keep their
// goroutine.
type parker struct{}

func (p *Proxy) park(cs *connState, wait time.Duration) bool { return false }

func (p *Proxy) unparkAll() {}

func (cs *connState) reattach() bool { return true }

func (p *Proxy) parkedConns() int { return 0 }
