//go:build !purego

package sha256x2

import "golang.org/x/sys/cpu"

// useKernel says whether blocks2 runs the two-lane SHA-NI kernel: the CPU has the SHA
// extensions (CPUID leaf 7, EBX bit 29) and SSSE3 (PSHUFB, PALIGNR). Tests turn it off
// to run the other path.
var useKernel = cpu.X86.HasSSSE3 && hasSHA()

func hasSHA() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, ebx, _, _ := cpuid(7, 0)
	return ebx&(1<<29) != 0
}

// cpuid executes CPUID with EAX=leaf, ECX=sub.
//
//go:noescape
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// blocks2SHANI runs whole blocks of p through two SHA-256 states in SHA-NI order:
// each [8]uint32 holds the words F,E,B,A,H,G,D,C (the ABEF and CDGH registers).
//
//go:noescape
func blocks2SHANI(a, b *[8]uint32, p []byte)

func blocks2(a, b *State, p []byte) {
	if !useKernel {
		blocks2Separate(a, b, p)
		return
	}
	ra, rb := toSHANI(&a.H), toSHANI(&b.H)
	blocks2SHANI(&ra, &rb, p)
	a.H, b.H = fromSHANI(&ra), fromSHANI(&rb)
}

// toSHANI orders the words A…H as the SHA-NI registers hold them, lowest word first:
// ABEF = (F, E, B, A), CDGH = (H, G, D, C).
func toSHANI(h *[8]uint32) [8]uint32 {
	return [8]uint32{h[5], h[4], h[1], h[0], h[7], h[6], h[3], h[2]}
}

func fromSHANI(r *[8]uint32) [8]uint32 {
	return [8]uint32{r[3], r[2], r[7], r[6], r[1], r[0], r[5], r[4]}
}

// pairSHANI runs len(pa) bytes of whole blocks of pa through state a and as many of pb
// through state b, in SHA-NI order (as blocks2SHANI). len(pb) must be at least len(pa).
//
//go:noescape
func pairSHANI(a, b *[8]uint32, pa, pb []byte)

func pair(a, b *State, pa, pb []byte) {
	if !useKernel {
		pairSeparate(a, b, pa, pb)
		return
	}
	ra, rb := toSHANI(&a.H), toSHANI(&b.H)
	pairSHANI(&ra, &rb, pa, pb)
	a.H, b.H = fromSHANI(&ra), fromSHANI(&rb)
}

// tripleSHANI runs whole blocks of p through states a and b, and as many bytes of q
// through state c, in SHA-NI order (as blocks2SHANI). len(q) must be at least len(p).
//
//go:noescape
func tripleSHANI(a, b *[8]uint32, p []byte, c *[8]uint32, q []byte)

func triple(a, b *State, p []byte, c *State, q []byte) {
	if !useKernel {
		blocks2Separate(a, b, p)
		blocks1(c, q)
		return
	}
	ra, rb, rc := toSHANI(&a.H), toSHANI(&b.H), toSHANI(&c.H)
	tripleSHANI(&ra, &rb, p, &rc, q)
	a.H, b.H, c.H = fromSHANI(&ra), fromSHANI(&rb), fromSHANI(&rc)
}
