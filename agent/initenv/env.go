package initenv

import "errors"

// Env is what Setup found out about the board and the network.
type Env struct {
	ServerURL string // the rpi-deployd agent URL, from rpideploy.server or DHCP option 224
	Target    string // the device to flash; DefaultTarget unless rpideploy.target says otherwise
	Serial    string // from rpideploy.serial, lower case; "" means: read the device tree
	MAC       string // from rpideploy.mac, else the DHCP interface's MAC (aa:bb:cc:dd:ee:ff)
	IP        string // the address DHCP gave the interface
	Interface string // the interface DHCP configured, e.g. eth0
}

// ErrUnsupported is returned on systems other than Linux.
var ErrUnsupported = errors.New("initenv: only Linux can run the agent as initramfs uinit")
