//go:build !linux

package tftp

import (
	"bufio"
	"os"
)

// newFileReader reads f in filePiece pieces (Linux has raw reads from the page cache).
func newFileReader(f *os.File) *bufio.Reader { return bufio.NewReaderSize(f, filePiece) }
