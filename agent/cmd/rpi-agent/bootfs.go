package main

import (
	"errors"

	"github.com/rpi-deploy/rpi-deploy/agent/firstboot"
	"github.com/rpi-deploy/rpi-deploy/agent/flash"
)

// bootFS opens the boot partition's FAT for naming.
func bootFS(dev *flash.Device, offset, size int64) (firstboot.FS, error) {
	return nil, errors.New("FAT support not linked yet")
}
