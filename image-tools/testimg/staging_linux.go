package testimg

import (
	"os"
	"syscall"
)

// stagingDir picks where the file trees for mkfs are staged: a tmpfs (/dev/shm) when
// it has room for need bytes with plenty to spare, because creating hundreds of small
// files there costs a fraction of what it costs on a busy disk; else fallback.
func stagingDir(need int64, fallback string) string {
	const shm = "/dev/shm"
	var st syscall.Statfs_t
	if err := syscall.Statfs(shm, &st); err != nil || st.Type != 0x01021994 { // TMPFS_MAGIC
		return fallback
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if need > 512<<20 || free < 4*need+256<<20 {
		return fallback
	}
	if f, err := os.CreateTemp(shm, ".testimg-probe-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return shm
	}
	return fallback
}
