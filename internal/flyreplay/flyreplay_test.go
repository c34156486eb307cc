package flyreplay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want Directive
	}{
		{"region=sjc", Directive{Regions: []string{"sjc"}}},
		{`region="iad,ord, any"`, Directive{Regions: []string{"iad", "ord", "any"}}},
		{"instance=00bb33ff;state=hello", Directive{Instance: "00bb33ff", State: "hello"}},
		{"prefer_instance=abc ; elsewhere=true", Directive{PreferInstance: "abc", Elsewhere: true}},
		{`app=my-worker;timeout=10s;fallback=force_self;state="a;b \"c\""`, Directive{App: "my-worker", Timeout: 10 * time.Second, Fallback: "force_self", State: `a;b "c"`}},
		{"Elsewhere=TRUE;future=thing", Directive{Elsewhere: true}},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "state=x", "region=", "instance=a b", "elsewhere=maybe", "timeout=-1s",
		"fallback=other;region=x", `state="open`, "region=sjc;region=ord", "=x", `state="a"b;region=x`, "instance=\x01"} {
		if d, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrInvalid", bad, d, err)
		}
	}
}

func TestSrcRoundTrip(t *testing.T) {
	t.Parallel()
	s := Src{Instance: "m1", Region: "ams", Time: time.UnixMicro(1667423135409640), State: "x;y"}
	got, err := ParseSrc(s.String())
	if err != nil || !got.Time.Equal(s.Time) || got.Instance != "m1" || got.Region != "ams" || got.State != "x;y" {
		t.Fatalf("ParseSrc(%q) = %+v, %v", s.String(), got, err)
	}
}

// FuzzParse: the parser never panics, errors wrap ErrInvalid, and whatever
// it accepts is written back by String into a header that parses the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"region=sjc", `region="iad,ord,any";app=x`, "instance=00bb33ff;state=\"a\\\"b\"", "elsewhere=true;timeout=800ms;fallback=prefer_self", "prefer_instance=a;;;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		d2, err := Parse(d.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok but its String %q fails: %v", in, d.String(), err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip of %q: %+v then %+v", in, d, d2)
		}
		if _, err := ParseSrc(Src{Instance: "i", Region: "r", State: d.State}.String()); err != nil {
			t.Fatalf("fly-replay-src with state %q does not parse: %v", d.State, err)
		}
	})
}

// fleet is a set of real HTTP machines and the Target the proxy would be.
type fleet struct {
	urls  map[string]string // machine ID -> base URL
	ms    map[string]Machine
	sends atomic.Int32
}

func (f *fleet) Pick(ctx context.Context, d Directive, from Machine, exclude []Machine) (Machine, error) {
	app := d.App
	if app == "" {
		app = from.App
	}
	if d.Instance != "" {
		m, ok := f.ms[d.Instance]
		if !ok || m.App != app || slices.Contains(exclude, m) {
			return Machine{}, fmt.Errorf("instance %s: %w", d.Instance, ErrNoTarget)
		}
		return m, nil
	}
	for _, r := range d.Regions {
		for _, id := range slices.Sorted(mapsKeys(f.ms)) {
			m := f.ms[id]
			if m.App == app && (m.Region == r || r == "any") && !slices.Contains(exclude, m) {
				return m, nil
			}
		}
	}
	return Machine{}, ErrNoTarget
}

func mapsKeys(m map[string]Machine) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (f *fleet) Send(ctx context.Context, m Machine, req *http.Request) (*http.Response, error) {
	f.sends.Add(1)
	u, _ := url.Parse(f.urls[m.ID])
	req.URL.Scheme, req.URL.Host = u.Scheme, u.Host
	req.RequestURI = ""
	return http.DefaultTransport.RoundTrip(req)
}

type fromKey struct{}

// frontend is a reverse proxy in front of machine "first", configured the
// way the edge proxy wires Transport.
func frontend(t *testing.T, f *fleet, first string, maxBody int64) *httptest.Server {
	t.Helper()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u, _ := url.Parse(f.urls[first])
			pr.SetURL(u)
		},
		Transport: &Transport{
			Base:     http.DefaultTransport,
			Replayer: &Replayer{Target: f},
			From:     func(*http.Request) Machine { return f.ms[first] },
			MaxBody:  maxBody,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), StatusOf(err))
		},
	}
	s := httptest.NewServer(rp)
	t.Cleanup(s.Close)
	return s
}

func newFleet(t *testing.T, handlers map[Machine]http.HandlerFunc) *fleet {
	f := &fleet{urls: map[string]string{}, ms: map[string]Machine{}}
	for m, h := range handlers {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		f.urls[m.ID], f.ms[m.ID] = s.URL, m
	}
	return f
}

