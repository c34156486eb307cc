package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// startProxyCLI runs `hangar proxy args…` and returns the local port it
// listens on (it is given port 0) and its stderr.
func startProxyCLI(t *testing.T, bin string, d *harness.Daemon, args ...string) (int, *lockedBuffer) {
	t.Helper()
	cmd := hangarCmd(t, bin, d, append([]string{"proxy"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := regexp.MustCompile(`local port (\d+) `).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("hangar proxy %s: %q %v\n%s", strings.Join(args, " "), line, err, stderr.String())
	}
	var port int
	fmt.Sscan(m[1], &port)
	return port, stderr
}

// echoThrough sends data on a new connection to 127.0.0.1:port, ends its
// output, and returns what came back before the other side's end.
func echoThrough(port int, data []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	back, err := io.ReadAll(c)
	if werr := <-errc; werr != nil {
		return back, fmt.Errorf("write: %w", werr)
	}
	return back, err
}

// TestHangarProxy forwards local ports into an app's private network with
// `hangar proxy`: 20 concurrent connections to a machine's echo service,
// each with its own 512 KiB that must come back whole and in order, the
// echo's end arriving only after the client's half-close; then the
// machine named by <id>.vm.<app>.internal; the authorization of the route
// (another app's token, another app's machine); and the errors a person
// meets (a closed port, no started machine).
func TestHangarProxy(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	c := &flyClient{t: t, base: d.API, token: d.Token}
	for _, app := range []string{"pxy", "pxyother"} {
		c.must(201, "POST", "/apps", map[string]string{"app_name": app, "org_slug": "personal"}, nil)
	}
	newMachine := func(app string) types.Machine {
		var m types.Machine
		c.must(200, "POST", "/apps/"+app+"/machines", types.CreateMachineRequest{Config: &types.MachineConfig{Image: ref,
			Env: map[string]string{"PORT": "8080", "RAW_ECHO_PORT": "7000"}}}, nil).decode(t, &m)
		c.must(200, "GET", "/apps/"+app+"/machines/"+m.ID+"/wait?state=started&timeout=30", nil, nil)
		return m
	}
	m := newMachine("pxy")
	other := newMachine("pxyother")
	// The echo listens once the app has started its listeners.
	harness.Poll(t, "the echo service listens", 15*time.Second, func() (bool, string) {
		code, body := d.Call("GET", "/v1/apps/pxy/machines/"+m.ID+"/ps", nil)
		return code == 200 && strings.Contains(body, ":7000"), body
	})

	t.Run("20 concurrent connections", func(t *testing.T) {
		port, stderr := startProxyCLI(t, bin, d, "0:7000", "-a", "pxy")
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := make([]byte, 512<<10)
				_, _ = rand.Read(data)
				back, err := echoThrough(port, data)
				if err != nil || !bytes.Equal(back, data) {
					errs <- fmt.Errorf("connection %d: %v, %d bytes back of %d (equal: %v)", i, err, len(back), len(data), bytes.Equal(back, data))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("hangar proxy's stderr:\n%s", stderr.String())
		}
	})

	t.Run("by machine name", func(t *testing.T) {
		port, _ := startProxyCLI(t, bin, d, "0:7000", m.ID+".vm.pxy.internal", "-a", "pxy")
		if back, err := echoThrough(port, []byte("hello vm\n")); err != nil || string(back) != "hello vm\n" {
			t.Fatalf("echo through %s.vm.pxy.internal: %q %v", m.ID, back, err)
		}
	})

	t.Run("authorization", func(t *testing.T) {
		var tok types.CreateTokenResponse
		c.must(201, "POST", "/tokens", map[string]string{"name": "pxy", "app": "pxy"}, nil).decode(t, &tok)
		as := hangarDocClient(t, d, tok.Token)
		// Its own app: resolves.
		var target types.ProxyTarget
		as.must(200, "GET", "/apps/pxy/proxy?port=7000", nil, nil).decode(t, &target)
		if target.MachineID != m.ID {
			t.Errorf("proxy target %+v, want machine %s", target, m.ID)
		}
		// Another app's route: 403 before anything is resolved.
		as.must(403, "GET", "/apps/pxyother/proxy?port=7000", nil, nil)
		// Another app's machine named through its own app: by id, by
		// name, by its addresses, by the other app's name.
		for _, host := range []string{other.ID, other.ID + ".vm.pxyother.internal", other.PrivateIP, "pxyother.internal", "127.0.0.1", "localhost"} {
			r := as.call("GET", "/apps/pxy/proxy?port=7000&host="+host, nil, nil)
			if r.code != 403 || !strings.Contains(string(r.body), "not a machine of app pxy") {
				t.Errorf("proxy to %q with pxy's token: %d %s, want 403", host, r.code, r.body)
			}
		}
		// The same through the upgrade, as the CLI sends it.
		cmd := hangarCmd(t, bin, d, "proxy", "0:7000", other.PrivateIP, "-a", "pxy")
		cmd.Env = append(cmd.Env, "HANGAR_API_URL="+d.API, "HANGAR_API_TOKEN="+tok.Token)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a machine of app pxy") {
			t.Errorf("hangar proxy to another app's machine: %v\n%s", err, out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		// A closed port: the CLI listens (the machine exists), and the
		// connection is closed with the reason on stderr.
		port, stderr := startProxyCLI(t, bin, d, "0:7001", "-a", "pxy")
		if back, err := echoThrough(port, []byte("x")); len(back) != 0 {
			t.Errorf("a connection to a closed port got %q %v", back, err)
		}
		harness.Poll(t, "the CLI says why", 10*time.Second, func() (bool, string) {
			s := stderr.String()
			return strings.Contains(s, "port 7001") && strings.Contains(s, "nothing listens"), s
		})
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"proxy", "70000", "-a", "pxy"}, "0 to 65535"},
			{[]string{"proxy", "0", "-a", "pxy"}, "remote port 0"},
			{[]string{"proxy", "abc", "-a", "pxy"}, "LOCAL_PORT"},
			{[]string{"proxy", "0:7000", "-a", "nosuchapp"}, "nosuchapp"},
		} {
			if out, err := hangarCmd(t, bin, d, tc.args...).CombinedOutput(); err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("hangar %s: %v, want an error naming %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
			}
		}
		// No started machine.
		hangarOK(t, d, "machine", "stop", "-a", "pxy", m.ID)
		c.must(200, "GET", "/apps/pxy/machines/"+m.ID+"/wait?state=stopped&timeout=30", nil, nil)
		out, err := hangarCmd(t, bin, d, "proxy", "0:7000", "-a", "pxy").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no started machine") || !strings.Contains(string(out), "machine start") {
			t.Errorf("hangar proxy with no started machine: %v\n%s", err, out)
		}
	})
}

// hangarDocClient is a client of the daemon whose every request and
// response is checked against the daemon's own /v1/openapi.json: the
// contract test of Hangar's extensions, which Fly's document lacks.
func hangarDocClient(t *testing.T, d *harness.Daemon, token string) *flyClient {
	t.Helper()
	code, body := d.Call("GET", "/v1/openapi.json", nil)
	if code != 200 {
		t.Fatalf("GET /v1/openapi.json: %d %s", code, body)
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: d.API + "/v1"}}
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatal(err)
	}
	return &flyClient{t: t, base: d.API, token: token, router: router}
}
