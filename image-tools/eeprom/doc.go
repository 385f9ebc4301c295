// Package eeprom reads Raspberry Pi 5 bootloader images, embeds a bootloader
// configuration into them, and builds the bootloader recovery card that turns a new
// board's network boot on.
//
// The image format is read from the image itself, as Raspberry Pi's rpi-eeprom-config
// (raspberrypi/rpi-eeprom) walks it: sections with big-endian magic/length headers,
// the configuration being the file section named bootconf.txt. WithConfig lays the
// new configuration out byte for byte as `rpi-eeprom-config --config C --out O` does;
// the tests hold it to that tool run on Raspberry Pi's own image.
//
// The card (BuildCard) is an MBR disk image with one FAT32 partition holding
// recovery.bin, pieeprom.upd (the bootloader image, config embedded), pieeprom.sig
// (SHA-256 and a "ts:" line, as rpi-eeprom-digest writes it) and README.txt. Powered
// on with it, a Pi 5's ROM runs recovery.bin, which writes pieeprom.upd into the
// EEPROM, renames itself to RECOVERY.000 (so it runs once) and resets. The card then
// no longer boots, and with BOOT_ORDER=0xf21 the board falls through to network boot,
// where rpi-deploy flashes that same card. (Named pieeprom.bin instead — CardOptions.Stop,
// as Raspberry Pi's own recovery images do — recovery.bin stops after the update with
// the green LED blinking and does not rename itself: Raspberry Pi's documentation,
// "Bootloader update files".)
package eeprom
