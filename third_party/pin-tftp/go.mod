module github.com/pin/tftp/v3

// rpi-deploy: upstream says go 1.13 and golang.org/x/net v0.0.0-20200202094626-16171245cfb2;
// x/net v0.61.0 (what the repository's go.mod picks for every build anyway) needs
// Go 1.26 (PATCHES.md).
go 1.26.0

require golang.org/x/net v0.61.0

require golang.org/x/sys v0.49.0 // indirect
