// Package e2e boots the real arm64 initramfs in QEMU against rpi-deployd (`make e2e`):
// a virt machine with Debian's arm64 kernel and a virtio disk as the SD card, joined by
// a tap device and a bridge in one network namespace to rpi-deployd, with DHCP in full
// mode, in another. The agent DHCPs (finding the server by option 224), says hello,
// flashes, verifies and names the card, and powers off; the test then checks the card
// image on the host and the server's record. The test is behind the e2e build tag: it
// needs root, the kernel (initramfs/fetch-kernel.sh) and a built initramfs.
package e2e
