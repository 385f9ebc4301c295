//go:build !purego

package sha256x2

import "golang.org/x/sys/cpu"

// useKernel says whether blocks2, pair and triple run the two-lane kernel of the
// Armv8 Cryptography Extension (SHA256H, SHA256H2, SHA256SU0, SHA256SU1; HWCAP
// "sha2"), which the Cortex-A76 of a Raspberry Pi 5 has. Tests turn it off to run the
// other path.
var useKernel = cpu.ARM64.HasSHA2

// The kernels keep each state as the eight words A…H in order, as State.H does (the
// SHA256H operands are ABCD and EFGH, lowest word first), so no reordering is needed.

// blocks2SHA2 runs whole blocks of p through states a and b.
//
//go:noescape
func blocks2SHA2(a, b *[8]uint32, p []byte)

// pairSHA2 runs len(pa) bytes of whole blocks of pa through state a and as many of pb
// through state b. len(pb) must be at least len(pa).
//
//go:noescape
func pairSHA2(a, b *[8]uint32, pa, pb []byte)

// tripleSHA2 runs whole blocks of p through states a and b, and as many bytes of q
// through state c. len(q) must be at least len(p).
//
//go:noescape
func tripleSHA2(a, b *[8]uint32, p []byte, c *[8]uint32, q []byte)

func blocks2(a, b *State, p []byte) {
	if !useKernel {
		blocks2Separate(a, b, p)
		return
	}
	blocks2SHA2(&a.H, &b.H, p)
}

func pair(a, b *State, pa, pb []byte) {
	if !useKernel {
		pairSeparate(a, b, pa, pb)
		return
	}
	pairSHA2(&a.H, &b.H, pa, pb)
}

func triple(a, b *State, p []byte, c *State, q []byte) {
	if !useKernel {
		blocks2Separate(a, b, p)
		blocks1(c, q)
		return
	}
	tripleSHA2(&a.H, &b.H, p, &c.H, q)
}
