package main

import (
	"errors"
	"log/slog"

	"github.com/rpi-deploy/rpi-deploy/agent/mailbox"
)

// nextBootFromCard asks the firmware to boot the next reboot from the SD card
// (mailbox.OrderSDThenNetwork, once), so that a board whose EEPROM says network first
// (BOOT_ORDER=0xf12) boots the card it was just given, or told to keep, instead of
// netbooting into the agent again for ever. set is mailbox.SetRebootOrder. Failure
// never stops the reboot: where there is no /dev/vcio (QEMU, a non-Pi host) it says so
// and goes on; the next boot then follows the EEPROM's BOOT_ORDER.
func nextBootFromCard(log *slog.Logger, why string, set func(order uint32) error) {
	order := uint32(mailbox.OrderSDThenNetwork)
	err := set(order)
	switch {
	case err == nil:
		log.Info("next boot: SD card first (one-shot reboot order set through the firmware mailbox)", "order", "0xf21", "why", why)
	case errors.Is(err, mailbox.ErrNoMailbox):
		log.Info("next boot: no /dev/vcio (not Raspberry Pi firmware, e.g. QEMU): the EEPROM BOOT_ORDER decides", "why", why, "err", err)
	default:
		log.Warn("next boot: could not set the one-shot reboot order (bootloader older than 2025-01-22?); "+
			"with BOOT_ORDER=0xf12 the board will netboot again", "why", why, "err", err)
	}
}
