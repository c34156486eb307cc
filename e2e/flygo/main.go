// Command flygo drives every call of fly-go's flaps client (github.com/
// superfly/fly-go/flaps, what flyctl and Fly's Terraform and Pulumi
// tooling use) against a Hangar daemon: FLY_FLAPS_BASE_URL, FLY_API_TOKEN,
// FLYGO_IMAGE (an image on the daemon) and FLYGO_FULL_CONFIG (a machine
// config with every field, sent through fly-go's own types and compared
// with what comes back). It prints a Markdown table, call → result, and
// exits 1 when a call that must work fails or one Hangar does not support
// gets anything but a 4xx. e2e.TestFlyGoClient runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
	"github.com/superfly/fly-go/tokens"
)

var failed int

func report(call string, err error, note string) {
	res := "ok"
	if err != nil {
		var fe *flaps.FlapsError
		if errors.As(err, &fe) {
			res = fmt.Sprintf("%d %s", fe.ResponseStatusCode, strings.TrimSpace(string(fe.ResponseBody)))
		} else {
			res = "ERR " + err.Error()
		}
	}
	if note != "" {
		res += " — " + note
	}
	res = strings.Join(strings.Fields(res), " ")
	fmt.Printf("| `%s` | %s |\n", call, res)
}

func must(call string, err error, note string) {
	report(call, err, note)
	if err != nil {
		failed++
	}
}

// expect4xx reports a call that must get a deliberate 4xx.
func expect4xx(call string, err error) {
	var fe *flaps.FlapsError
	if errors.As(err, &fe) && fe.ResponseStatusCode >= 400 && fe.ResponseStatusCode < 500 {
		report(call, err, "deliberate")
		return
	}
	report(call, err, "WANTED a deliberate 4xx")
	failed++
}

// dropped lists the JSON paths of sent missing from got.
func dropped(prefix string, sent, got any) []string {
	var out []string
	switch s := sent.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		for k, v := range s {
			gv, ok := g[k]
			if !ok {
				out = append(out, prefix+k)
				continue
			}
			out = append(out, dropped(prefix+k+".", v, gv)...)
		}
	case []any:
		g, _ := got.([]any)
		for i, v := range s {
			if i >= len(g) {
				out = append(out, fmt.Sprintf("%s[%d]", prefix, i))
				continue
			}
			out = append(out, dropped(fmt.Sprintf("%s[%d].", prefix, i), v, g[i])...)
		}
	default:
		if !reflect.DeepEqual(sent, got) {
			out = append(out, fmt.Sprintf("%s(%v → %v)", prefix, sent, got))
		}
	}
	sort.Strings(out)
	return out
}

