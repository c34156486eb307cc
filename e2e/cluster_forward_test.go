package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestClusterForwardMTLS: in a cluster made with --cluster-init and
// --join, hosts reach each other's API on their cluster listeners with
// mutual TLS: host a's API places a machine for iad on host b and stops
// it there, with the image only a had (b fetches it from a's cluster
// listener, keeping its digest); b's cluster listener refuses a caller
// without a host certificate of the cluster, for the API and for images.
func TestClusterForwardMTLS(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	hostFlags := func(name string) []string { return loopbackHostFlags(t, name) }
	aFlags := hostFlags("a")
	a := harness.StartDaemonWith(t, bin, append([]string{"--cluster-init", "--region", "fra"}, aFlags...)...)
	joinURL := "https://" + aFlags[5]
	out, err := a.Hangar("cluster", "join-token")
	if err != nil {
		t.Fatalf("cluster join-token: %v\n%s", err, out)
	}
	token := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "hj1_") {
			token = strings.TrimSpace(line)
		}
	}
	b := harness.StartDaemonWith(t, bin, append([]string{"--join", joinURL, "--join-token", token, "--region", "iad"}, hostFlags("b")...)...)
	// Two voters: each needs the other for quorum, so the app goes while
	// both run, then both stop.
	t.Cleanup(func() {
		if code, body := a.Call("DELETE", "/v1/apps/fwd", nil); code != http.StatusAccepted && code != http.StatusNotFound {
			t.Errorf("cleanup: delete app: %d %s", code, body)
		}
		var wg sync.WaitGroup
		for _, d := range []*harness.Daemon{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); d.Stop(syscall.SIGTERM) }()
		}
		wg.Wait()
	})
	ref := a.ImportTestApp() // only on a: b fetches it when it needs it
	var aImgs []types.Image
	if err := a.Get("/v1/images", &aImgs); err != nil {
		t.Fatal(err)
	}
	digest := ""
	for _, im := range aImgs {
		if im.Ref == ref {
			digest = im.Digest
		}
	}

	var hs []types.Host
	if err := a.Get("/v1/hosts", &hs); err != nil {
		t.Fatal(err)
	}
	var bURL string
	for _, h := range hs {
		if !strings.HasPrefix(h.APIURL, "https://") || h.State != types.HostReady {
			t.Errorf("host %+v: want ready, its API on its cluster listener (https)", h)
		}
		if h.ID == "b" {
			bURL = h.APIURL
		}
	}
	if len(hs) != 2 || bURL == "" {
		t.Fatalf("hosts: %+v; want a and b (ids from their member names)", hs)
	}

	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "fwd", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}}
	code, body := a.Call("POST", "/v1/apps/fwd/machines", types.CreateMachineRequest{Region: "iad", Config: cfg})
	var m types.Machine
	if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || m.HostID != "b" || m.State != types.StateStarted {
		t.Fatalf("create in iad through a: %d %s; want started on b", code, body)
	}
	var bImgs []types.Image
	if err := b.Get("/v1/images", &bImgs); err != nil {
		t.Fatal(err)
	}
	fetched := false
	for _, im := range bImgs {
		fetched = fetched || (im.Ref == ref && im.Digest == digest && digest != "")
	}
	if !fetched {
		t.Fatalf("b's images %+v: want %s with a's digest %s, fetched for the machine", bImgs, ref, digest)
	}
	if m.ImageRef.Digest != "" && m.ImageRef.Digest != digest {
		t.Fatalf("machine on b runs %s, want a's %s", m.ImageRef.Digest, digest)
	}
	if code, body := a.Call("POST", "/v1/apps/fwd/machines/"+m.ID+"/stop", nil); code != http.StatusOK {
		t.Fatalf("stop b's machine through a: %d %s", code, body)
	}
	if code, body := a.Call("GET", "/v1/apps/fwd/machines/"+m.ID+"/wait?state=stopped&timeout=30", nil); code != http.StatusOK {
		t.Fatalf("wait through a: %d %s", code, body)
	}

	// Without a host certificate, b's cluster listener answers nothing of
	// the API, even with a valid token.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, path := range []string{"/v1/apps/fwd/machines", "/hangar/v1/images/archive?ref=" + ref} {
		req, _ := http.NewRequest("GET", bURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+a.Token)
		resp, err := insecure.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("b's cluster listener without a client certificate, GET %s: %d, want 401", path, resp.StatusCode)
			}
		}
	}
}
