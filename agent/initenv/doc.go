// Package initenv is what rpi-agent does when it runs as the uinit of our u-root
// initramfs (`rpi-agent --uinit`): it prepares the in-RAM Linux system the agent flashes
// from, and ends it.
//
// Setup loads the kernel modules that the initramfs build put into the cpio (in the
// order of the list file the build wrote, ModulesList), makes sure /proc, /sys, /dev and
// /tmp are mounted, reads the kernel command line (keys rpideploy.server, .target,
// .serial, .mac; unknown keys are ignored), and brings the network interface up with
// DHCP. The DHCP request carries option 60 = "rpi-deploy-agent" and asks for option 224;
// when the command line names no server, the server URL is taken from option 224 of the
// lease (rpi-deployd in full mode answers with its agent URL there).
//
// Finish ends the run: it syncs the disks and reboots, powers off, or waits with a
// shell on the console. Rescue prints why the agent gave up and gives the technician a
// shell on the console.
//
// Only Linux is supported; on other systems every function returns ErrUnsupported.
package initenv
