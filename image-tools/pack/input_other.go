//go:build !linux

package pack

import "io"

// directInput returns r as it is: reading past the page cache is done on Linux only.
func directInput(r io.ReaderAt) (io.ReaderAt, func() error) {
	return r, func() error { return nil }
}
