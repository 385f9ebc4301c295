package main

import (
	"context"
	"strings"
	"testing"
)

// Bad input gets a clear error and exit code 2, before any board starts.
func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no image", []string{}, "give -image NAME or -manifest FILE"},
		{"both image and manifest", []string{"-image", "a", "-manifest", "b"}, "not both"},
		{"bad mix", []string{"-image", "a", "-mix", "fast=10"}, `unknown scenario "fast"`},
		{"bad serial base", []string{"-image", "a", "-serial-base", "xyz"}, "want 16 hex digits"},
		{"bad size", []string{"-image", "a", "-card-size", "lots"}, `"lots" is not a size`},
		{"missing manifest", []string{"-manifest", "/nonexistent/x.manifest.json"}, "no such file"},
		{"stray argument", []string{"-image", "a", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := run(context.Background(), tt.args, &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tt.args, code, errb.String(), tt.want)
			}
		})
	}
}

func TestByteFlag(t *testing.T) {
	tests := map[string]int64{"4096": 4096, "6MB": 6e6, "4MiB": 4 << 20, "1.5GiB": 3 << 29, "512K": 512 << 10, "2 KB": 2000}
	for in, want := range tests {
		var b byteFlag
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "ten"} {
		var b byteFlag
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
