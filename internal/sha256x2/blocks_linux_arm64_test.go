//go:build !purego

package sha256x2

import (
	"encoding/binary"
	"os"
	"testing"
)

// TestKernelWhereSHA2 pins the feature check: where the kernel tells this process
// (AT_HWCAP in /proc/self/auxv, bit HWCAP_SHA2 of Linux's arch/arm64 uapi hwcap.h) that
// the CPU has the SHA-256 instructions, the two-lane kernel is on, so the agent and
// pack pair their hashes on a Raspberry Pi 5 (and under qemu-aarch64, whose default
// CPU has them too).
func TestKernelWhereSHA2(t *testing.T) {
	const atHWCAP, hwcapSHA2 = 16, 1 << 6
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		t.Fatalf("read auxv: %v", err)
	}
	var hwcap uint64
	found := false
	for ; len(auxv) >= 16; auxv = auxv[16:] {
		if binary.LittleEndian.Uint64(auxv) == atHWCAP {
			hwcap, found = binary.LittleEndian.Uint64(auxv[8:]), true
			break
		}
	}
	if !found {
		t.Fatal("no AT_HWCAP in /proc/self/auxv")
	}
	if sha2 := hwcap&hwcapSHA2 != 0; sha2 != useKernel || TwoLanes() != sha2 {
		t.Errorf("HWCAP_SHA2 %v but kernel on %v, TwoLanes %v", sha2, useKernel, TwoLanes())
	}
	t.Logf("HWCAP %#x: two-lane kernel %v", hwcap, useKernel)
}
