package profile

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strconv"
	"strings"
)

// cryptAlphabet is crypt(3)'s base-64 alphabet.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Default and limits of the SHA-crypt rounds (Ulrich Drepper, "Unix crypt using
// SHA-256 and SHA-512", the specification glibc, openssl passwd and mkpasswd follow).
const (
	defaultRounds = 5000
	minRounds     = 1000
	maxRounds     = 999999999
	maxSaltLen    = 16
)

// sha512Order and sha256Order are the specification's byte order of the final
// digest in the encoded hash: groups of three bytes, each written as four
// characters (the last group is shorter).
var (
	sha512Order = [][]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26},
		{6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54},
		{34, 55, 13}, {56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19},
		{62, 20, 41}, {-1, -1, 63}}
	sha256Order = [][]int{{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14}, {15, 25, 5},
		{6, 16, 26}, {27, 7, 17}, {18, 28, 8}, {9, 19, 29}, {-1, 31, 30}}
)

// HashPassword returns the SHA-512 crypt ("$6$", 5000 rounds) of password with a
// fresh 16-character salt: what `openssl passwd -6` or `mkpasswd -m sha-512` make, and
// what Debian's chpasswd -e, cloud-init's passwd and userconf accept.
func HashPassword(password string) (string, error) {
	salt := make([]byte, maxSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	for i, b := range salt {
		salt[i] = cryptAlphabet[int(b)%len(cryptAlphabet)]
	}
	return Crypt(password, "$6$"+string(salt))
}

// ErrSetting is wrapped by Crypt for a setting it does not know.
var ErrSetting = errors.New("unsupported crypt setting")

var settingRE = regexp.MustCompile(`^\$([56])\$(rounds=([0-9]+)\$)?([^$]*)`)

// Crypt hashes password with SHA-crypt as setting says: "$5$" (SHA-256) or "$6$"
// (SHA-512), an optional "rounds=N$" and the salt (at most 16 characters are used; a
// trailing "$hash" is ignored, so a stored hash is its own setting for a check).
func Crypt(password, setting string) (string, error) {
	m := settingRE.FindStringSubmatch(setting)
	if m == nil {
		return "", fmt.Errorf("%w: %q", ErrSetting, setting)
	}
	newHash, order := sha512.New, sha512Order
	if m[1] == "5" {
		newHash, order = sha256.New, sha256Order
	}
	rounds, custom := defaultRounds, false
	if m[2] != "" {
		n, err := strconv.Atoi(m[3])
		if err != nil {
			n = maxRounds
		}
		rounds, custom = min(max(n, minRounds), maxRounds), true
	}
	salt := m[4]
	if len(salt) > maxSaltLen {
		salt = salt[:maxSaltLen]
	}
	sum := shaCrypt(newHash, []byte(password), []byte(salt), rounds)
	var b strings.Builder
	b.WriteString("$" + m[1] + "$")
	if custom {
		fmt.Fprintf(&b, "rounds=%d$", rounds)
	}
	b.WriteString(salt + "$")
	for _, g := range order {
		var w uint32
		n := 4
		for _, i := range g {
			w <<= 8
			if i >= 0 {
				w |= uint32(sum[i])
			}
		}
		switch {
		case g[0] < 0 && g[1] < 0:
			n = 2
		case g[0] < 0:
			n = 3
		}
		for range n {
			b.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	return b.String(), nil
}

// shaCrypt is steps 1–21 of the specification: the digest after rounds rounds.
func shaCrypt(newHash func() hash.Hash, p, s []byte, rounds int) []byte {
	b := newHash()
	b.Write(p)
	b.Write(s)
	b.Write(p)
	sumB := b.Sum(nil)
	size := len(sumB)

	a := newHash()
	a.Write(p)
	a.Write(s)
	for n := len(p); n > 0; n -= size {
		a.Write(sumB[:min(n, size)])
	}
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(p)
		}
	}
	sumA := a.Sum(nil)

	dp := newHash()
	for range len(p) {
		dp.Write(p)
	}
	pBytes := repeat(dp.Sum(nil), len(p))

	ds := newHash()
	for range 16 + int(sumA[0]) {
		ds.Write(s)
	}
	sBytes := repeat(ds.Sum(nil), len(s))

	c := sumA
	for i := range rounds {
		h := newHash()
		if i&1 != 0 {
			h.Write(pBytes)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sBytes)
		}
		if i%7 != 0 {
			h.Write(pBytes)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pBytes)
		}
		c = h.Sum(nil)
	}
	return c
}

// repeat is digest repeated (and cut) to n bytes.
func repeat(digest []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, digest[:min(n-len(out), len(digest))]...)
	}
	return out
}

// hashRE matches the crypt(3) hashes a profile accepts ready-made: SHA-256 and
// SHA-512 crypt (with optional rounds) and yescrypt, Debian's default since bullseye.
var hashRE = regexp.MustCompile(`^(\$[56]\$(rounds=[0-9]+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43,86}|\$y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{1,86}\$[./0-9A-Za-z]{43})$`)

// ValidHash reports whether h looks like a SHA-crypt or yescrypt hash.
func ValidHash(h string) bool {
	if !hashRE.MatchString(h) {
		return false
	}
	switch {
	case strings.HasPrefix(h, "$5$"):
		return len(h[strings.LastIndexByte(h, '$')+1:]) == 43
	case strings.HasPrefix(h, "$6$"):
		return len(h[strings.LastIndexByte(h, '$')+1:]) == 86
	}
	return true
}
