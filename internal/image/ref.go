package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// localRegistry is a placeholder registry used only to parse local names
// ("hello:deployment-01J...") with ggcr; it never appears in a stored ref.
const localRegistry = "hangar.invalid"

var digestRE = regexp.MustCompile(`^(sha256:)?([a-f0-9]{12,64})$`)

// isRegistryRef reports whether ref names a registry explicitly: its first
// path component looks like a host ("localhost", contains '.' or ':').
func isRegistryRef(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	if !found {
		return false
	}
	return first == "localhost" || strings.ContainsAny(first, ".:")
}

// normalizeLocalRef validates ref and returns it in the short form used for
// imported and built images: "repo:tag" (tag "latest" when omitted) or
// "repo@sha256:...". A ref with an explicit registry is fully qualified.
func normalizeLocalRef(ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", fmt.Errorf("empty image reference: give a name such as \"myapp:v1\"")
	}
	if isRegistryRef(ref) {
		return normalizeRegistryRef(ref)
	}
	r, err := name.ParseReference(ref, name.WithDefaultRegistry(localRegistry))
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q (use lowercase name[:tag], e.g. \"myapp:v1\"): %w", ref, err)
	}
	switch r := r.(type) {
	case name.Tag:
		return r.RepositoryStr() + ":" + r.TagStr(), nil
	case name.Digest:
		return r.RepositoryStr() + "@" + r.DigestStr(), nil
	}
	return "", fmt.Errorf("invalid image reference %q", ref)
}

// normalizeRegistryRef returns ref fully qualified the way a registry client
// sees it: "index.docker.io/library/alpine:3", "localhost:5000/app:latest".
func normalizeRegistryRef(ref string, opts ...name.Option) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", fmt.Errorf("empty image reference: give a name such as \"registry.example.com/app:v1\"")
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q (expected [registry/]repository[:tag|@digest]): %w", ref, err)
	}
	return r.Name(), nil
}

// parseDigestQuery reports whether s is a digest ("sha256:<hex>") or a hex
// prefix of at least 12 characters, and returns the hex part.
func parseDigestQuery(s string) (hex string, full bool, ok bool) {
	m := digestRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", false, false
	}
	// A bare hex string without "sha256:" could be a local name; only treat it
	// as a digest when it is long enough not to be a plausible name.
	return m[2], len(m[2]) == 64, true
}
