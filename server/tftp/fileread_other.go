//go:build !linux

package tftp

import (
	"bufio"
	"os"
)

// filePiece is how much of a boot file one read takes (fileread_linux.go).
const filePiece = 64 << 10

// newFileReader reads f in filePiece pieces (Linux has raw reads from the page cache).
func newFileReader(f *os.File) *bufio.Reader { return bufio.NewReaderSize(f, filePiece) }
