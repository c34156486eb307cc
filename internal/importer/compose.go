package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	ctypes "github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

var composeNames = []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}

var composeOverrides = []string{"compose.override.yaml", "compose.override.yml", "docker-compose.override.yml", "docker-compose.override.yaml"}

func importCompose(path string, isDir bool, opts Options) (*Result, error) {
	dir, files := path, []string(nil)
	if isDir {
		f, ok := findFile(path, composeNames...)
		if !ok {
			return nil, inputErr(path, "pass the compose file itself, or a directory holding compose.yaml or docker-compose.yml", "no compose file found (looked for %s)", strings.Join(composeNames, ", "))
		}
		files = append(files, f)
		if o, ok := findFile(path, composeOverrides...); ok {
			files = append(files, o)
		}
	} else {
		dir = filepath.Dir(path)
		files = []string{path}
	}
	var cfgFiles []ctypes.ConfigFile
	for _, f := range files {
		b, err := readInput(f)
		if err != nil {
			return nil, err
		}
		cfgFiles = append(cfgFiles, ctypes.ConfigFile{Filename: f, Content: b})
	}
	return convertCompose(dir, cfgFiles, opts)
}

// composeUnit is one service about to become an app, or a process group
// of an app shared with services that run the same image.
type composeUnit struct {
	svc   ctypes.ServiceConfig
	app   string
	db    string
	port  int    // the port other apps reach it on
	group string // process group name when the app has several; "" otherwise
}

// pg is the unit's process group name.
func (u *composeUnit) pg() string {
	if u.group == "" {
		return "app"
	}
	return u.group
}

// procs is the processes filter for the unit's sections.
func (u *composeUnit) procs() []string {
	if u.group == "" {
		return nil
	}
	return []string{u.group}
}

// shareKey is equal for services that can be process groups of one app:
// same image or build, entrypoint, environment and env files, stop
// settings. "" means the service needs its own app.
func shareKey(s ctypes.ServiceConfig, db string) string {
	if db != "" {
		return ""
	}
	k := struct {
		Image      string
		Build      *ctypes.BuildConfig
		Entrypoint []string
		Env        map[string]*string
		EnvFiles   []ctypes.EnvFile
		Stop       string
		Grace      *ctypes.Duration
	}{Entrypoint: s.Entrypoint, Env: s.Environment, EnvFiles: s.EnvFiles, Stop: s.StopSignal, Grace: s.StopGracePeriod, Build: s.Build}
	if s.Build == nil {
		k.Image = s.Image
	}
	if k.Image == "" && k.Build == nil {
		return ""
	}
	b, err := json.Marshal(k)
	if err != nil {
		return ""
	}
	return string(b)
}

