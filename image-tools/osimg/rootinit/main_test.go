//go:build linux

package main

import "testing"

func TestParsePartUUID(t *testing.T) {
	for _, tc := range []struct {
		root string
		sig  uint32
		part int
		ok   bool
	}{
		{"PARTUUID=4e2f9a01-02", 0x4e2f9a01, 2, true},
		{"PARTUUID=4E2F9A01-01", 0x4e2f9a01, 1, true},
		{"PARTUUID=4e2f9a01-0a", 0x4e2f9a01, 10, true}, // the kernel prints the number in hex
		{"/dev/vda2", 0, 0, false},
		{"PARTUUID=4e2f9a01", 0, 0, false},
		{"PARTUUID=4e2f9a0-02", 0, 0, false},
		{"PARTUUID=zzzzzzzz-02", 0, 0, false},
		{"PARTUUID=4e2f9a01-00", 0, 0, false},
		{"PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4", 0, 0, false}, // GPT: not ours
	} {
		sig, part, err := parsePartUUID(tc.root)
		if (err == nil) != tc.ok || sig != tc.sig || part != tc.part {
			t.Errorf("parsePartUUID(%q) = %08x, %d, %v; want %08x, %d, ok %v", tc.root, sig, part, err, tc.sig, tc.part, tc.ok)
		}
	}
}
