package flash

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// volatileWriteCache reports whether the target at path may hold written blocks in a
// volatile write cache until a flush: a block device whose request queue says "write
// back" in sysfs (queue/write_cache of the device, or of the disk a partition is on),
// or whose queue cannot be read. Then the read-back waits for the stream's fsync: a
// counterfeit card whose cache puts blocks elsewhere than it answered for (it wraps
// around) only shows it once they are flushed. A regular file (tests, benches, image
// files) is false: it is not the medium under test.
func volatileWriteCache(path string) bool {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return false
	}
	dev := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	for _, p := range []string{dev + "/queue/write_cache", dev + "/../queue/write_cache"} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b)) != "write through"
		}
	}
	return true
}
