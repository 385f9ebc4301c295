package eeprom

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Errors of a configuration that callers can branch on with errors.Is.
var (
	// ErrUnknownKey: a key that is not a documented bootloader property.
	ErrUnknownKey = errors.New("unknown bootloader config key")
	// ErrBadValue: a value the bootloader would not accept for its key.
	ErrBadValue = errors.New("bad bootloader config value")
)

// KnownKeys are the bootloader properties that Raspberry Pi documents in "Raspberry Pi
// bootloader configuration" (raspberrypi.com/documentation/computers/raspberry-pi.html,
// source raspberrypi/documentation eeprom-bootloader.adoc). Any other key is refused:
// the bootloader ignores what it does not know, so a typo would pass silently.
var KnownKeys = []string{
	"BOOT_UART", "UART_BAUD", "WAKE_ON_GPIO", "POWER_OFF_ON_HALT", "WAIT_FOR_POWER_BUTTON",
	"BOOT_ORDER", "BOOT_WATCHDOG_TIMEOUT", "BOOT_WATCHDOG_PARTITION", "MAX_RESTARTS",
	"REBOOT_ON_FATAL_ERROR", "SD_BOOT_MAX_RETRIES", "SD_OVERCURRENT_CHECK", "SD_QUIRKS",
	"NET_BOOT_MAX_RETRIES", "DHCP_TIMEOUT", "DHCP_REQ_TIMEOUT", "TFTP_FILE_TIMEOUT",
	"TFTP_IP", "TFTP_PREFIX", "TFTP_PREFIX_STR", "PXE_OPTION43", "DHCP_OPTION97",
	"MAC_ADDRESS", "MAC_ADDRESS_OTP", "CLIENT_IP", "SUBNET", "GATEWAY",
	"DISABLE_HDMI", "HDMI_DELAY", "ENABLE_SELF_UPDATE", "FREEZE_VERSION",
	"HTTP_HOST", "HTTP_PORT", "HTTP_PATH", "HTTP_CACERT_HASH", "IMAGER_REPO_URL",
	"NET_INSTALL_ENABLED", "NET_INSTALL_AT_POWER_ON", "NET_INSTALL_KEYBOARD_WAIT",
	"NETCONSOLE", "PARTITION", "PARTITION_WALK", "BOOTVAR0", "PCIE_PROBE", "PSU_MAX_CURRENT",
	"USB_MSD_EXCLUDE_VID_PID", "USB_MSD_DISCOVER_TIMEOUT", "USB_MSD_LUN_TIMEOUT",
	"USB_MSD_PWR_OFF_TIME", "USB_MSD_STARTUP_DELAY", "VL805", "XHCI_DEBUG", "SDRAM_BANKLOW",
}

// Setting is one KEY=VALUE line.
type Setting struct{ Key, Value string }

// Config is a bootloader configuration: settings in the [all] section, in order.
type Config struct {
	Settings []Setting
}

// DefaultConfig is what docs/operations.md recommends for a fleet: SD first, then the
// network, forever; no network-install screen or keyboard wait; 5 minutes per TFTP
// file (lock-step TFTP of an initramfs on a busy network); the UART log on, as the
// factory config has it.
func DefaultConfig() Config {
	return Config{Settings: []Setting{
		{"BOOT_UART", "1"},
		{"BOOT_ORDER", "0xf21"},
		{"NET_INSTALL_ENABLED", "0"},
		{"NET_INSTALL_AT_POWER_ON", "0"},
		{"DHCP_TIMEOUT", "45000"},
		{"DHCP_REQ_TIMEOUT", "4000"},
		{"TFTP_FILE_TIMEOUT", "300000"},
		{"NET_BOOT_MAX_RETRIES", "-1"},
	}}
}

// Set replaces the value of key, or appends it, after checking both (Check).
func (c *Config) Set(key, value string) error {
	if err := Check(key, value); err != nil {
		return err
	}
	for i := range c.Settings {
		if c.Settings[i].Key == key {
			c.Settings[i].Value = value
			return nil
		}
	}
	c.Settings = append(c.Settings, Setting{key, value})
	return nil
}

// SetLine applies one "KEY=VALUE" argument.
func (c *Config) SetLine(kv string) error {
	key, value, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%w: %q is not KEY=VALUE", ErrBadValue, kv)
	}
	return c.Set(strings.TrimSpace(key), strings.TrimSpace(value))
}

// Bytes renders the config as bootconf.txt: "[all]", then one KEY=VALUE line each,
// every line ending in a newline.
func (c Config) Bytes() []byte {
	var b strings.Builder
	b.WriteString("[all]\n")
	for _, s := range c.Settings {
		b.WriteString(s.Key + "=" + s.Value + "\n")
	}
	return []byte(b.String())
}

// bootModes are the BOOT_ORDER digits the documentation defines: 0 SD card detect,
// 1 SD, 2 network, 3 RPIBOOT, 4 USB mass storage, 5 BCM USB MSD, 6 NVMe, 7 HTTP,
// e stop, f restart.
const bootModes = "01234567ef"

// minimums of the timeouts the documentation gives one.
var minimums = map[string]int64{
	"DHCP_TIMEOUT": 5000, "DHCP_REQ_TIMEOUT": 500, "TFTP_FILE_TIMEOUT": 5000,
	"USB_MSD_DISCOVER_TIMEOUT": 5000, "USB_MSD_LUN_TIMEOUT": 100,
}

// Check refuses a key that is not in KnownKeys, a value with a line break, a
// BOOT_ORDER that is not up to eight hex digits each a boot mode, and numeric
// timeouts and retry counts that are not numbers or are below their documented
// minimum.
func Check(key, value string) error {
	if !slices.Contains(KnownKeys, key) {
		return fmt.Errorf("%w %q (the bootloader configuration documentation lists the keys)", ErrUnknownKey, key)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("%w: %s holds a line break or NUL", ErrBadValue, key)
	}
	switch key {
	case "BOOT_ORDER":
		return checkBootOrder(value)
	case "DHCP_TIMEOUT", "DHCP_REQ_TIMEOUT", "TFTP_FILE_TIMEOUT", "USB_MSD_DISCOVER_TIMEOUT",
		"USB_MSD_LUN_TIMEOUT", "NET_BOOT_MAX_RETRIES", "SD_BOOT_MAX_RETRIES", "MAX_RESTARTS":
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not a number", ErrBadValue, key, value)
		}
		m, hasMin := minimums[key]
		if hasMin && n < m {
			return fmt.Errorf("%w: %s=%d is below the minimum %d", ErrBadValue, key, n, m)
		}
		if !hasMin && n < -1 {
			return fmt.Errorf("%w: %s=%d (-1 means forever)", ErrBadValue, key, n)
		}
	}
	return nil
}

// checkBootOrder accepts 0x followed by one to eight digits of bootModes.
func checkBootOrder(v string) error {
	digits, found := strings.CutPrefix(strings.ToLower(v), "0x")
	if !found || digits == "" || len(digits) > 8 {
		return fmt.Errorf("%w: BOOT_ORDER=%q is not 0x and one to eight hex digits", ErrBadValue, v)
	}
	for i := len(digits) - 1; i >= 0; i-- {
		if !strings.ContainsRune(bootModes, rune(digits[i])) {
			return fmt.Errorf("%w: BOOT_ORDER=%s: digit %q is not a boot mode (1 SD, 2 network, 4 USB, 6 NVMe, 7 HTTP, e stop, f restart)", ErrBadValue, v, digits[i])
		}
	}
	return nil
}
