package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

func putRange(t *testing.T, srv *servertest.Server, name string, data []byte, start, total int64) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/images/"+name+"/data", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+int64(len(data))-1, total))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestImageUploadResumeAndDownload: an upload interrupted half-way survives a SIGKILL
// of the server and push resumes it; a wrong offset gets 409; the image is served
// with Range and HEAD; bytes that do not match the manifest are refused (422) and
// the image never becomes ready.
func TestImageUploadResumeAndDownload(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Process: true}) // SIGKILLed mid-upload
	ctx := context.Background()
	path := testImage(t)
	m, err := manifest.Load(manifest.PathFor(path))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(manifest.PathFor(path))
	// A manifest under another name, or a broken one, is refused and registers nothing.
	for url, body := range map[string][]byte{"other-name": raw, m.Name: raw[:len(raw)/2]} {
		if err := srv.Do(ctx, http.MethodPut, "/api/v1/images/"+url+"/manifest", bytes.NewReader(body), nil); statusOf(err) != 400 {
			t.Errorf("manifest to %s: %v, want 400", url, err)
		}
	}
	// The test image is raw data: no first-boot mechanism. Without the override it is
	// refused (400) with a message that names it and the override.
	err = srv.Do(ctx, http.MethodPut, "/api/v1/images/"+m.Name+"/manifest", bytes.NewReader(raw), nil)
	if statusOf(err) != 400 || !strings.Contains(err.Error(), `image "`+m.Name+`" has no first-boot mechanism`) ||
		!strings.Contains(err.Error(), "allow_no_first_boot=true") {
		t.Errorf("manifest without a first-boot mechanism: %v, want 400 naming the image and the override", err)
	}
	var list []map[string]any
	if srv.Do(ctx, http.MethodGet, "/api/v1/images", nil, &list); len(list) != 0 {
		t.Errorf("refused manifests left images: %v", list)
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/images/"+m.Name+"/manifest?allow_no_first_boot=true", bytes.NewReader(raw), nil); err != nil {
		t.Fatal(err)
	}
	half := int64(len(data) / 2)
	if code, body := putRange(t, srv, m.Name, data[:half], 0, m.CompressedSize); code != 200 {
		t.Fatalf("first half: %d %s", code, body)
	}
	if code, body := putRange(t, srv, m.Name, data[10:20], 10, m.CompressedSize); code != 409 || !strings.Contains(body, fmt.Sprintf(`"offset":%d`, half)) {
		t.Errorf("wrong offset: %d %s", code, body)
	}
	// Not ready yet: not downloadable, not deployable.
	if resp, err := http.Get(srv.URL + "/images/" + m.Name + ".img.zst"); err != nil || resp.StatusCode != 404 {
		t.Errorf("download of a partial upload: %v %v", resp.StatusCode, err)
	}
	srv.Kill()
	srv.Restart(t)
	var prog bytes.Buffer
	if err := push.Push(ctx, push.Options{Server: srv.URL, Token: srv.Token, Image: path, Progress: &prog, AllowNoFirstBoot: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prog.String(), "ready") {
		t.Errorf("progress output: %q", prog.String())
	}
	var st struct {
		State  string `json:"state"`
		Offset int64  `json:"offset"`
	}
	srv.Do(ctx, http.MethodGet, "/api/v1/images/"+m.Name+"/upload", nil, &st)
	if st.State != "ready" || st.Offset != m.CompressedSize {
		t.Errorf("after push: %+v", st)
	}
	// Pushing again is a no-op.
	if err := push.Push(ctx, push.Options{Server: srv.URL, Token: srv.Token, Image: path, AllowNoFirstBoot: true}); err != nil {
		t.Errorf("second push: %v", err)
	}

	// Download: whole, Range, HEAD, manifest.
	resp, err := http.Get(srv.URL + "/images/" + m.Name + ".img.zst")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("download: HTTP %d, %d bytes, equal %v", resp.StatusCode, len(got), bytes.Equal(got, data))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/images/"+m.Name+".img.zst", nil)
	f := m.Chunks[1]
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", f.Frame, f.Frame+f.FrameSize-1))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(got, data[f.Frame:f.Frame+f.FrameSize]) {
		t.Errorf("range: HTTP %d, %d bytes", resp.StatusCode, len(got))
	}
	resp, err = http.Head(srv.URL + "/images/" + m.Name + ".img.zst")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != m.CompressedSize || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: %d length %d ranges %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Accept-Ranges"))
	}
	resp, err = http.Get(srv.URL + "/images/" + m.Name + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	gm, err := manifest.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || gm.SHA256 != m.SHA256 {
		t.Errorf("manifest download: %v", err)
	}
	for _, p := range []string{"/images/../rpi-deployd.db", "/images/x.img.zst", "/images/Bad Name.img.zst", "/images/" + m.Name + ".img.zst.part"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("GET %s: HTTP %d, want 404", p, resp.StatusCode)
		}
	}

	// Corrupted bytes: the same manifest under another name with flipped data.
	var bm manifest.Manifest = *m
	bm.Name = "corrupt"
	var mb bytes.Buffer
	bm.Encode(&mb)
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/images/corrupt/manifest?allow_no_first_boot=true", bytes.NewReader(mb.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[len(bad)/3] ^= 0xff
	if code, body := putRange(t, srv, "corrupt", bad, 0, m.CompressedSize); code != 422 {
		t.Errorf("corrupt upload: %d %s, want 422", code, body)
	}
	srv.Do(ctx, http.MethodGet, "/api/v1/images/corrupt/upload", nil, &st)
	if st.State != "uploading" || st.Offset != 0 {
		t.Errorf("after corrupt upload: %+v", st)
	}
	// Too many bytes are refused too.
	if code, _ := putRange(t, srv, "corrupt", append(bytes.Clone(data), 1, 2, 3), 0, m.CompressedSize); code != 400 {
		t.Errorf("oversized upload: %d, want 400", code)
	}
}

// TestEventStream reads the SSE stream of a real server: a hello shows up as a
// deployment.created event carrying the deployment, and the fleet snapshot's seq lets
// a client resume.
func TestEventStream(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 5, Image: testImage(t)})
	var fleet struct {
		Seq int64 `json:"seq"`
	}
	if err := srv.Do(context.Background(), http.MethodGet, "/api/v1/fleet", nil, &fleet); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/events?after=%d", srv.URL, fleet.Seq), nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	r := hello(t, srv, helloOf(42))
	if r.Action != agentapi.ActionDeploy {
		t.Fatalf("hello: %+v", r)
	}
	sc := bufio.NewScanner(resp.Body)
	var ev string
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			ev = e
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok && ev == "deployment.created" {
			if !strings.Contains(d, `"hostname":"RXP2-ARIA-AB00002A"`) || !strings.Contains(d, `"type":"deployment.created"`) {
				t.Errorf("event data: %s", d)
			}
			return
		}
	}
	t.Fatalf("stream ended without deployment.created: %v", sc.Err())
}