func TestReplayToAnotherMachineKeepsBody(t *testing.T) {
	t.Parallel()
	a := Machine{App: "web", ID: "m-ams", Region: "ams"}
	b := Machine{App: "web", ID: "m-sjc", Region: "sjc"}
	f := newFleet(t, map[Machine]http.HandlerFunc{
		a: func(w http.ResponseWriter, r *http.Request) {
			// Read only a little of the body, as an app deciding early would.
			io.ReadFull(r.Body, make([]byte, 100))
			w.Header().Set("fly-replay", `region=sjc;state="why;not"`)
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "this body is discarded")
		},
		b: func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			sum := sha256.Sum256(body)
			w.Header().Set("X-Src", r.Header.Get("fly-replay-src"))
			w.Header().Set("X-Method", r.Method+" "+r.URL.RequestURI())
			w.Header().Set("X-Custom", r.Header.Get("X-Custom"))
			fmt.Fprintf(w, "%d %s", len(body), hex.EncodeToString(sum[:]))
		},
	})
	front := frontend(t, f, a.ID, 0)
	body := make([]byte, 300<<10)
	rand.Read(body)
	req, _ := http.NewRequest("POST", front.URL+"/write?x=1", bytes.NewReader(body))
	req.Header.Set("X-Custom", "kept")
	before := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	sum := sha256.Sum256(body)
	if want := fmt.Sprintf("%d %s", len(body), hex.EncodeToString(sum[:])); resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("status %d body %q, want 200 %q", resp.StatusCode, got, want)
	}
	if m := resp.Header.Get("X-Method"); m != "POST /write?x=1" {
		t.Errorf("replayed as %q", m)
	}
	if c := resp.Header.Get("X-Custom"); c != "kept" {
		t.Errorf("request header lost: %q", c)
	}
	src, err := ParseSrc(resp.Header.Get("X-Src"))
	if err != nil {
		t.Fatal(err)
	}
	if src.Instance != a.ID || src.Region != "ams" || src.State != "why;not" || src.Time.Before(before.Add(-time.Second)) || src.Time.After(time.Now()) {
		t.Errorf("fly-replay-src = %+v (raw %q)", src, resp.Header.Get("X-Src"))
	}
}

func TestReplayTooLarge(t *testing.T) {
	t.Parallel()
	a := Machine{App: "web", ID: "a", Region: "ams"}
	b := Machine{App: "web", ID: "b", Region: "sjc"}
	f := newFleet(t, map[Machine]http.HandlerFunc{
		a: func(w http.ResponseWriter, r *http.Request) { w.Header().Set("fly-replay", "instance=b") },
		b: func(w http.ResponseWriter, r *http.Request) {
			if n, _ := io.Copy(io.Discard, r.Body); n > 1024 {
				t.Errorf("a request of %d bytes was replayed", n)
			}
		},
	})
	front := frontend(t, f, a.ID, 1024)
	resp, err := http.Post(front.URL, "application/octet-stream", bytes.NewReader(make([]byte, 1025)))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "too large to replay") {
		t.Fatalf("status %d %q, want 413 saying too large to replay", resp.StatusCode, msg)
	}
	// Exactly at the limit it replays.
	resp, err = http.Post(front.URL, "application/octet-stream", bytes.NewReader(make([]byte, 1024)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("1024-byte body: status %d, want 200", resp.StatusCode)
	}
}

func TestReplayHopLimitAndElsewhere(t *testing.T) {
	t.Parallel()
	a := Machine{App: "web", ID: "a", Region: "ams"}
	b := Machine{App: "web", ID: "b", Region: "ams"}
	var hitsA atomic.Int32
	f := newFleet(t, map[Machine]http.HandlerFunc{
		a: func(w http.ResponseWriter, r *http.Request) {
			hitsA.Add(1)
			if r.URL.Path == "/loop" {
				w.Header().Set("fly-replay", "instance=a")
				return
			}
			w.Header().Set("fly-replay", "region=ams;elsewhere=true")
		},
		b: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") },
	})
	front := frontend(t, f, a.ID, 0)
	resp, err := http.Get(front.URL + "/loop")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusLoopDetected {
		t.Fatalf("loop: status %d, want 508", resp.StatusCode)
	}
	if n := hitsA.Load(); n != 1+DefaultMaxHops {
		t.Fatalf("loop: machine saw %d requests, want %d (first + %d replays)", n, 1+DefaultMaxHops, DefaultMaxHops)
	}
	resp, err = http.Get(front.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "b" {
		t.Fatalf("elsewhere=true: body %q, want the other machine's", got)
	}
}

func TestReplayNoTargetAndFallback(t *testing.T) {
	t.Parallel()
	a := Machine{App: "web", ID: "a", Region: "ams"}
	f := newFleet(t, map[Machine]http.HandlerFunc{
		a: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("fly-replay-src") != "" {
				io.WriteString(w, "fallback served")
				return
			}
			w.Header().Set("fly-replay", "instance=gone;"+r.URL.Query().Get("extra"))
		},
	})
	front := frontend(t, f, a.ID, 0)
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no target: status %d, want 503", resp.StatusCode)
	}
	resp, err = http.Get(front.URL + "/?extra=fallback=force_self")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "fallback served" {
		t.Fatalf("fallback: %d %q", resp.StatusCode, got)
	}
}
