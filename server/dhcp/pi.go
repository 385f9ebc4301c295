package dhcp

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Client kinds, as recorded in leases and events.
const (
	KindBootloader = "bootloader" // Raspberry Pi EEPROM bootloader (PXEClient + option 97)
	KindAgent      = "agent"      // rpi-deploy agent's Linux DHCP (option 60 AgentClassID)
	KindOther      = "other"      // anything else
)

// AgentClassID is the option 60 the rpi-deploy agent sends from Linux.
const AgentClassID = "rpi-deploy-agent"

// PiClassID is the option 60 of the Pi 4 and Pi 5 EEPROM bootloaders' DISCOVER.
const PiClassID = "PXEClient:Arch:00000:UNDI:002001"

// OptionAgentURL is the site-specific option that carries the agent URL to the agent.
const OptionAgentURL = dhcpv4.GenericOptionCode(224)

// Client is what a request says about its sender.
type Client struct {
	Kind     string // KindBootloader, KindAgent or KindOther
	Model    string // "RPi5", "RPi4" (bootloader only)
	Revision string // board revision, 8 hex digits (bootloader, new option 97 form only)
	Serial   string // the 8 lower-case hex digits of the TFTP prefix; "" when unknown
}

// Classify tells a Pi bootloader, the agent and other clients apart from options 60
// and 97. The MAC is never looked at.
func Classify(req *dhcpv4.DHCPv4) Client {
	class := req.Options[dhcpv4.OptionClassIdentifier.Code()] // not ClassIdentifier(): its string is an allocation per request
	if string(class) == AgentClassID {
		return Client{Kind: KindAgent}
	}
	if !bytes.HasPrefix(class, []byte("PXEClient")) {
		return Client{Kind: KindOther}
	}
	id, err := ParseOption97(req.GetOneOption(dhcpv4.OptionClientMachineIdentifier))
	if err != nil {
		return Client{Kind: KindOther}
	}
	id.Kind = KindBootloader
	return id
}

// ParseOption97 decodes the Pi bootloader's option 97 (17 bytes, type 0). The current
// form is FourCC ("RPi5"/"RPi4"), revision, low 4 bytes of the MAC, serial; the old
// form (EEPROM DHCP_OPTION97=0) is the serial four times. Revision and serial are
// little-endian 32-bit words and the MAC bytes are in wire order, as a real Pi 4
// sends them (testdata/option97-rpi4.txt: revision bytes 11 31 a0 00 are 0x00a03111,
// serial bytes 10 45 15 5b are the TFTP prefix 5b154510).
func ParseOption97(b []byte) (Client, error) {
	if len(b) != 17 || b[0] != 0 {
		return Client{}, fmt.Errorf("option 97: want 17 bytes of type 0, got %d bytes", len(b))
	}
	v := b[1:]
	switch cc := string(v[0:4]); cc {
	case "RPi5", "RPi4":
		return Client{
			Model:    cc,
			Revision: fmt.Sprintf("%08x", binary.LittleEndian.Uint32(v[4:8])),
			Serial:   fmt.Sprintf("%08x", binary.LittleEndian.Uint32(v[12:16])),
		}, nil
	}
	if bytes.Equal(v[0:4], v[4:8]) && bytes.Equal(v[0:4], v[8:12]) && bytes.Equal(v[0:4], v[12:16]) {
		return Client{Serial: fmt.Sprintf("%08x", binary.LittleEndian.Uint32(v[0:4]))}, nil
	}
	return Client{}, fmt.Errorf("option 97: not a Raspberry Pi identifier (% x)", v[0:4])
}

// PXEMenu is option 43 exactly as dnsmasq sends it for pxe-service=0,"Raspberry Pi Boot":
// discovery control 3, menu prompt (timeout 0, "PXE"), boot menu item type 0 "Raspberry
// Pi Boot", end. The Pi bootloader ignores offers without it.
var PXEMenu = []byte{
	6, 1, 3, // PXE_DISCOVERY_CONTROL: no broadcast, no multicast
	10, 4, 0, 'P', 'X', 'E', // PXE_MENU_PROMPT: timeout 0, "PXE"
	9, 20, 0, 0, 17, 'R', 'a', 's', 'p', 'b', 'e', 'r', 'r', 'y', ' ', 'P', 'i', ' ', 'B', 'o', 'o', 't', // PXE_BOOT_MENU
	255,
}
