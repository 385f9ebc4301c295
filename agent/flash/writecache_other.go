//go:build !linux

package flash

// volatileWriteCache is true where the agent cannot tell (it runs on Linux): the
// read-back waits for the stream's fsync.
func volatileWriteCache(string) bool { return true }
