//go:build !race

package servertest

// raceEnabled: this test binary was built without -race, so is the rpi-deployd child.
const raceEnabled = false
