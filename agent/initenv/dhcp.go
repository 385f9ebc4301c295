package initenv

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// ClassID is the DHCP option 60 (vendor class identifier) the agent sends, so that
// rpi-deployd can tell it from the Pi bootloader and answer with option 224.
const ClassID = "rpi-deploy-agent"

// OptionServerURL is the private DHCP option in which rpi-deployd (full mode) sends its
// agent URL, in ASCII, to a client that sent ClassID and asked for it.
const OptionServerURL = dhcpv4.GenericOptionCode(224)

// requestModifiers are what the agent's DHCP request carries on top of u-root's
// dhclient defaults: option 60 = ClassID and option 224 in the parameter request list.
func requestModifiers() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(ClassID)),
		dhcpv4.WithRequestedOptions(OptionServerURL),
	}
}

// ServerURLFromLease returns the server URL of option 224 of a DHCP reply, or "" when
// the reply has no such option. A value that is not an http(s) URL is an error.
func ServerURLFromLease(m *dhcpv4.DHCPv4) (string, error) {
	raw := m.Options.Get(OptionServerURL)
	if raw == nil {
		return "", nil
	}
	s := strings.TrimRight(string(raw), "\x00")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("DHCP option 224 %q: want an http(s) URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}
