// Package proxyproto writes (and reads) PROXY protocol headers, versions 1
// (text) and 2 (binary), as HAProxy specifies them. The edge proxy writes one
// in front of a raw TCP connection it forwards to a machine whose service
// has the `proxy_proto` handler, so the app learns the client's address. The
// reader exists for tests and for test apps; it accepts what the writer
// produces and any well-formed header from another implementation.
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Command is the v2 command: Proxy carries addresses, Local does not (a
// health check from the proxy itself).
type Command byte

const (
	Local Command = 0x0
	Proxy Command = 0x1
)

// Header is one PROXY protocol header.
type Header struct {
	Version int     // 1 or 2
	Command Command // v2 only; v1 always proxies (or says UNKNOWN)
	// Source is the client, Destination the address it connected to. Both
	// invalid (zero) means the addresses are unknown: v1 writes
	// "PROXY UNKNOWN", v2 writes family UNSPEC.
	Source, Destination netip.AddrPort
}

// v2Signature opens every v2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// ErrInvalid is wrapped by every error about a malformed header or an
// impossible one to write.
var ErrInvalid = errors.New("invalid PROXY protocol header")

// maxV1 is the longest v1 line, CRLF included.
const maxV1 = 107

// FromConn builds a header for a connection the proxy accepted: the
// client's address as source, the local address as destination.
func FromConn(version int, c net.Conn) Header {
	h := Header{Version: version, Command: Proxy}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		h.Source = a.AddrPort()
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		h.Destination = a.AddrPort()
	}
	return h
}

func (h Header) unknown() bool { return !h.Source.IsValid() || !h.Destination.IsValid() }

// addrs returns the two addresses in one family: both IPv4, or both IPv6
// (an IPv4 address beside an IPv6 one is written as IPv4-mapped IPv6).
func (h Header) addrs() (src, dst netip.Addr, v6 bool) {
	src, dst = h.Source.Addr().Unmap(), h.Destination.Addr().Unmap()
	if src.Is4() && dst.Is4() {
		return src, dst, false
	}
	if src.Is4() {
		src = netip.AddrFrom16(src.As16())
	}
	if dst.Is4() {
		dst = netip.AddrFrom16(dst.As16())
	}
	return src.WithZone(""), dst.WithZone(""), true
}

// Format returns the header's bytes.
func (h Header) Format() ([]byte, error) {
	switch h.Version {
	case 1:
		if h.unknown() {
			return []byte("PROXY UNKNOWN\r\n"), nil
		}
		src, dst, v6 := h.addrs()
		fam := "TCP4"
		if v6 {
			fam = "TCP6"
		}
		line := fmt.Sprintf("PROXY %s %s %s %d %d\r\n", fam, src, dst, h.Source.Port(), h.Destination.Port())
		return []byte(line), nil
	case 2:
		if h.Command != Local && h.Command != Proxy {
			return nil, fmt.Errorf("command %#x: %w", byte(h.Command), ErrInvalid)
		}
		var b bytes.Buffer
		b.Write(v2Signature)
		b.WriteByte(0x20 | byte(h.Command))
		if h.Command == Local || h.unknown() {
			b.Write([]byte{0x00, 0, 0}) // UNSPEC, no addresses
			return b.Bytes(), nil
		}
		src, dst, v6 := h.addrs()
		if v6 {
			b.Write([]byte{0x21, 0, 36}) // TCP over IPv6
			s, d := src.As16(), dst.As16()
			b.Write(s[:])
			b.Write(d[:])
		} else {
			b.Write([]byte{0x11, 0, 12}) // TCP over IPv4
			s, d := src.As4(), dst.As4()
			b.Write(s[:])
			b.Write(d[:])
		}
		_ = binary.Write(&b, binary.BigEndian, h.Source.Port())
		_ = binary.Write(&b, binary.BigEndian, h.Destination.Port())
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("version %d (use 1 or 2): %w", h.Version, ErrInvalid)
}

// WriteTo writes the header to w.
func (h Header) WriteTo(w io.Writer) (int64, error) {
	b, err := h.Format()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	if err != nil {
		return int64(n), fmt.Errorf("write PROXY v%d header: %w", h.Version, err)
	}
	return int64(n), nil
}

// Read reads one header (v1 or v2, told apart by the first byte) from r.
// The bytes after it stay in r.
func Read(r *bufio.Reader) (Header, error) {
	first, err := r.Peek(1)
	if err != nil {
		return Header{}, fmt.Errorf("read PROXY header: %w", err)
	}
	switch first[0] {
	case 'P':
		return readV1(r)
	case '\r':
		return readV2(r)
	}
	return Header{}, fmt.Errorf("first byte %#x is neither v1 nor v2: %w", first[0], ErrInvalid)
}

func readV1(r *bufio.Reader) (Header, error) {
	var line []byte
	for len(line) < maxV1 {
		c, err := r.ReadByte()
		if err != nil {
			return Header{}, fmt.Errorf("read PROXY v1 header: %w", err)
		}
		line = append(line, c)
		if c == '\n' {
			break
		}
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		return Header{}, fmt.Errorf("v1 header not ended by CRLF within %d bytes: %w", maxV1, ErrInvalid)
	}
	f := strings.Split(s, " ")
	if f[0] != "PROXY" || len(f) < 2 {
		return Header{}, fmt.Errorf("v1 header %q: %w", s, ErrInvalid)
	}
	h := Header{Version: 1, Command: Proxy}
	if f[1] == "UNKNOWN" {
		return h, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, fmt.Errorf("v1 header %q: want PROXY TCP4|TCP6 SRC DST SPORT DPORT: %w", s, ErrInvalid)
	}
	var addrs [2]netip.Addr
	for i, a := range f[2:4] {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" || ip.Is4() != (f[1] == "TCP4") {
			return Header{}, fmt.Errorf("v1 header address %q for %s: %w", a, f[1], ErrInvalid)
		}
		addrs[i] = ip
	}
	var ports [2]uint16
	for i, p := range f[4:6] {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return Header{}, fmt.Errorf("v1 header port %q: %w", p, ErrInvalid)
		}
		ports[i] = uint16(n)
	}
	h.Source = netip.AddrPortFrom(addrs[0], ports[0])
	h.Destination = netip.AddrPortFrom(addrs[1], ports[1])
	return h, nil
}