func convertCompose(dir string, files []ctypes.ConfigFile, opts Options) (*Result, error) {
	if len(files) == 0 {
		return nil, errors.New("no compose file given")
	}
	proj, missing, unset, err := loadCompose(dir, files, opts)
	if err != nil {
		return nil, err
	}
	var fallback string
	if len(proj.Services) == 0 && len(proj.DisabledServices) > 0 && len(opts.Profiles) == 0 {
		// Every service sits behind a profile (an "optional extras" file,
		// or one profile per deployment flavour): take them all, and say so.
		profiles := map[string]bool{}
		for _, s := range proj.DisabledServices {
			for _, p := range s.Profiles {
				profiles[p] = true
			}
		}
		o := opts
		o.Profiles = []string{"*"}
		if proj, missing, unset, err = loadCompose(dir, files, o); err != nil {
			return nil, err
		}
		fallback = fmt.Sprintf("every service of the compose file is behind a profile (%s) and no --profile was given: all profiles were enabled; pass --profile NAME to import only one", strings.Join(sortedKeys(profiles), ", "))
	}
	if err := checkImages(files, proj, unset); err != nil {
		return nil, err
	}
	rep := &Report{Format: "compose", Source: files[0].Filename}
	res := &Result{Report: rep}
	top := map[string]any{}
	_ = yaml.Unmarshal(files[0].Content, &top) // already validated by the loader
	for _, k := range sortedKeys(top) {
		switch {
		case k == "version":
			rep.Entries = append(rep.Entries, Entry{Key: "version", Status: Unsupported, Warning: "obsolete; ignored"})
		case k == "name":
			rep.Entries = append(rep.Entries, Entry{Key: "name", Status: Approximated, Target: "app names", Warning: "the project name prefixes the app names"})
		case k == "include":
			rep.Entries = append(rep.Entries, Entry{Key: "include", Status: Mapped, Target: "(resolved)", Warning: ""})
		case k == "networks":
			rep.Entries = append(rep.Entries, Entry{Key: "networks", Status: Approximated, Target: "private network", Warning: "all apps of an organization share one private network (<app>.internal); separate compose networks do not isolate apps from each other"})
		case k == "volumes":
			rep.Entries = append(rep.Entries, Entry{Key: "volumes", Status: Approximated, Target: "[[mounts]]", Warning: "named volumes become volumes created with `hangar volumes create`; drivers, driver_opts and external volumes are not kept, and data is not copied"})
		case k == "secrets", k == "configs":
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Approximated, Target: "[[files]]", Warning: "see each service's " + k})
		case k == "services":
		case strings.HasPrefix(k, "x-"):
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Mapped, Target: "(extension fields, resolved into services)"})
		default:
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Unsupported, Warning: "no equivalent; ignored"})
		}
	}
	if fallback != "" {
		rep.Notes = append(rep.Notes, fallback)
	}
	rep.Notes = append(rep.Notes, missing...)
	for _, name := range sortedKeys(proj.DisabledServices) {
		rep.Entries = append(rep.Entries, Entry{Key: "services." + name, Status: Unsupported, Warning: fmt.Sprintf("service is in profile(s) %s, which are not enabled: skipped (use --profile to include it)", strings.Join(proj.DisabledServices[name].Profiles, ", "))})
	}
	names := sortedKeys(proj.Services)
	// Log routers (fluent-bit, fluentd, Vector, Promtail...) are sidecars,
	// not apps, as in every other format.
	for _, n := range names {
		if s := proj.Services[n]; s.Build == nil && isLogRouter(s.Image) && len(names) > 1 {
			rep.Entries = append(rep.Entries, Entry{Key: "services." + n, Status: Unsupported, Warning: fmt.Sprintf("%s (%s) is not made an app: %s", n, s.Image, logRouterRole)})
			delete(proj.Services, n)
		}
	}
	names = sortedKeys(proj.Services)
	if len(names) == 0 {
		var profiles []string
		for _, s := range proj.DisabledServices {
			profiles = append(profiles, s.Profiles...)
		}
		if len(profiles) > 0 {
			return nil, inputErr(files[0].Filename, "pass --profile with one of the profiles the file uses: "+strings.Join(uniqueSorted(profiles), ", "), "no service of the compose file is in profile(s) %s", strings.Join(opts.Profiles, ", "))
		}
		return nil, inputErr(files[0].Filename, "add a service to the compose file", "the compose file defines no service")
	}
	units := make([]*composeUnit, 0, len(names))
	hosts := map[string]string{}
	used := map[string]bool{}
	// Services that run the same image with the same environment become
	// process groups of one app, as long as at most one publishes ports.
	groups := map[string][]string{}
	var order []string
	for _, n := range names {
		s := proj.Services[n]
		db := dbKind(s.Image)
		if s.Build != nil {
			db = ""
		}
		key := shareKey(s, db)
		if key == "" {
			key = "\x00" + n
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], n)
	}
	var split []string
	for _, key := range order {
		members := groups[key]
		published := 0
		for _, m := range members {
			if len(proj.Services[m].Ports) > 0 {
				published++
			}
		}
		if published > 1 {
			// Two public services: keep separate apps.
			for _, m := range members {
				groups["\x00"+m] = []string{m}
				split = append(split, "\x00"+m)
			}
			delete(groups, key)
			continue
		}
		split = append(split, key)
	}
	apps := len(split)
	for _, key := range split {
		members := groups[key]
		primary := members[0]
		for _, m := range members {
			if len(proj.Services[m].Ports) > 0 {
				primary = m
			}
		}
		app := uniqueName(used, nameFor(opts, proj.Name, primary, apps > 1))
		for _, n := range members {
			s := proj.Services[n]
			u := &composeUnit{svc: s, app: app, db: dbKind(s.Image)}
			if s.Build != nil {
				u.db = ""
			}
			if len(members) > 1 {
				u.group = processName(n)
			}
			units = append(units, u)
		}
	}
	owner := map[string]string{} // host name -> service it names
	for _, u := range units {
		s := u.svc
		addr := u.app + ".internal"
		if u.group != "" {
			// Fly's DNS name of one process group's machines.
			addr = u.group + ".process." + u.app + ".internal"
		}
		set := func(h string) {
			if h != "" {
				hosts[h] = addr
				owner[h] = s.Name
			}
		}
		set(s.Name)
		set(s.ContainerName)
		set(s.Hostname)
		for _, nw := range s.Networks {
			if nw != nil {
				for _, a := range nw.Aliases {
					set(a)
				}
			}
		}
	}
	// links: "service:alias" names the service alias inside the linking one.
	for _, n := range names {
		for _, l := range proj.Services[n].Links {
			if svc, alias, ok := strings.Cut(l, ":"); ok {
				if addr, known := hosts[svc]; known {
					if _, taken := hosts[alias]; !taken {
						hosts[alias] = addr
						owner[alias] = svc
					}
				}
			}
		}
	}
	byService := map[string]*composeUnit{}
	for _, u := range units {
		byService[u.svc.Name] = u
	}
	builders := map[string]*builder{}
	var appOrder []string
	for _, u := range units {
		others := map[string]string{}
		for h, a := range hosts {
			if owner[h] != u.svc.Name {
				others[h] = a
			}
		}
		b, ok := builders[u.app]
		if !ok {
			b = newBuilder(rep, opts, u.app, "service "+u.svc.Name)
			builders[u.app] = b
			appOrder = append(appOrder, u.app)
		} else {
			b.app.From += ", " + u.svc.Name
		}
		b.self = []string{u.svc.Name}
		for h, svc := range owner {
			if svc == u.svc.Name && h != u.svc.Name {
				b.self = append(b.self, h)
			}
		}
		sort.Strings(b.self)
		if u.group != "" {
			b.approx("services."+u.svc.Name, "[processes] "+u.group, "runs as process group %s of app %s: same image and environment as the app's other services", u.group, u.app)
		}
		convertComposeService(b, proj, dir, u, others, byService)
	}
	sort.Strings(appOrder)
	for _, a := range appOrder {
		res.Apps = append(res.Apps, builders[a].flush())
	}
	return res, nil
}

