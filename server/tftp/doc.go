// Package tftp is rpi-deployd's read-only TFTP server for the Raspberry Pi 5 EEPROM
// bootloader, on github.com/pin/tftp/v3 v3.1.0 — patched (third_party/pin-tftp, through a replace
// in go.mod) so that its transfers read and write their sockets with raw system calls.
//
// Layout of the root (see docs/netboot.md): the shared boot files at the top
// (kernel_2712.img, bcm2712-rpi-5-b.dtb, overlays/, initramfs_2712, …) and, optionally,
// per-board directories named like the bootloader's TFTP prefix — the low 8 hex digits
// of the serial ("abcd1234/") or the MAC ("dc-a6-32-01-36-c2/"). A request for
// "<prefix>/<file>" is served from the board's directory if the file is there, else
// from the shared root. config.txt and cmdline.txt are generated (per board when the
// request carries a prefix) unless the board's directory holds its own; copies in the
// shared root (the master image's) are never served.
//
// Names are resolved through os.Root: "..", absolute names and symlinks that leave
// the root are refused, logged and recorded. Options: tsize (SetSize is called before
// ReadFrom) and blksize appear in the OACK. The bootloader's "Early terminate" probes
// (read block 1, then send an ERROR) are recorded as probes, not failures.
//
// pin/tftp v3.1.0 leaks the transfer's socket when a handler returns an error and
// sending the ERROR packet fails (fixed upstream after v3.1.0, PR #98). The read
// handler never returns an error that way when the send could fail; see failSafe.
package tftp
