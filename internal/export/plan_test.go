package export

import (
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

func TestFargateSizes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		guest types.MachineGuest
		want  FargateSize
	}{
		{types.GuestPresets["shared-cpu-1x"], FargateSize{256, 512}},
		{types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 2048}, FargateSize{256, 2048}},
		{types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 4096}, FargateSize{512, 4096}},
		{types.GuestPresets["shared-cpu-8x"], FargateSize{2048, 4096}},
		{types.GuestPresets["performance-1x"], FargateSize{1024, 2048}},
		{types.MachineGuest{CPUKind: "performance", CPUs: 1, MemoryMB: 3000}, FargateSize{1024, 3072}},
		{types.GuestPresets["performance-4x"], FargateSize{4096, 8192}},
		{types.GuestPresets["performance-8x"], FargateSize{8192, 16384}},
		{types.MachineGuest{CPUKind: "performance", CPUs: 8, MemoryMB: 20000}, FargateSize{8192, 20480}},
		{types.GuestPresets["performance-16x"], FargateSize{16384, 32768}},
	}
	for _, c := range cases {
		got, err := FargateFor(c.guest)
		if err != nil {
			t.Errorf("%+v: %v", c.guest, err)
			continue
		}
		if got != c.want {
			t.Errorf("%+v → %+v, want %+v", c.guest, got, c.want)
		}
		if !ValidFargate(got) {
			t.Errorf("%+v is not a valid Fargate size", got)
		}
	}
	for _, g := range []types.MachineGuest{
		types.GuestPresets["a100-40gb"],
		{CPUKind: "performance", CPUs: 16, MemoryMB: 128 * 1024},
		{CPUKind: "performance", CPUs: 32, MemoryMB: 65536},
	} {
		if s, err := FargateFor(g); err == nil {
			t.Errorf("%+v mapped to %+v, want an error", g, s)
		}
	}
	if ValidFargate(FargateSize{256, 4096}) || ValidFargate(FargateSize{8192, 18432}) || ValidFargate(FargateSize{300, 512}) {
		t.Error("ValidFargate accepts an invalid combination")
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	t.Parallel()
	ok := fixtureApp()
	if _, err := Build(ok, Options{}); err == nil || !strings.Contains(err.Error(), "image") {
		t.Errorf("no image: err = %v", err)
	}
	bad := map[string]func(a *App){
		"no name":          func(a *App) { a.Name = "" },
		"quote in name":    func(a *App) { a.Name = `x"${y}` },
		"group name":       func(a *App) { a.Groups[0].Name = "we b" },
		"duplicate group":  func(a *App) { a.Groups[1].Name = a.Groups[0].Name },
		"nil config":       func(a *App) { a.Groups[0].Config = nil },
		"negative count":   func(a *App) { a.Groups[0].Count = -1 },
		"bad secret":       func(a *App) { a.Secrets = []string{"A-B"} },
		"no groups":        func(a *App) { a.Groups = nil },
		"unsplittable cmd": func(a *App) { a.ReleaseCommand = `echo "unterminated` },
		"gpu": func(a *App) {
			a.Groups[0].Config.Guest = &types.MachineGuest{CPUKind: "performance", CPUs: 8, MemoryMB: 32768, GPUKind: "a10", GPUs: 1}
		},
	}
	for name, mutate := range bad {
		a := fixtureApp()
		mutate(a)
		if _, err := Build(a, Options{Image: "x"}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAWSNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("very-long-app-name-", 3)
	a, b := awsName(long+"web-8080", 32), awsName(long+"web-8081", 32)
	if len(a) > 32 || len(b) > 32 || a == b {
		t.Errorf("names %q and %q: want distinct names of at most 32 characters", a, b)
	}
	if got := awsName("-a__b-", 32); got != "a-b" {
		t.Errorf("awsName = %q", got)
	}
	if strings.HasPrefix(a, "-") || strings.HasSuffix(a, "-") {
		t.Errorf("name %q starts or ends with a hyphen", a)
	}
}

func TestPortConflictsAndNonHTTPServices(t *testing.T) {
	t.Parallel()
	web := func(port int) types.MachineService {
		return types.MachineService{Protocol: "tcp", InternalPort: port, Ports: []types.MachinePort{
			{Port: types.Ptr(443), Handlers: []string{"tls", "http"}},
		}}
	}
	app := &App{Name: "two", Groups: []Group{
		{Name: "a", Config: &types.MachineConfig{Services: []types.MachineService{web(8080)}}},
		{Name: "b", Config: &types.MachineConfig{Services: []types.MachineService{
			web(9090),
			{Protocol: "udp", InternalPort: 53, Ports: []types.MachinePort{{Port: types.Ptr(53)}}},
			{Protocol: "tcp", InternalPort: 5432, Ports: []types.MachinePort{{Port: types.Ptr(5432), Handlers: []string{"pg_tls"}}}},
			{Protocol: "tcp", InternalPort: 7000, Ports: []types.MachinePort{{StartPort: types.Ptr(7000), EndPort: types.Ptr(7010)}}},
		}}},
	}}
	plan, err := Build(app, Options{Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Listeners) != 1 || plan.Listeners[0].Port != 443 {
		t.Fatalf("listeners = %+v, want only group a's 443", plan.Listeners)
	}
	if n := len(plan.Services[1].LoadBalancers); n != 0 {
		t.Errorf("group b is attached to %d target groups, want none", n)
	}
	var msgs []string
	for _, w := range plan.Warnings {
		if w.Group == "b" && w.Severity == SevWarning {
			msgs = append(msgs, w.Message)
		}
	}
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{"already served by process group a", "UDP port 53", "raw TCP/TLS", "port ranges"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no warning with %q in:\n%s", want, joined)
		}
	}
}
