package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// fillDisk writes a file into dir until the file system is full but leave bytes (as
// another program on the server filling the disk would) and returns its path.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*st.Bsize - leave
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n <= 0 {
		return p
	}
	buf := bytes.Repeat([]byte{0xa5}, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
		n -= k
	}
	return p
}

func healthz(t *testing.T, srv *servertest.Server) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func putManifest(t *testing.T, srv *servertest.Server, path string) (int, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(manifest.PathFor(path))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".img.zst")
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/images/"+name+"/manifest?allow_no_first_boot=true", bytes.NewReader(raw)) // random data: no first-boot mechanism
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestDiskFull pins the disk-full finding of issue 13 against the real binary on a
// 40 MiB tmpfs: an upload bigger than the disk was accepted, failed with 500 on ENOSPC
// and left its .part behind, after which every database write failed (hello
// included), deleting the image failed (row before files) and /healthz said ok.
// Now: the upload is refused up front with 507 and the sizes; a disk filled by
// something else mid-upload gives 507 and drops the request's bytes; /healthz says
// 503 with the reason while the disk is full; deleting an image works on a full disk
// and frees it; everything recovers once there is room, without a restart.
func TestDiskFull(t *testing.T) {
	data := servertest.SmallDataDir(t, 40<<20)
	srv := servertest.Start(t, servertest.Options{DataDir: data, Args: []string{"--disk-reserve", strconv.Itoa(8 << 20)}})
	ctx := context.Background()
	imgDir := t.TempDir()
	big := servertest.PackedImage(t, imgDir, "too-big", 36<<20, 1<<20) // random: does not compress
	small := testImage(t)
	images := filepath.Join(data, "images")

	// 1. Bigger than the disk less the reserve: 507 with the sizes, nothing kept.
	code, body := putManifest(t, srv, big)
	if code != http.StatusInsufficientStorage || body["needed_bytes"] == nil || body["free_bytes"] == nil ||
		!strings.Contains(body["error"].(string), "not enough free disk space") {
		t.Fatalf("manifest of a 36 MiB image on a 40 MiB disk with 8 MiB reserve: %d %v, want 507 with sizes", code, body)
	}
	if ents, _ := os.ReadDir(images); len(ents) != 0 {
		t.Errorf("refused upload left %s in images/", ents[0].Name())
	}
	var list []map[string]any
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/images", nil, &list); err != nil || len(list) != 0 {
		t.Errorf("images after the refusal: %v %v", list, err)
	}
	hello(t, srv, helloOf(1)) // database writes go on
	if code, body := healthz(t, srv); code != 200 {
		t.Errorf("healthz with room: %d %v", code, body)
	}

	// 2. The disk fills up under an accepted upload: 507, the request's bytes dropped.
	m, err := manifest.Load(manifest.PathFor(small))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := putManifest(t, srv, small); code != 200 {
		t.Fatalf("manifest of the small image: %d %v", code, body)
	}
	filler := fillDisk(t, data, 1<<20)
	packed, _ := os.ReadFile(small)
	code2, body2 := putRange(t, srv, m.Name, packed, 0, m.CompressedSize)
	if code2 != http.StatusInsufficientStorage || !strings.Contains(body2, "not enough free disk space") {
		t.Errorf("upload onto a filled disk: %d %s, want 507", code2, body2)
	}
	if fi, err := os.Stat(filepath.Join(images, m.Name+".img.zst.part")); err != nil || fi.Size() != 0 {
		t.Errorf(".part after the refused bytes: %v %v, want 0 bytes", fi, err)
	}

	// 3. While the disk is full, /healthz says so.
	fillDisk(t, data, 0)
	code, body = healthz(t, srv)
	if code != http.StatusServiceUnavailable || !strings.Contains(body["error"].(string), "full") {
		t.Errorf("healthz on a full disk: %d %v, want 503 naming the full disk", code, body)
	}

	// 4. Recovery: room again, and the same upload resumes to ready; then the disk
	// fills again and the image is deleted on the full disk, which frees it.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, body := healthz(t, srv); code != 200 {
		t.Errorf("healthz after space came back: %d %v", code, body)
	}
	if err := push.Push(ctx, push.Options{Server: srv.URL, Token: srv.Token, Image: small, AllowNoFirstBoot: true}); err != nil {
		t.Fatalf("push after space came back: %v", err)
	}
	filler = fillDisk(t, data, 0)
	// Database writes on the full disk: some may still fit in the WAL; the first that
	// does not must show on /healthz.
	failed := false
	for i := 2; i < 200 && !failed; i++ {
		code, _, err := postJSON(t, srv.URL+"/api/v1/agent/hello", helloOf(i), nil)
		failed = err == nil && code == 500
	}
	t.Logf("a database write failed on the full disk: %v", failed)
	if failed {
		if code, body := healthz(t, srv); code != 503 || !strings.Contains(body["error"].(string), "full") {
			t.Errorf("healthz after a failed write: %d %v", code, body)
		}
	}
	if err := srv.Do(ctx, http.MethodDelete, "/api/v1/images/"+m.Name, nil, nil); err != nil {
		t.Fatalf("delete the image on a full disk: %v", err)
	}
	for _, f := range []string{m.Name + ".img.zst", m.Name + ".manifest.json"} {
		if _, err := os.Stat(filepath.Join(images, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after delete: %v", f, err)
		}
	}
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/images/"+m.Name, nil, nil); statusOf(err) != 404 {
		t.Errorf("image after delete: %v, want 404", err)
	}
	os.Remove(filler)
	if code, body := healthz(t, srv); code != 200 {
		t.Errorf("healthz after the disk was freed: %d %v", code, body)
	}
	hello(t, srv, helloOf(500))
	if err := push.Push(ctx, push.Options{Server: srv.URL, Token: srv.Token, Image: small, AllowNoFirstBoot: true}); err != nil {
		t.Errorf("push after recovery: %v", err)
	}
}
