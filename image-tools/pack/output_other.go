//go:build !linux

package pack

import (
	"io"

	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// writeOutput writes the packed file at path with atomicfile.Write (on Linux, with
// O_DIRECT where the file system takes it).
func writeOutput(path string, write func(w io.Writer) error) error {
	return atomicfile.Write(path, write)
}
