//go:build race

package servertest

// raceEnabled: this test binary was built with -race, so is the rpi-deployd child.
const raceEnabled = true
