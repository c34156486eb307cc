package importer

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// nearestPreset picks the smallest non-GPU preset with at least cpus CPUs
// that can hold memMB of memory (shared CPUs hold up to 2 GB each,
// performance CPUs up to 8 GB). When memMB exceeds the preset's default,
// mem is the memory to set, rounded up to 256 MB; otherwise mem is 0.
func nearestPreset(cpus float64, memMB int) (name string, mem int) {
	type cand struct {
		name string
		g    types.MachineGuest
	}
	var shared, perf []cand
	for n, g := range types.GuestPresets {
		if g.GPUs > 0 || g.GPUKind != "" || strings.HasPrefix(n, "dedicated") {
			continue
		}
		if g.CPUKind == "shared" {
			shared = append(shared, cand{n, g})
		} else {
			perf = append(perf, cand{n, g})
		}
	}
	less := func(s []cand) func(i, j int) bool {
		return func(i, j int) bool { return s[i].g.CPUs < s[j].g.CPUs }
	}
	sort.Slice(shared, less(shared))
	sort.Slice(perf, less(perf))
	want := int(math.Ceil(cpus))
	if want < 1 {
		want = 1
	}
	pick := func(list []cand, perCPU int) (cand, bool) {
		for _, c := range list {
			if c.g.CPUs >= want && c.g.CPUs*perCPU >= memMB {
				return c, true
			}
		}
		return cand{}, false
	}
	c, ok := pick(shared, 2048)
	if !ok {
		c, ok = pick(perf, 8192)
	}
	if !ok {
		c = perf[len(perf)-1]
	}
	if memMB > c.g.MemoryMB {
		mem = (memMB + 255) / 256 * 256
		if max := c.g.CPUs * 8192; mem > max {
			mem = max
		}
	}
	return c.name, mem
}

// flySchedule maps a cron-like schedule to the machine schedules Fly
// offers: hourly, daily, weekly, monthly. exact is true when nothing is
// lost.
func flySchedule(s string) (sched string, exact bool) {
	t := strings.TrimSpace(strings.ToLower(s))
	switch t {
	case "@hourly", "hourly":
		return "hourly", true
	case "@daily", "@midnight", "daily":
		return "daily", true
	case "@weekly", "weekly":
		return "weekly", true
	case "@monthly", "monthly":
		return "monthly", true
	case "@yearly", "@annually":
		return "monthly", false
	}
	if strings.HasPrefix(t, "@every") || strings.HasPrefix(t, "rate(") {
		if strings.Contains(t, "day") || strings.HasSuffix(t, "d") || strings.HasSuffix(t, "d)") {
			return "daily", false
		}
		return "hourly", false
	}
	t = strings.TrimSuffix(strings.TrimPrefix(t, "cron("), ")")
	f := strings.Fields(t)
	if len(f) == 6 && (strings.Contains(f[5], "*") || len(f[5]) == 4) { // AWS: min hour dom month dow year
		f = f[:5]
	} else if len(f) == 6 || len(f) == 7 { // seconds first
		f = f[1:6]
	}
	if len(f) != 5 {
		return "daily", false
	}
	fixed := func(x string) bool { return x != "*" && x != "?" && !strings.ContainsAny(x, "/,-") }
	switch {
	case fixed(f[2]) && (f[3] == "*" || f[3] == "?"):
		return "monthly", false
	case fixed(f[4]):
		return "weekly", false
	case fixed(f[1]):
		return "daily", false
	default:
		return "hourly", false
	}
}

// dbKind says which database an image runs, or "".
func dbKind(image string) string {
	if image == "" {
		return ""
	}
	ref := strings.ToLower(image)
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	base := ref[strings.LastIndex(ref, "/")+1:]
	switch base {
	case "postgres", "postgresql", "postgis", "timescaledb", "timescaledb-ha", "pgvector", "supabase-postgres":
		return "postgres"
	case "mysql", "mysql-server", "percona-server", "percona":
		return "mysql"
	case "mariadb":
		return "mariadb"
	case "mongo", "mongodb", "mongodb-community-server":
		return "mongo"
	case "redis", "redis-stack", "redis-stack-server", "keydb", "dragonfly":
		return "redis"
	case "valkey":
		return "valkey"
	}
	return ""
}

// redisPersistence says how a Redis/Valkey command line turns on
// persistence to disk ("" when it does not): append-only file or RDB
// snapshots with a schedule.
func redisPersistence(args []string) string {
	for i, a := range args {
		v := ""
		if k, val, ok := strings.Cut(a, "="); ok {
			a, v = k, val
		} else if i+1 < len(args) {
			v = args[i+1]
		}
		switch a {
		case "--appendonly":
			if strings.EqualFold(strings.Trim(v, `"'`), "yes") {
				return "the server runs with --appendonly yes"
			}
		case "--save":
			if strings.Trim(v, `"'`) != "" {
				return "the server saves snapshots (--save " + v + ")"
			}
		}
	}
	return ""
}

// dbDefaults are each database's port and data directory.
var dbDefaults = map[string]struct {
	Port    int
	DataDir string
	Managed string
}{
	"postgres": {5432, "/var/lib/postgresql/data", "a managed Postgres"},
	"mysql":    {3306, "/var/lib/mysql", "a managed MySQL"},
	"mariadb":  {3306, "/var/lib/mysql", "a managed MySQL/MariaDB"},
	"mongo":    {27017, "/data/db", "a managed MongoDB (e.g. Atlas)"},
	"redis":    {6379, "/data", "a managed Redis (e.g. Upstash)"},
	"valkey":   {6379, "/data", "a managed Redis/Valkey (e.g. Upstash)"},
}

// databaseApp shapes b as a private, volume-backed database app. dataDir
// is where the source mounted its data ("" when it kept none).
func (b *builder) databaseApp(key, kind string, port int, hasVolume bool) {
	d := dbDefaults[kind]
	if port == 0 {
		port = d.Port
	}
	b.tcpCheck(key, port, checkTimes{Interval: 15e9, Timeout: 5e9, Grace: 30e9}, nil,
		fmt.Sprintf("%s runs as its own private app reachable at %s.internal:%d; for production consider %s instead of a self-run container", kind, b.app.Name, port, d.Managed))
	cache := kind == "redis" || kind == "valkey"
	if !hasVolume && (!cache || b.persist != "") {
		b.volume(key+" (data)", kind+"_data", d.DataDir, 0, nil)
		last := &b.rep.Entries[len(b.rep.Entries)-1]
		last.Status = Approximated
		last.Warning = "the source kept the database's data on the container's disk; a volume was added so data survives restarts"
		if cache {
			last.Warning = b.persist + ", so its data must outlive a restart: a volume was added at " + d.DataDir
		}
	}
	b.cfg().HTTPService = nil
}
