package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// pgbenchRuns is how many pgbench runs each side gets (alternately, so
// that both see the same load on a shared machine); pgFailovers how many
// kills are measured.
const (
	pgbenchRuns     = 5
	pgbenchSeconds  = 6
	pgFailovers     = 5
	pgbenchClients  = 4
	pgbenchThreads  = 2
	pgbenchDatabase = "postgres"
)

// BenchmarkPostgres: a 3-member Hangar Postgres cluster on one host.
// pgbench (TPC-B-like, TLS) through DB.flycast:5432 (the proxy, routed by
// Patroni's checks) against pgbench straight to the primary's address,
// alternately, and the TPS ratio (the target: ≥ 0.9); then the
// failover time, kill -9 of the primary's machine → the first write
// acknowledged through DB.flycast:5432 on a new connection, over 5 runs
// (Hangar restarts the killed machine within the leader key's ttl, so
// this is a restart of the primary, not an election: the output says
// which).
// Needs the Hangar Postgres image (built here: HANGAR_PG_IMAGE_TEST=1;
// imported instead from HANGAR_E2E_PG_IMAGE if that archive exists) and
// pgbench (Debian's postgresql-client).
func BenchmarkPostgres(b *testing.B) {
	harness.RequireRoot(b)
	if os.Getenv("HANGAR_PG_IMAGE_TEST") == "" {
		b.Skip("builds the Hangar Postgres image from Debian's packages (minutes): set HANGAR_PG_IMAGE_TEST=1")
	}
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		b.Skip("pgbench not installed: apt-get install postgresql-client")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		b.Skip("mmdebstrap not installed: apt-get install mmdebstrap")
	}
	bin := harness.BuildBinary(b)
	d := harness.StartDaemon(b, bin)
	const db = "pgbench"
	hangar := func(args ...string) string {
		b.Helper()
		out, err := d.Hangar(args...)
		if err != nil {
			b.Fatalf("hangar %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	b.Cleanup(func() {
		// The machines, then their volumes (unmounted by their destroy).
		for _, m := range d.Machines(db) {
			d.Call("DELETE", "/v1/apps/"+db+"/machines/"+m.ID+"?force=true", nil)
		}
		var vs []types.Volume
		if d.Get("/v1/apps/"+db+"/volumes", &vs) == nil {
			for _, v := range vs {
				for i := 0; i < 40; i++ {
					if code, _ := d.Call("DELETE", "/v1/apps/"+db+"/volumes/"+v.ID, nil); code == 200 {
						break
					}
					time.Sleep(250 * time.Millisecond)
				}
			}
		}
	})
	if f := os.Getenv("HANGAR_E2E_PG_IMAGE"); f != "" {
		if _, err := os.Stat(f); err == nil {
			hangar("images", "import", f) // an archive kept by the e2e tests: no build
		}
	}
	hangar("pg", "image", "build")
	out := hangar("pg", "create", "--name", db, "--initial-cluster-size", "3", "--volume-size-mb", "512")
	pw := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	fc := regexp.MustCompile(`Flycast:\s+(\S+)`).FindStringSubmatch(out)
	if pw == nil || fc == nil {
		b.Fatalf("pg create:\n%s", out)
	}
	type member struct{ Name, Role, State string }
	status := func() []member {
		var s struct{ Members []member }
		_ = json.Unmarshal([]byte(hangar("pg", "status", "-a", db, "--json")), &s)
		return s.Members
	}
	primary := func() string {
		for _, m := range status() {
			if m.Role == "leader" && m.State == "running" {
				return m.Name
			}
		}
		return ""
	}
	whole := func() string {
		var p string
		harness.Poll(b, "a primary and two replicas", 2*time.Minute, func() (bool, string) {
			ms := status()
			n := 0
			p = ""
			for _, m := range ms {
				if m.Role == "leader" && m.State == "running" {
					p = m.Name
				} else if m.State == "running" || m.State == "streaming" {
					n++
				}
			}
			return p != "" && n == 2, fmt.Sprint(ms)
		})
		return p
	}
	p := whole()
	var primaryIP string
	for _, m := range d.Machines(db) {
		if m.ID == p {
			primaryIP = m.PrivateIP
		}
	}
	if primaryIP == "" {
		b.Fatalf("no address for the primary %s", p)
	}
	dsn := func(host string) string {
		return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort(host, "5432"), Path: "/" + pgbenchDatabase, RawQuery: "sslmode=require"}).String()
	}
	env := append(os.Environ(), "PGPASSWORD="+pw[1])
	run := func(args ...string) string {
		b.Helper()
		cmd := exec.Command(pgbench, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("-i", "-s", "4", "-q", dsn(primaryIP))
	tpsRe := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	tps := func(host string) float64 {
		out := run("-c", strconv.Itoa(pgbenchClients), "-j", strconv.Itoa(pgbenchThreads), "-T", strconv.Itoa(pgbenchSeconds), "-n", dsn(host))
		m := tpsRe.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("pgbench output:\n%s", out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	var direct, proxied []float64
	for i := 0; i < pgbenchRuns; i++ {
		direct = append(direct, tps(primaryIP))
		proxied = append(proxied, tps(fc[1]))
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	// Each pair ran back to back, under the same load: the median of
	// the pairs' ratios is the figure; the ratio of the means is printed
	// too.
	var ratios []float64
	for i := range direct {
		ratios = append(ratios, proxied[i]/direct[i])
	}
	sort.Float64s(ratios)
	ratio := ratios[len(ratios)/2]

	// Failover: kill -9 of the primary's machine, then a new connection
	// and an insert through the Flycast address every 50 ms.
	withPassword := (&url.URL{Scheme: "postgres", User: url.UserPassword("postgres", pw[1]), Host: net.JoinHostPort(fc[1], "5432"), Path: "/" + pgbenchDatabase, RawQuery: "sslmode=require"}).String()
	conn := func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.Connect(ctx, withPassword)
	}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Exec(ctx, "create table if not exists failover_probe (at timestamptz default now())"); err != nil {
			b.Fatal(err)
		}
		c.Close(ctx)
		cancel()
	}
	var downs []time.Duration
	var newPrimary []bool
	for i := 0; i < pgFailovers; i++ {
		p := whole()
		raw, err := os.ReadFile(filepath.Join(d.DataDir, "tasks", p, "task.pid"))
		if err != nil {
			b.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			b.Fatalf("kill -9 %d: %v", pid, err)
		}
		time.Sleep(50 * time.Millisecond)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c, err := conn(ctx)
			if err == nil {
				_, err = c.Exec(ctx, "insert into failover_probe default values")
				c.Close(ctx)
			}
			cancel()
			if err == nil {
				break
			}
			if time.Since(killed) > 2*time.Minute {
				b.Fatalf("no write within 2 minutes of the kill: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		downs = append(downs, time.Since(killed))
		newPrimary = append(newPrimary, primary() != p)
	}
	f := summarize("kill -9 → first write", downs)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nHangar Postgres, 3 members on one host; pgbench -c %d -j %d -T %d (TPC-B-like, scale 4, TLS), %d runs each, alternately\n", pgbenchClients, pgbenchThreads, pgbenchSeconds, pgbenchRuns)
	fmt.Fprintf(&sb, "%-34s %10s   runs\n", "", "mean TPS")
	fmt.Fprintf(&sb, "%-34s %10.0f   %v\n", "straight to the primary", mean(direct), direct)
	fmt.Fprintf(&sb, "%-34s %10.0f   %v\n", "through DB.flycast:5432 (proxy)", mean(proxied), proxied)
	fmt.Fprintf(&sb, "ratio flycast/direct: median of the pairs %.2fx (pairs %.2f), of the means %.2fx (target ≥ 0.9x)\n", ratio, ratios, mean(proxied)/mean(direct))
	fmt.Fprintf(&sb, "failover, %d runs: %s min %s, median %s, max %s (new primary elected: %v)\n", pgFailovers, f.name,
		f.min.Round(time.Millisecond), f.med.Round(time.Millisecond), f.max.Round(time.Millisecond), newPrimary)
	fmt.Print(sb.String())
	b.ReportMetric(ratio, "flycast/direct-tps")
	b.ReportMetric(float64(f.med.Milliseconds()), "failover-median-ms")
}