var processNameBad = regexp.MustCompile(`[^a-z0-9_]+`)

// processName makes a process group name from a service name.
func processName(s string) string {
	n := strings.Trim(processNameBad.ReplaceAllString(strings.ToLower(s), "_"), "_")
	if n == "" {
		return "app"
	}
	return n
}

// checkImages refuses an image reference that interpolation of an unset
// variable broke (n8nio/n8n:${N8N_VERSION} becoming n8nio/n8n:): the
// import would otherwise write an image that cannot be pulled.
func checkImages(files []ctypes.ConfigFile, proj *ctypes.Project, unset map[string]bool) error {
	raw := map[string]string{} // service -> image as written
	file := map[string]string{}
	for _, f := range files {
		var top struct {
			Services map[string]struct {
				Image any `yaml:"image"`
			} `yaml:"services"`
		}
		if yaml.Unmarshal(f.Content, &top) != nil {
			continue
		}
		for n, s := range top.Services {
			if img, ok := s.Image.(string); ok {
				raw[n], file[n] = img, f.Filename
			}
		}
	}
	for _, n := range sortedKeys(proj.Services) {
		img := proj.Services[n].Image
		written, ok := raw[n]
		if !ok || !strings.Contains(written, "$") {
			continue
		}
		var culprits []string
		for _, m := range varRefRE.FindAllStringSubmatch(written, -1) {
			v, mod := m[1]+m[3], m[2]
			if unset[v] && !strings.HasPrefix(mod, ":-") && !strings.HasPrefix(mod, "-") {
				culprits = append(culprits, v)
			}
		}
		if len(culprits) == 0 {
			continue
		}
		if why := badImageRef(img); why != "" || proj.Services[n].Build == nil && img == "" {
			if why == "" {
				why = "it is empty"
			}
			return inputErr(file[n], fmt.Sprintf("set %s in a .env file next to the compose file (or give a default: ${%s:-VALUE}), then import again", strings.Join(culprits, ", "), culprits[0]),
				"service %s: image %q became %q because variable %s is not set, and %s", n, written, img, strings.Join(culprits, ", "), why)
		}
	}
	return nil
}

// badImageRef says why an image reference cannot be pulled, or "".
func badImageRef(ref string) string {
	switch {
	case ref == "":
		return ""
	case strings.HasSuffix(ref, ":"):
		return "it ends in ':' (an empty tag)"
	case strings.HasSuffix(ref, "@"):
		return "it ends in '@' (an empty digest)"
	case strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, ":") || strings.Contains(ref, "//") || strings.Contains(ref, ":@") || strings.Contains(ref, "/:"):
		return "a part of the name is empty"
	case strings.ContainsAny(ref, " \t"):
		return "it contains a space"
	}
	return ""
}
