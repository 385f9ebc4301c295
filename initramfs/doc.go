// Package initramfs holds the u-root initramfs that a Raspberry Pi 5 netboots into:
// u-root's init, rpi-agent as uinit (`rpi-agent --uinit`, see agent/initenv), a rescue
// shell with a few u-root tools, and the kernel modules the board's kernel needs.
//
// cmd/mkinitramfs builds it (`make initramfs`), kmod picks the modules, and the tests
// here open the built archive and check it. docs/initramfs.md describes the whole.
package initramfs

// Commands lists the u-root commands built into the initramfs besides init and the
// agent: gosh is the rescue shell, the others are what a technician needs to look
// around (disks, mounts, network, kernel log, reboot). tools.go imports each of them so
// that go.sum holds what the build needs. Each costs bytes fetched over lock-step TFTP:
// wget, ping, dhclient, insmod and kill together added 2.8 MB to the cpio (1 MB
// gzipped), so they are left out (the agent does DHCP and module loading itself).
var Commands = []string{
	"gosh",
	"cat", "cp", "dd", "df", "dmesg", "echo", "free", "grep", "hexdump", "ip", "ls",
	"lsmod", "mkdir", "mount", "mv", "poweroff", "ps", "rm", "shutdown", "sleep", "sync",
	"umount", "uname",
}

// QEMUModules are the modules the QEMU virt machine needs from Debian's arm64 kernel
// (virtio PCI transport, network, disk, entropy); their dependencies come along.
var QEMUModules = []string{"virtio_pci", "virtio_net", "virtio_blk", "virtio_rng"}

// PiModules are the Raspberry Pi 5 drivers the agent needs when the Pi kernel builds
// them as modules (PCIe to the RP1 south bridge, RP1 itself, its Cadence GEM Ethernet,
// the SD host, MMC block devices, packet sockets for DHCP). They are optional: what the
// kernel builds in, or does not have, is skipped. Not checked on hardware here.
var PiModules = []string{"pcie_brcmstb", "rp1", "macb", "sdhci_brcmstb", "mmc_block", "af_packet"}
