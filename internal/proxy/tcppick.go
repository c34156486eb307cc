package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// The load balancer as the raw TCP services' Picker.

// Pick implements tcpproxy.Picker: a machine of app for a raw TCP
// connection to internalPort, with the limits, health and autostart of
// HTTP requests; release ends the connection's count.
func (p *Proxy) Pick(ctx context.Context, name string, internalPort int) (string, func(), error) {
	return p.PickService(ctx, name, "", internalPort)
}

// PickService implements tcpproxy.ServicePicker: Pick among the machines
// where the service named by its RouteKey is up (its checks pass).
func (p *Proxy) PickService(ctx context.Context, name, service string, internalPort int) (string, func(), error) {
	a, m, code, msg := p.acquire(ctx, name, routing{service: service})
	if m == nil {
		if code == 0 {
			return "", nil, ctx.Err()
		}
		return "", nil, errors.New(msg)
	}
	p.mu.Lock()
	host, _, err := net.SplitHostPort(m.b.Addr)
	p.mu.Unlock()
	if err != nil {
		p.release(a, m)
		return "", nil, fmt.Errorf("machine %s of app %s: address: %w", m.b.MachineID, name, err)
	}
	var once sync.Once
	return net.JoinHostPort(host, strconv.Itoa(internalPort)), func() { once.Do(func() { p.release(a, m) }) }, nil
}
