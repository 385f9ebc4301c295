//go:build !(amd64 || arm64) || purego

package sha256x2

// useKernel is false: there is no two-lane kernel for this build.
var useKernel = false

func blocks2(a, b *State, p []byte) { blocks2Separate(a, b, p) }

func pair(a, b *State, pa, pb []byte) { pairSeparate(a, b, pa, pb) }

func triple(a, b *State, p []byte, c *State, q []byte) {
	blocks2Separate(a, b, p)
	blocks1(c, q)
}
