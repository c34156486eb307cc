package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestFormatKnownBytes(t *testing.T) {
	t.Parallel()
	h := Header{Version: 1, Command: Proxy,
		Source:      netip.MustParseAddrPort("192.0.2.1:56324"),
		Destination: netip.MustParseAddrPort("198.51.100.7:443")}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"; got != want {
		t.Fatalf("v1 = %q, want %q", got, want)
	}
	h.Version = 2
	b, err = h.Format()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0x00, 0x0c,
		192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb)
	if !bytes.Equal(b, want) {
		t.Fatalf("v2 = % x\nwant % x", b, want)
	}
	h6 := Header{Version: 1, Source: netip.MustParseAddrPort("[2001:db8::1]:1"), Destination: netip.MustParseAddrPort("10.0.0.1:2")}
	b, _ = h6.Format()
	if got := string(b); got != "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 2\r\n" {
		t.Fatalf("mixed families v1 = %q", got)
	}
	if b, _ := (Header{Version: 1}).Format(); string(b) != "PROXY UNKNOWN\r\n" {
		t.Fatalf("unknown v1 = %q", b)
	}
	if _, err := (Header{Version: 3}).Format(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("version 3: err = %v, want ErrInvalid", err)
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"GET / HTTP/1.1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
		"PROXY " + string(bytes.Repeat([]byte("x"), 200)),
		"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c",
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd",
	} {
		if _, err := Read(bufio.NewReader(bytes.NewReader([]byte(in)))); err == nil {
			t.Errorf("Read(%q) accepted garbage", in)
		}
	}
}

// TestOverRealConn writes both versions in front of data over a real TCP
// connection and reads them back on the far side.
func TestOverRealConn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, v := range []int{1, 2} {
		got := make(chan *Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			pc, err := NewConn(c)
			if err != nil {
				t.Errorf("v%d: %v", v, err)
				c.Close()
				got <- nil
				return
			}
			got <- pc
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		h := Header{Version: v, Command: Proxy, Source: netip.MustParseAddrPort("[2001:db8::5]:4242"), Destination: netip.MustParseAddrPort("[2001:db8::6]:5432")}
		if _, err := h.WriteTo(c); err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		c.Close()
		var pc *Conn
		select {
		case pc = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no connection")
		}
		if pc == nil {
			t.FailNow()
		}
		if pc.Header != h {
			t.Errorf("v%d: header %+v, want %+v", v, pc.Header, h)
		}
		if pc.RemoteAddr().String() != "[2001:db8::5]:4242" {
			t.Errorf("v%d: RemoteAddr %s", v, pc.RemoteAddr())
		}
		rest, _ := io.ReadAll(pc)
		if string(rest) != "hello" {
			t.Errorf("v%d: payload %q, want hello", v, rest)
		}
		pc.Close()
	}
}

// normalize is what a header reads back as after a round trip.
func normalize(h Header) Header {
	if h.Version == 2 && h.Command == Local {
		return Header{Version: 2, Command: Local}
	}
	if h.unknown() {
		return Header{Version: h.Version, Command: Proxy}
	}
	src, dst, _ := h.addrs()
	return Header{Version: h.Version, Command: Proxy,
		Source: netip.AddrPortFrom(src, h.Source.Port()), Destination: netip.AddrPortFrom(dst, h.Destination.Port())}
}

// FuzzWriter feeds arbitrary addresses, ports, versions and commands to the
// writer: it must either refuse with ErrInvalid or write a header that reads
// back as the same addresses, with nothing consumed past it.
func FuzzWriter(f *testing.F) {
	f.Add(1, byte(1), []byte{1, 2, 3, 4}, uint16(1), []byte{5, 6, 7, 8}, uint16(80))
	f.Add(2, byte(1), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(65535), []byte{9, 9, 9, 9}, uint16(0))
	f.Add(2, byte(0), []byte{}, uint16(0), []byte{}, uint16(0))
	f.Add(7, byte(9), []byte{1}, uint16(3), []byte{2}, uint16(4))
	f.Fuzz(func(t *testing.T, version int, cmd byte, src []byte, sport uint16, dst []byte, dport uint16) {
		var h Header
		h.Version, h.Command = version, Command(cmd)
		if a, ok := netip.AddrFromSlice(src); ok {
			h.Source = netip.AddrPortFrom(a, sport)
		}
		if a, ok := netip.AddrFromSlice(dst); ok {
			h.Destination = netip.AddrPortFrom(a, dport)
		}
		b, err := h.Format()
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if version == 1 && len(b) > maxV1 {
			t.Fatalf("v1 header of %d bytes", len(b))
		}
		r := bufio.NewReader(bytes.NewReader(append(b, "tail"...)))
		got, err := Read(r)
		if err != nil {
			t.Fatalf("Read(Format(%+v)) = %v (bytes %q)", h, err, b)
		}
		if want := normalize(h); got != want {
			t.Fatalf("round trip %+v -> %+v, want %+v", h, got, want)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "tail" {
			t.Fatalf("reader consumed past the header: rest %q", rest)
		}
	})
}

// FuzzRead: arbitrary bytes never crash the reader; what it accepts it can
// write again and read back identically.
func FuzzRead(f *testing.F) {
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x21, 0, 36))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := Read(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		b, err := h.Format()
		if err != nil {
			t.Fatalf("accepted header %+v cannot be written: %v", h, err)
		}
		h2, err := Read(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || h2 != normalize(h) {
			t.Fatalf("re-read %+v = %+v, %v", h, h2, err)
		}
	})
}
