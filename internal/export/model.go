package export

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// App is what the exporter needs to know about a Fly app.
type App struct {
	Name           string
	PrimaryRegion  string
	ReleaseCommand string
	// Groups are the process groups, in a stable order.
	Groups []Group
	// Secrets are the names of the app's secrets (never their values).
	Secrets []string
}

// Group is one process group and the machine config flyctl would create
// for it.
type Group struct {
	Name   string
	Config *types.MachineConfig
	// Count is the number of machines (tasks) to run; 0 means derive it
	// from min_machines_running (at least 1).
	Count int
}

// Options are the choices the Fly config does not make.
type Options struct {
	// Image is the container image every task runs. Required.
	Image string
	// Region is the AWS region (default us-east-1).
	Region string
}

// Severity of a warning.
const (
	SevWarning = "warning" // something in this config has no exact equivalent
	SevNote    = "note"    // a platform difference that may matter
)

// Warning is one thing that did not carry over exactly.
type Warning struct {
	Severity string `json:"severity"`
	// Key names the fly.toml setting, e.g. "mounts" or "services[0].autostop".
	Key     string `json:"key"`
	Group   string `json:"group,omitempty"`
	Message string `json:"message"`
}

func (w Warning) String() string {
	g := ""
	if w.Group != "" {
		g = " (" + w.Group + ")"
	}
	return fmt.Sprintf("%s: %s%s: %s", w.Severity, w.Key, g, w.Message)
}

// Validate checks the input before anything is built.
func (a *App) Validate() error {
	if a == nil {
		return fmt.Errorf("export: no app")
	}
	if strings.TrimSpace(a.Name) == "" {
		return fmt.Errorf("export: the app has no name: set `app = \"name\"` in fly.toml")
	}
	if !validName(a.Name) {
		return fmt.Errorf("export: app name %q: use letters, digits, - and _ (as Fly does)", a.Name)
	}
	if len(a.Groups) == 0 {
		return fmt.Errorf("export: app %s has no process groups", a.Name)
	}
	seen := map[string]bool{}
	for _, g := range a.Groups {
		if g.Name == "" {
			return fmt.Errorf("export: app %s: a process group has no name", a.Name)
		}
		if !validName(g.Name) {
			return fmt.Errorf("export: app %s: process group name %q: use letters, digits, - and _", a.Name, g.Name)
		}
		if seen[g.Name] {
			return fmt.Errorf("export: app %s: process group %q appears twice", a.Name, g.Name)
		}
		seen[g.Name] = true
		if g.Config == nil {
			return fmt.Errorf("export: app %s: process group %s has no machine config", a.Name, g.Name)
		}
		if g.Count < 0 {
			return fmt.Errorf("export: app %s: process group %s: count %d is negative", a.Name, g.Name, g.Count)
		}
	}
	for _, s := range a.Secrets {
		if !validEnvName(s) {
			return fmt.Errorf("export: secret name %q: use letters, digits and underscores, not starting with a digit", s)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// DesiredCount is the number of tasks to run for g: its Count, or the
// largest min_machines_running of its services, or 1.
func DesiredCount(g Group) int {
	if g.Count > 0 {
		return g.Count
	}
	n := 1
	for _, s := range g.Config.Services {
		if s.MinMachinesRunning != nil && *s.MinMachinesRunning > n {
			n = *s.MinMachinesRunning
		}
	}
	return n
}

// GuestOf returns the machine config's guest with Fly's defaults filled in.
func GuestOf(mc *types.MachineConfig) types.MachineGuest { return guestOf(mc) }

// guestOf returns the group's guest, or Fly's default size.
func guestOf(mc *types.MachineConfig) types.MachineGuest {
	if mc.Guest != nil {
		g := *mc.Guest
		if g.CPUs == 0 {
			g.CPUs = 1
		}
		if g.MemoryMB == 0 {
			g.MemoryMB = types.DefaultGuest.MemoryMB
		}
		if g.CPUKind == "" {
			g.CPUKind = "shared"
		}
		return g
	}
	return types.DefaultGuest
}

// HasHTTP reports whether the machine config has a port with the http
// handler (something an ALB would serve).
func HasHTTP(mc *types.MachineConfig) bool {
	for _, s := range mc.Services {
		for _, p := range s.Ports {
			if _, ok := listenerProtocol(p.Handlers); ok {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
