package domain

import "syscall"

// freeBytes returns the bytes an unprivileged writer may still use on the file system
// of dir (statfs f_bavail × f_bsize).
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
