package api_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestDataFileModes pins the finding of issue 13 that the database was 0644: the
// real binary creates the data directory 0700 and the database, its WAL files and the
// image files 0600, and tightens those of an older version (0755/0644) on start.
func TestDataFileModes(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	if err := push.Push(context.Background(), push.Options{Server: srv.URL, Token: srv.Token, Image: testImage(t), AllowNoFirstBoot: true}); err != nil {
		t.Fatal(err)
	}
	hello(t, srv, helloOf(1)) // a write: the WAL files exist
	check := func(when string) {
		t.Helper()
		n := 0
		filepath.WalkDir(srv.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := d.Info()
			want := os.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s has mode %v, want %v", when, p, fi.Mode().Perm(), want)
			}
			n++
			return nil
		})
		if n < 6 { // dir, db, -wal, -shm, images/, image, manifest
			t.Errorf("%s: only %d entries in the data directory", when, n)
		}
	}
	check("fresh")
	srv.Stop()
	filepath.WalkDir(srv.DataDir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
	srv.Restart(t)
	check("after a restart over 0755/0644 files")
}
