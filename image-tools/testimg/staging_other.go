//go:build !linux

package testimg

// stagingDir stages beside the image outside Linux.
func stagingDir(need int64, fallback string) string { return fallback }
