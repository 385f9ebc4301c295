//go:build !linux

package store

import "os"

// syncFile is fsync(2) where fdatasync is not offered.
func syncFile(f *os.File) error { return f.Sync() }
