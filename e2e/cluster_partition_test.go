package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestClusterPartitionedHostAnswers503: host c of an embedded 3-voter
// cluster is cut off from the others (LinkDown): its API, asked through
// its own namespace, answers what needs the cluster's state with a 503
// that says the store is unavailable, never a 500, while a and b go on.
func TestClusterPartitionedHostAnswers503(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}, {Name: "c", Region: "iad"}},
		Args:  meshClusterArgs(t),
	})
	a, hc := c.Host("a"), c.Host("c")
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "part", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cl := inHost(hc)
	cl.Timeout = 20 * time.Second
	get := func(p string) (int, string) {
		req, _ := http.NewRequest("GET", hc.APIURL()+p, nil)
		req.Header.Set("Authorization", "Bearer "+hc.AdminToken())
		resp, err := cl.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/v1/apps"); code != http.StatusOK {
		t.Fatalf("c's API from its namespace: %d %s", code, body)
	}
	c.LinkDown("c")
	defer c.LinkUp("c")
	deadline := time.Now().Add(40 * time.Second)
	seen := map[int]int{}
	for time.Now().Before(deadline) {
		for _, p := range []string{"/v1/apps/part/machines", "/v1/apps", "/v1/hosts"} {
			code, body := get(p)
			seen[code]++
			if code == 0 {
				t.Errorf("GET %s on the cut-off host: %s", p, body)
			}
			if code == http.StatusInternalServerError {
				t.Errorf("GET %s on the cut-off host: %d %s", p, code, body)
			}
			if code == http.StatusServiceUnavailable && !strings.Contains(body, "etcd") && !strings.Contains(body, "store") {
				t.Errorf("GET %s: 503 without saying why: %s", p, body)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("statuses on the cut-off host over 40 s: %v", seen)
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "part2", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Errorf("a, with b, still writes: %d %s", code, body)
	}
	// Back on the link: c's daemon took its lock again and answers.
	c.LinkUp("c")
	up := time.Now()
	// Back means answering five times in a row, a second apart: right
	// after the link returns, calls made while its etcd member catches
	// up may still time out.
	steady := 0
	harness.Poll(t, "c answers again, steadily", 90*time.Second, func() (bool, string) {
		code, body := get("/v1/apps")
		if code != http.StatusOK || !strings.Contains(body, "part2") {
			steady = 0
			return false, fmt.Sprint(code, body)
		}
		steady++
		if steady < 5 {
			time.Sleep(time.Second)
		}
		return steady >= 5, ""
	})
	t.Logf("c answered steadily with the others' writes %v after its link came back", time.Since(up).Round(100*time.Millisecond))
}
