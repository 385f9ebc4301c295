// Package mailbox talks to the Raspberry Pi firmware through its mailbox property
// interface, the way Raspberry Pi's own vcmailbox tool does, to set the boot order of
// the next reboot only.
//
// A property message is a buffer of little-endian 32-bit words (raspberrypi/firmware
// wiki, "Mailbox property interface"):
//
//	[0] total size of the buffer in bytes
//	[1] request code: 0 = process request; in the response 0x80000000 = success,
//	    0x80000001 = error parsing the request
//	[2] tag id
//	[3] size of the tag's value buffer in bytes
//	[4] request: bit 31 clear; response: bit 31 set, bits 30-0 = length of the value
//	[5…] value buffer
//	[n] end tag 0
//
// raspberrypi/userland's vcmailbox (host_applications/linux/apps/vcmailbox) writes
// its arguments between words [1] and the end tag verbatim, so
// `vcmailbox 0x0003808b 4 4 ORDER` — the form the rpi-eeprom release notes give for
// the one-shot reboot order (bootloader 2025-01-22 and later: "Add set_reboot_order
// API") — sends [28, 0, 0x0003808b, 4, 4, ORDER, 0]. RebootOrderMessage builds exactly
// those words. The Linux side is the vcio driver (raspberrypi/linux
// drivers/char/broadcom/vcio.c): ioctl IOCTL_MBOX_PROPERTY = _IOWR(100, 0, char *) on
// /dev/vcio with a pointer to the buffer, which the driver copies to the firmware and
// back.
package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TagSetRebootOrder sets the boot order (BOOT_ORDER nibbles) that the bootloader uses
// on the next reboot only; it is kept in a reset-safe register and cleared once read.
const TagSetRebootOrder = 0x0003808b

// Response codes of the property interface.
const (
	codeRequest      = 0x00000000
	codeSuccess      = 0x80000000
	codeParseError   = 0x80000001
	tagResponseBit   = 1 << 31
	rebootOrderWords = 7
)

// OrderSDThenNetwork is the order the agent asks for after a verified flash and on
// boot_local: SD card first, then network, then start over (BOOT_ORDER=0xf21, read
// right to left). Not plain 0x1: if the card it just wrote cannot boot, the board
// falls back to the network (and so to the server and the operator) instead of
// stopping.
const OrderSDThenNetwork = 0xf21

// ErrNoMailbox is wrapped when there is no firmware mailbox (/dev/vcio absent: not a
// Raspberry Pi, e.g. QEMU, or a kernel without the vcio driver).
var ErrNoMailbox = errors.New("no firmware mailbox")

// ErrRejected is wrapped when the firmware answers but does not apply the tag (an
// older bootloader that does not know it, or a parse error).
var ErrRejected = errors.New("firmware rejected the request")

// RebootOrderMessage is the property message that sets the next reboot's boot order,
// word for word what `vcmailbox 0x0003808b 4 4 ORDER` sends, as bytes in the
// firmware's (little-endian) order.
func RebootOrderMessage(order uint32) []byte {
	words := [rebootOrderWords]uint32{
		rebootOrderWords * 4, // total size in bytes
		codeRequest,
		TagSetRebootOrder,
		4, // value buffer size
		4, // request/response word: vcmailbox passes its second argument here
		order,
		0, // end tag
	}
	b := make([]byte, 0, len(words)*4)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

// ParseRebootOrderResponse checks the buffer the firmware gave back for a
// RebootOrderMessage and returns the order it reports (the value word).
func ParseRebootOrderResponse(b []byte) (uint32, error) {
	if len(b) != rebootOrderWords*4 {
		return 0, fmt.Errorf("mailbox response: %d bytes, want %d", len(b), rebootOrderWords*4)
	}
	w := func(i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }
	switch code := w(1); code {
	case codeSuccess:
	case codeParseError:
		return 0, fmt.Errorf("mailbox response code %#08x (error parsing the request): %w", code, ErrRejected)
	case codeRequest:
		return 0, fmt.Errorf("mailbox response code 0: the firmware did not process the request: %w", ErrRejected)
	default:
		return 0, fmt.Errorf("mailbox response code %#08x: %w", code, ErrRejected)
	}
	if tag := w(2); tag != TagSetRebootOrder {
		return 0, fmt.Errorf("mailbox response: tag %#08x, want %#08x", tag, TagSetRebootOrder)
	}
	rc := w(4)
	if rc&tagResponseBit == 0 {
		return 0, fmt.Errorf("mailbox response: tag %#08x not answered (response bit clear; bootloader older than 2025-01-22?): %w",
			uint32(TagSetRebootOrder), ErrRejected)
	}
	if n := rc &^ tagResponseBit; n != 4 {
		return 0, fmt.Errorf("mailbox response: value length %d, want 4", n)
	}
	return w(5), nil
}
