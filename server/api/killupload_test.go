package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

type uploadState struct {
	State  string `json:"state"`
	Offset int64  `json:"offset"`
}

// TestUploadKilledAfterLastByte pins the finding of issue 13 that an upload whose
// server was SIGKILLed after the last byte arrived and before the image was checked
// stayed "uploading 100 %" for ever (nothing more to send, nothing to finish it). The
// real binary is killed while the .part file is complete and not yet renamed; on
// restart the upload is checked against its manifest and becomes ready with the right
// bytes. A complete .part whose bytes do not match is discarded instead.
func TestUploadKilledAfterLastByte(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Process: true}) // SIGKILLed
	ctx := context.Background()
	// Big enough that hashing it at the end takes a moment to catch.
	path := servertest.PackedImage(t, t.TempDir(), "killed-at-end", 48<<20, 4<<20)
	m, err := manifest.Load(manifest.PathFor(path))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(srv.DataDir, "images", m.Name+".img.zst.part")
	final := filepath.Join(srv.DataDir, "images", m.Name+".img.zst")

	caught := false
	for attempt := 0; attempt < 5 && !caught; attempt++ {
		if code, body := putManifest(t, srv, path); code != 200 {
			t.Fatalf("manifest: %d %v", code, body)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/images/"+m.Name+"/data", bytes.NewReader(data))
			req.Header.Set("Authorization", "Bearer "+srv.Token)
			req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
			if resp, err := http.DefaultClient.Do(req); err == nil { // else: cut by the kill
				resp.Body.Close()
			}
		}()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
			if fi, err := os.Stat(part); err == nil && fi.Size() == m.CompressedSize {
				srv.Kill()
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		<-done
		_, err := os.Stat(final)
		caught = errors.Is(err, os.ErrNotExist)
		srv.Restart(t)
		if !caught {
			t.Logf("attempt %d: the upload finished before the kill; again", attempt)
			if err := srv.Do(ctx, http.MethodDelete, "/api/v1/images/"+m.Name, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !caught {
		t.Fatal("could not kill the server between the last byte and the check in 5 attempts")
	}
	var st uploadState
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/images/"+m.Name+"/upload", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "ready" || st.Offset != m.CompressedSize {
		t.Fatalf("after the restart: %+v, want ready at %d", st, m.CompressedSize)
	}
	resp, err := http.Get(srv.URL + "/images/" + m.Name + ".img.zst")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("download after the restart: HTTP %d, %d bytes, equal %v", resp.StatusCode, len(got), bytes.Equal(got, data))
	}

	// A complete .part with a wrong last byte (the bytes on disk are what is checked,
	// not what the request said) is discarded at the restart, not made ready.
	if err := srv.Do(ctx, http.MethodDelete, "/api/v1/images/"+m.Name, nil, nil); err != nil {
		t.Fatal(err)
	}
	if code, body := putManifest(t, srv, path); code != 200 {
		t.Fatalf("manifest: %d %v", code, body)
	}
	if code, body := putRange(t, srv, m.Name, data[:len(data)-1], 0, m.CompressedSize); code != 200 {
		t.Fatalf("all but the last byte: %d %s", code, body)
	}
	srv.Kill()
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{data[len(data)-1] ^ 0xff})
	f.Close()
	srv.Restart(t)
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/images/"+m.Name+"/upload", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "uploading" || st.Offset != 0 {
		t.Errorf("a complete .part with a wrong byte after the restart: %+v, want uploading at 0", st)
	}
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the wrong bytes became %s: %v", final, err)
	}
}
