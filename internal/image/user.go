package image

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// User is the identity a machine's process runs as, resolved in its image.
type User struct {
	UID, GID uint32
	Home     string // from /etc/passwd; "/" when unknown
}

// LookupUser resolves an image's Config.User ("", "name", "uid",
// "name:group", "uid:gid", ...) against the image's /etc/passwd and
// /etc/group, read through an os.Root so a hostile image's symlinks cannot
// make the host read its own files. "" is root. A numeric uid or gid not in
// the files is used as it is, as Docker does.
func LookupUser(rootfs, user string) (User, error) {
	u := User{Home: "/"}
	if user == "" {
		u.Home = "/root"
		return u, nil
	}
	name, group, hasGroup := strings.Cut(user, ":")
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return u, fmt.Errorf("user %q: %w", user, err)
	}
	defer root.Close()
	passwd := readIDFile(root, "etc/passwd")
	groups := readIDFile(root, "etc/group")

	found := false
	for _, f := range passwd {
		if len(f) < 6 {
			continue
		}
		if f[0] == name || f[2] == name {
			uid, err1 := strconv.ParseUint(f[2], 10, 32)
			gid, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 != nil || err2 != nil {
				continue
			}
			u.UID, u.GID, u.Home, found = uint32(uid), uint32(gid), f[5], true
			break
		}
	}
	if !found {
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return u, fmt.Errorf("user %q: no such user in the image's /etc/passwd; use a numeric uid or add the user in the image", name)
		}
		u.UID, u.GID = uint32(n), uint32(n)
	}
	if u.Home == "" {
		u.Home = "/"
	}
	if !hasGroup {
		return u, nil
	}
	for _, f := range groups {
		if len(f) >= 3 && (f[0] == group || f[2] == group) {
			if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				u.GID = uint32(gid)
				return u, nil
			}
		}
	}
	gid, err := strconv.ParseUint(group, 10, 32)
	if err != nil {
		return u, fmt.Errorf("user %q: no such group %q in the image's /etc/group; use a numeric gid", user, group)
	}
	u.GID = uint32(gid)
	return u, nil
}

// readIDFile reads a colon-separated file (passwd, group) of at most 1 MiB;
// a missing or unreadable file reads as empty.
func readIDFile(root *os.Root, name string) [][]string {
	f, err := root.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	var out [][]string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
