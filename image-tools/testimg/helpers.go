package testimg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// Tool runs an outside tool (looked up in PATH, /usr/sbin and /sbin) with
// LC_ALL=C.UTF-8 and MTOOLS_SKIP_CHECK=1 and returns its stdout; the error carries
// its stderr.
func Tool(ctx context.Context, name string, args ...string) ([]byte, error) {
	return run(ctx, nil, name, args...)
}

// MustTool is Tool for tests: a failure ends the test with the tool's output.
func MustTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Tool(context.Background(), name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// SHA256 is the hex SHA256 of b, as Info.Files records it.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
