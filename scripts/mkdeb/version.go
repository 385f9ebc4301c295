package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ErrVersion is wrapped by every version that is not a valid Debian version or
// cannot be turned into one.
var ErrVersion = errors.New("bad version")

var (
	// v1.2.3, v1.2.3-4-gdeadbee (tags of the v-prefixed form; the v is optional).
	describeTag = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.+~]*?)(?:-([0-9]+)-g([0-9a-f]{4,40}))?$`)
	// deadbee: no tag reachable, `git describe --always` printed the abbreviated hash.
	describeHash = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	// Debian Policy 5.6.12: [epoch:]upstream[-revision]; the upstream version starts
	// with a digit; a hyphen is allowed in it only when a revision follows.
	debianVersion  = regexp.MustCompile(`^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	debianRevision = regexp.MustCompile(`^[A-Za-z0-9.+~]+$`)
)

// DebVersion turns the output of `git describe --tags --always --dirty` into a Debian
// version that sorts the way the commits do:
//
//	v1.2.3               1.2.3
//	v1.2.3-4-gdeadbee    1.2.3+git4.deadbee    (after 1.2.3, before 1.2.4)
//	deadbee              0.0~git20261204.deadbee (no tag: the commit's UTC date orders builds)
//
// A -dirty suffix (uncommitted changes) adds ".dirty". commit is the commit's time.
func DebVersion(describe string, commit time.Time) (string, error) {
	d := strings.TrimSpace(describe)
	dirty := strings.HasSuffix(d, "-dirty")
	d = strings.TrimSuffix(d, "-dirty")
	var v string
	switch {
	case describeHash.MatchString(d):
		v = fmt.Sprintf("0.0~git%s.%s", commit.UTC().Format("20060102"), d)
	case describeTag.MatchString(d):
		m := describeTag.FindStringSubmatch(d)
		v = m[1]
		if m[2] != "" {
			v += "+git" + m[2] + "." + m[3]
		}
	default:
		return "", fmt.Errorf("%w: cannot derive a Debian version from %q (not a git describe of a v-tag or a commit); set DEB_VERSION", ErrVersion, describe)
	}
	if dirty {
		v += ".dirty"
	}
	if err := CheckDebVersion(v); err != nil {
		return "", err
	}
	return v, nil
}

// CheckDebVersion reports whether v is a valid Debian version (Debian Policy 5.6.12).
func CheckDebVersion(v string) error {
	if !debianVersion.MatchString(v) {
		return fmt.Errorf("%w: %q is not a Debian version ([epoch:]upstream[-revision], upstream starting with a digit, only A-Za-z0-9.+~-)", ErrVersion, v)
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 && !debianRevision.MatchString(v[i+1:]) {
		return fmt.Errorf("%w: %q has an empty or bad Debian revision", ErrVersion, v)
	}
	return nil
}
