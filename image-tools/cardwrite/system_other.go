//go:build !linux

package cardwrite

import (
	"fmt"
	"runtime"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
)

// System is where the package looks at the running system. Outside Linux there is
// nothing to look at: Check refuses every target (the fields exist so that callers
// build everywhere; Linux reads /proc/self/mountinfo, /proc/swaps and /sys).
type System struct {
	MountInfo string
	Swaps     string
	Sys       string
}

// Check refuses: writing cards needs Linux's /proc and /sys to prove that a target is a
// whole, unused card, and its O_EXCL open of block devices.
func (s System) Check(path string) error {
	return fmt.Errorf("%w: %q: writing to a card is supported on Linux only; on %s write the image with Raspberry Pi Imager (\"Use custom\") or balenaEtcher, then check the card with rpi-image verify",
		ErrRefused, path, runtime.GOOS)
}

func (s System) info(path string) (devInfo, error) { return devInfo{}, s.Check(path) }

func openCard(path string) (*blockdev.File, error) { return nil, System{}.Check(path) }

func rereadPartitions(*blockdev.File) {}
