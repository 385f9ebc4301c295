package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestPush uploads a packed image to a real rpi-deployd and reads both files back from
// its public image URLs; a second push finds the image already there; a wrong token is
// refused.
func TestPush(t *testing.T) {
	info := image(t, "tiny", testimg.Options{Seed: 5, RootData: -1, RootFree: -1})
	packed, m := packImage(t, info.Path, t.TempDir(), "tiny-push")
	srv := servertest.Start(t, servertest.Options{})
	out := mustCLI(t, "push", "-q", "--server", srv.URL, "--token", srv.Token, packed)
	if !strings.Contains(out, `as "tiny-push"`) {
		t.Errorf("push output %q", out)
	}
	want, _ := os.ReadFile(packed)
	if got := get(t, srv.URL+"/images/tiny-push.img.zst"); !bytes.Equal(got, want) {
		t.Errorf("GET /images/tiny-push.img.zst: %d bytes, differ from the %d pushed", len(got), len(want))
	}
	served, err := manifest.Decode(bytes.NewReader(get(t, srv.URL+"/images/tiny-push.manifest.json")))
	if err != nil || served.SHA256 != m.SHA256 || served.CompressedSHA256 != m.CompressedSHA256 {
		t.Errorf("served manifest: %v, %+v", err, served)
	}
	if _, _, err := cli(t, "push", "-q", "--server", srv.URL, "--token", srv.Token, packed); err != nil {
		t.Errorf("second push: %v", err)
	}
	if _, _, err := cli(t, "push", "-q", "--server", srv.URL, "--token", "wrong", packed); err == nil {
		t.Error("push with a wrong token succeeded")
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return b
}
