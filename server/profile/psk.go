package profile

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

// DerivePSK is the WPA pre-shared key of an SSID and passphrase (IEEE 802.11i
// PBKDF2-SHA1, 4096 iterations, 32 bytes) as 64 lower-case hex digits: the psk=
// line `wpa_passphrase SSID PASSPHRASE` prints, and what Raspberry Pi Imager stores.
func DerivePSK(ssid, passphrase string) (string, error) {
	k, err := pbkdf2.Key(sha1.New, passphrase, []byte(ssid), 4096, 32)
	if err != nil { // FIPS 140-only mode refuses SHA-1 WPA keys
		return "", fmt.Errorf("derive psk: %w", err)
	}
	return hex.EncodeToString(k), nil
}
