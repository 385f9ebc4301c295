//go:build !linux

package mailbox

import "fmt"

// SetRebootOrder needs Linux's /dev/vcio; elsewhere there is no mailbox.
func SetRebootOrder(order uint32) error {
	return fmt.Errorf("set reboot order %#x: %w", order, ErrNoMailbox)
}