func main() {
	ctx := context.Background()
	image, fullConfig := os.Getenv("FLYGO_IMAGE"), os.Getenv("FLYGO_FULL_CONFIG")
	c, err := flaps.NewWithOptions(ctx, flaps.NewClientOpts{Tokens: tokens.Parse(os.Getenv("FLY_API_TOKEN"))})
	if err != nil {
		panic(err)
	}
	const app = "flygo"
	fmt.Println("| flaps call | result against Hangar |")
	fmt.Println("|---|---|")

	// Apps.
	_, err = c.CreateApp(ctx, flaps.CreateAppRequest{Name: app, Org: "personal", Network: "default", AppRoleID: ""})
	must("CreateApp", err, "")
	_, err = c.GetApp(ctx, app)
	must("GetApp", err, "")
	apps, err := c.ListApps(ctx, flaps.ListAppsRequest{OrgSlug: "personal"})
	must("ListApps", err, fmt.Sprintf("%d apps", len(apps)))
	avail, err := c.AppNameAvailable(ctx, app)
	must("AppNameAvailable", err, fmt.Sprintf("taken name → available=%v", avail))
	if avail {
		failed++
	}
	must("WaitForApp", c.WaitForApp(ctx, app), "")

	// Platform.
	regions, err := c.GetRegions(ctx)
	note := ""
	if regions != nil {
		note = fmt.Sprintf("%d regions", len(regions.Regions))
	}
	must("GetRegions", err, note)
	_, err = c.GetPlacements(ctx, &flaps.GetPlacementsRequest{Region: "any", Count: 1, Org: "personal"})
	expect4xx("GetPlacements", err)

	// Secrets.
	_, err = c.SetAppSecret(ctx, app, "GREETING_SECRET", "s3cret")
	must("SetAppSecret", err, "")
	v := "v2"
	_, err = c.UpdateAppSecrets(ctx, app, map[string]*string{"OTHER": &v, "THIRD": &v})
	must("UpdateAppSecrets", err, "")
	_, err = c.UpdateAppSecrets(ctx, app, map[string]*string{"THIRD": nil})
	must("UpdateAppSecrets(unset)", err, "")
	_, err = c.UpdateAppSecrets(ctx, app, map[string]*string{"NEVER_SET": nil})
	expect4xx("UpdateAppSecrets(unset missing)", err)
	secs, err := c.ListAppSecrets(ctx, app, nil, false)
	must("ListAppSecrets", err, fmt.Sprintf("%d secrets", len(secs)))
	_, err = c.GetAppSecrets(ctx, app, "GREETING_SECRET", nil, false)
	must("GetAppSecrets", err, "")
	_, err = c.ListAppSecrets(ctx, app, nil, true)
	expect4xx("ListAppSecrets(showSecrets)", err)
	_, err = c.DeleteAppSecret(ctx, app, "OTHER")
	must("DeleteAppSecret", err, "")

	// Secret keys: not on Hangar.
	_, err = c.ListSecretKeys(ctx, app, nil)
	expect4xx("ListSecretKeys", err)
	_, err = c.GetSecretKey(ctx, app, "k", nil)
	expect4xx("GetSecretKey", err)
	_, err = c.SetSecretKey(ctx, app, "k", "secret_aes256gcm", make([]byte, 32))
	expect4xx("SetSecretKey", err)
	_, err = c.GenerateSecretKey(ctx, app, "k", "secret_aes256gcm")
	expect4xx("GenerateSecretKey", err)
	_, err = c.EncryptSecretKey(ctx, app, "k", []byte("x"), nil, nil)
	expect4xx("EncryptSecretKey", err)
	_, err = c.DecryptSecretKey(ctx, app, "k", []byte("x"), nil, nil)
	expect4xx("DecryptSecretKey", err)
	_, err = c.SignSecretKey(ctx, app, "k", []byte("x"), nil)
	expect4xx("SignSecretKey", err)
	expect4xx("VerifySecretKey", c.VerifySecretKey(ctx, app, "k", []byte("x"), []byte("y"), nil))
	expect4xx("DeleteSecretKey", c.DeleteSecretKey(ctx, app, "k"))

	// IP assignments.
	ip, err := c.AssignIP(ctx, app, flaps.AssignIPRequest{Type: "private_v6", Organization: "personal", Network: ""})
	must("AssignIP(private_v6)", err, "")
	_, err = c.AssignIP(ctx, app, flaps.AssignIPRequest{Type: "shared_v4"})
	expect4xx("AssignIP(shared_v4)", err)
	ips, err := c.GetIPAssignments(ctx, app)
	note = ""
	if ips != nil {
		note = fmt.Sprintf("%d ips", len(ips.IPs))
	}
	must("GetIPAssignments", err, note)
	if ip != nil {
		must("DeleteIPAssignment", c.DeleteIPAssignment(ctx, app, ip.IP), "")
	}

	// Certificates.
	_, err = c.CreateACMECertificate(ctx, app, fly.CreateCertificateRequest{Hostname: "flygo.example.com"})
	must("CreateACMECertificate", err, "")
	_, err = c.ListCertificates(ctx, app, nil)
	must("ListCertificates", err, "")
	_, err = c.GetCertificate(ctx, app, "flygo.example.com")
	must("GetCertificate", err, "")
	_, err = c.CheckCertificate(ctx, app, "flygo.example.com")
	must("CheckCertificate", err, "")
	_, err = c.CreateCustomCertificate(ctx, app, fly.ImportCertificateRequest{Hostname: "custom.example.com", Fullchain: "x", PrivateKey: "y"})
	expect4xx("CreateCustomCertificate", err)
	expect4xx("DeleteCustomCertificate", c.DeleteCustomCertificate(ctx, app, "flygo.example.com"))
	must("DeleteACMECertificate", c.DeleteACMECertificate(ctx, app, "flygo.example.com"), "")
	_, _ = c.CreateACMECertificate(ctx, app, fly.CreateCertificateRequest{Hostname: "flygo2.example.com"})
	must("DeleteCertificate", c.DeleteCertificate(ctx, app, "flygo2.example.com"), "")

	// Volumes.
	size := 1
	vol, err := c.CreateVolume(ctx, app, fly.CreateVolumeRequest{Name: "data", Region: "", SizeGb: &size})
	must("CreateVolume", err, "")
	volID := ""
	if vol != nil {
		volID = vol.ID
	}
	_, err = c.GetVolumes(ctx, app)
	must("GetVolumes", err, "")
	_, err = c.GetAllVolumes(ctx, app)
	must("GetAllVolumes", err, "")
	_, err = c.GetVolume(ctx, app, volID)
	must("GetVolume", err, "")
	ret, ab := 3, false
	_, err = c.UpdateVolume(ctx, app, volID, fly.UpdateVolumeRequest{SnapshotRetention: &ret, AutoBackupEnabled: &ab})
	must("UpdateVolume", err, "")
	must("CreateVolumeSnapshot", c.CreateVolumeSnapshot(ctx, app, volID), "")
	snaps, err := c.GetVolumeSnapshots(ctx, app, volID)
	note = ""
	if len(snaps) > 0 {
		note = fmt.Sprintf("volume_size=%d", snaps[0].VolumeSize)
	}
	must("GetVolumeSnapshots", err, note)
	_, needsRestart, err := c.ExtendVolume(ctx, app, volID, 2)
	must("ExtendVolume", err, fmt.Sprintf("needs_restart=%v", needsRestart))

	// Machines.
	cfg := &fly.MachineConfig{Image: image, Env: map[string]string{"PORT": "8080"},
		Mounts: []fly.MachineMount{{Volume: volID, Path: "/data"}}}
	m, err := c.Launch(ctx, app, fly.LaunchMachineInput{Config: cfg, Name: "web-1"})
	must("Launch", err, "")
	if m == nil {
		fmt.Println("no machine: stopping")
		os.Exit(1)
	}
	must("Wait(started)", c.Wait(ctx, app, m.ID, flaps.WithWaitStates("started"), flaps.WithWaitTimeout(30*time.Second), flaps.WithWaitVersion(m.InstanceID)), "")
	got, err := c.Get(ctx, app, m.ID)
	must("Get", err, "")
	_, err = c.GetMany(ctx, app, []string{m.ID})
	must("GetMany", err, "")
	ms, err := c.List(ctx, app, "")
	must("List", err, fmt.Sprintf("%d machines", len(ms)))
	_, err = c.List(ctx, app, "started")
	must("List(started)", err, "")
	_, err = c.ListActive(ctx, app)
	must("ListActive", err, "")
	_, _, err = c.ListFlyAppsMachines(ctx, app)
	must("ListFlyAppsMachines", err, "")
	ttl := 30
	lease, err := c.AcquireLease(ctx, app, m.ID, &ttl)
	must("AcquireLease", err, "")
	nonce := ""
	if lease != nil {
		nonce = lease.Data.Nonce
	}
	_, err = c.FindLease(ctx, app, m.ID)
	must("FindLease", err, "")
	_, err = c.RefreshLease(ctx, app, m.ID, &ttl, nonce)
	must("RefreshLease", err, "")
	res, err := c.Exec(ctx, app, m.ID, &fly.MachineExecRequest{Cmd: "/app exit 3", Timeout: 10})
	note = ""
	if res != nil {
		note = fmt.Sprintf("exit %d, stdout %q", res.ExitCode, res.StdOut)
		if res.ExitCode != 3 || !strings.Contains(res.StdOut, "exiting with 3") {
			err = fmt.Errorf("%s, want exit 3", note)
		}
	}
	must("Exec", err, note)
	res, err = c.Exec(ctx, app, m.ID, &fly.MachineExecRequest{Cmd: "/app cat a b", Stdin: "in", Timeout: 10})
	note = ""
	if res != nil {
		note = fmt.Sprintf("exit %d, stdout %q, stderr %q", res.ExitCode, res.StdOut, res.StdErr)
	}
	must("Exec(stdin)", err, note)
	_, err = c.Exec(ctx, app, m.ID, &fly.MachineExecRequest{Cmd: "/app exit 0", Container: "sidecar"})
	expect4xx("Exec(container)", err)
	_, err = c.Exec(ctx, app, m.ID, &fly.MachineExecRequest{Cmd: "/app exit 0", Machine: true})
	must("Exec(machine)", err, "")
	_, err = c.GetProcesses(ctx, app, m.ID)
	must("GetProcesses", err, "")
	must("SetMetadata", c.SetMetadata(ctx, app, m.ID, "role", "primary"), "")
	md, err := c.GetMetadata(ctx, app, m.ID)
	must("GetMetadata", err, fmt.Sprintf("role=%s", md["role"]))
	must("DeleteMetadata", c.DeleteMetadata(ctx, app, m.ID, "role"), "")
	must("Cordon", c.Cordon(ctx, app, m.ID, nonce), "")
	got, _ = c.Get(ctx, app, m.ID)
	if got != nil && !got.Cordoned {
		report("Get after Cordon", errors.New("cordoned=false"), "")
		failed++
	}
	must("Uncordon", c.Uncordon(ctx, app, m.ID, nonce), "")
	upd := *got.Config
	upd.Env = map[string]string{"PORT": "8080", "V": "2"}
	m2, err := c.Update(ctx, app, fly.LaunchMachineInput{ID: m.ID, Config: &upd}, nonce)
	must("Update", err, "")
	if m2 != nil {
		must("Wait(settled)", c.Wait(ctx, app, m.ID, flaps.WithWaitStates("settled"), flaps.WithWaitTimeout(30*time.Second)), "")
	}
	must("Restart", c.Restart(ctx, app, fly.RestartMachineInput{ID: m.ID, Timeout: 5 * time.Second}, nonce), "")
	must("Suspend", c.Suspend(ctx, app, m.ID, nonce), "")
	must("Wait(suspended)", c.Wait(ctx, app, m.ID, flaps.WithWaitStates("suspended"), flaps.WithWaitTimeout(30*time.Second)), "")
	_, err = c.Start(ctx, app, m.ID, nonce)
	must("Start(resume)", err, "")
	must("Wait(started after resume)", c.Wait(ctx, app, m.ID, flaps.WithWaitStates("started"), flaps.WithWaitTimeout(30*time.Second)), "")
	must("Stop", c.Stop(ctx, app, fly.StopMachineInput{ID: m.ID, Signal: "SIGTERM", Timeout: fly.Duration{Duration: 5 * time.Second}}, nonce), "")
	must("Wait(stopped)", c.Wait(ctx, app, m.ID, flaps.WithWaitStates("stopped"), flaps.WithWaitTimeout(30*time.Second)), "")
	_, err = c.Start(ctx, app, m.ID, nonce)
	must("Start", err, "")
	must("Wait(started)#2", c.Wait(ctx, app, m.ID, flaps.WithWaitStates("started"), flaps.WithWaitTimeout(30*time.Second)), "")
	must("ReleaseLease", c.ReleaseLease(ctx, app, m.ID, nonce), "")
	_, err = c.FindLease(ctx, app, m.ID)
	report("FindLease(none)", err, "a 404 \"lease not found\" is what flyctl expects")
	must("Kill", c.Kill(ctx, app, m.ID), "")
	must("Destroy", c.Destroy(ctx, app, fly.RemoveMachineInput{ID: m.ID, Kill: true}, ""), "")
	_, err = c.Get(ctx, app, m.ID)
	report("Get(destroyed)", err, "")

	// The whole config schema, sent through fly-go's own types.
	if fullConfig != "" {
		b, err := os.ReadFile(fullConfig)
		if err != nil {
			panic(err)
		}
		var full fly.MachineConfig
		if err := json.Unmarshal(b, &full); err != nil {
			panic(err)
		}
		full.Image = image
		full.Mounts = nil
		full.Standbys = nil
		if full.Guest != nil {
			full.Guest.GPUs, full.Guest.GPUKind = 0, ""
		}
		fm, err := c.Launch(ctx, app, fly.LaunchMachineInput{Config: &full, SkipLaunch: true})
		must("Launch(full config, skip_launch)", err, "")
		if fm != nil {
			fg, err := c.Get(ctx, app, fm.ID)
			must("Get(full config)", err, "")
			var sent, back any
			sb, _ := json.Marshal(full)
			gb, _ := json.Marshal(fg.Config)
			_ = json.Unmarshal(sb, &sent)
			_ = json.Unmarshal(gb, &back)
			d := dropped("", sent, back)
			if len(d) > 0 {
				report("config round trip", fmt.Errorf("dropped or changed: %s", strings.Join(d, ", ")), "")
				failed++
			} else {
				report("config round trip", nil, "every field fly-go sent came back")
			}
			must("Destroy(full)", c.Destroy(ctx, app, fly.RemoveMachineInput{ID: fm.ID, Kill: true}, ""), "")
		}
	}
	_, err = c.DeleteVolume(ctx, app, volID)
	must("DeleteVolume", err, "")

	// Managed Postgres: not on Hangar.
	_, err = c.CreateManagedPostgresCluster(ctx, flaps.CreateManagedPostgresClusterRequest{})
	expect4xx("CreateManagedPostgresCluster", err)
	_, err = c.GetManagedPostgresCluster(ctx, "x")
	expect4xx("GetManagedPostgresCluster", err)
	_, err = c.GetManagedPostgresUserCredentials(ctx, "x", "u")
	expect4xx("GetManagedPostgresUserCredentials", err)

	must("DeleteApp", c.DeleteApp(ctx, app), "")
	fmt.Printf("\nfailed: %d\n", failed)
	if failed > 0 {
		os.Exit(1)
	}
}
