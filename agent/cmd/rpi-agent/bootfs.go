package main

import (
	"github.com/rpi-deploy/rpi-deploy/agent/firstboot"
	"github.com/rpi-deploy/rpi-deploy/agent/flash"
	"github.com/rpi-deploy/rpi-deploy/image-tools/fat"
)

// bootFS opens the boot partition's FAT (image-tools/fat) for naming.
func bootFS(dev *flash.Device, offset, size int64) (firstboot.FS, error) {
	return fat.Open(dev, offset, size)
}