func readV2(r *bufio.Reader) (Header, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("read PROXY v2 header: %w", err)
	}
	if !bytes.Equal(fixed[:12], v2Signature) {
		return Header{}, fmt.Errorf("v2 signature: %w", ErrInvalid)
	}
	if fixed[12]>>4 != 2 {
		return Header{}, fmt.Errorf("v2 version nibble %d: %w", fixed[12]>>4, ErrInvalid)
	}
	cmd := Command(fixed[12] & 0xf)
	if cmd != Local && cmd != Proxy {
		return Header{}, fmt.Errorf("v2 command %#x: %w", byte(cmd), ErrInvalid)
	}
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("read PROXY v2 addresses (%d bytes): %w", n, err)
	}
	h := Header{Version: 2, Command: cmd}
	if cmd == Local {
		return h, nil
	}
	var alen int
	switch fixed[13] {
	case 0x11, 0x12: // TCP or UDP over IPv4
		alen = 4
	case 0x21, 0x22: // over IPv6
		alen = 16
	default: // UNSPEC, unix sockets: addresses unknown to us
		return h, nil
	}
	if n < 2*alen+4 {
		return Header{}, fmt.Errorf("v2 address block of %d bytes for family %#x: %w", n, fixed[13], ErrInvalid)
	}
	src, _ := netip.AddrFromSlice(body[:alen])
	dst, _ := netip.AddrFromSlice(body[alen : 2*alen])
	h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[2*alen:]))
	h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[2*alen+2:]))
	return h, nil // TLVs after the addresses are skipped
}

// Conn wraps a connection whose first bytes were a PROXY header: reads come
// from the buffered reader that parsed it, addresses from the header.
type Conn struct {
	net.Conn
	r      *bufio.Reader
	Header Header
}

// NewConn reads a PROXY header from c and returns a Conn whose RemoteAddr
// is the header's source (when it has one).
func NewConn(c net.Conn) (*Conn, error) {
	r := bufio.NewReader(c)
	h, err := Read(r)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, r: r, Header: h}, nil
}

func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// RemoteAddr is the client's address from the header.
func (c *Conn) RemoteAddr() net.Addr {
	if c.Header.Source.IsValid() {
		return net.TCPAddrFromAddrPort(c.Header.Source)
	}
	return c.Conn.RemoteAddr()
}
