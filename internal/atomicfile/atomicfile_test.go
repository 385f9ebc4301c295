package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite: a new file appears whole with mode 0644, and no temporary file is left.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.manifest.json")
	if err := Write(p, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	assertOnly(t, dir, "a.manifest.json")
}

// TestWriteFails: when the writer fails half-way, the old file keeps its bytes, the
// error is the writer's, and the temporary file is gone.
func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.manifest.json")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	err := Write(p, func(w io.Writer) error {
		io.WriteString(w, "half of the new")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("file now holds %q, want the old bytes", got)
	}
	assertOnly(t, dir, "a.manifest.json")
}

// TestWriteNoDir: a missing directory is a clear error and creates nothing.
func TestWriteNoDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "a.json")
	err := Write(p, func(w io.Writer) error { return nil })
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

// TestWriteModePrivate: a key written 0600 is 0600 when it appears, and so was the
// temporary file while it filled (another user never sees the bytes).
func TestWriteModePrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tls.key")
	err := WriteMode(p, 0o600, func(w io.Writer) error {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 {
			t.Fatalf("directory while writing: %v, %v", ents, err)
		}
		st, err := os.Stat(filepath.Join(dir, ents[0].Name()))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("temporary file mode %v, want 0600", st.Mode().Perm())
		}
		_, err = io.WriteString(w, "secret")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	assertOnly(t, dir, "tls.key")
}

// TestWriteBytesReplaces: an existing file is replaced whole, and takes the new mode.
func TestWriteBytesReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tls.crt")
	if err := os.WriteFile(p, []byte("an older and longer certificate"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(p, 0o600, []byte("new")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	assertOnly(t, dir, "tls.crt")
}

// TestCopy: dst gets src's bytes (more than the 1 MiB buffer) with mode 0644; a
// missing src is fs.ErrNotExist and leaves no file behind.
func TestCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "initramfs.src")
	want := make([]byte, 3<<20+17)
	for i := range want {
		want[i] = byte(i * 7)
	}
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	dst := filepath.Join(out, "initramfs")
	if err := Copy(src, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("copy holds %d bytes (%v), want the %d of src", len(got), err, len(want))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	err = Copy(filepath.Join(dir, "missing"), filepath.Join(out, "other"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
	assertOnly(t, out, "initramfs")
}

func assertOnly(t *testing.T, dir string, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only %q", names, name)
	}
}
