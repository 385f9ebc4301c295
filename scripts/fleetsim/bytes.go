package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteFlag is a size flag: a number of bytes with an optional suffix, KiB/MiB/GiB
// (or K/M/G: powers of 1024) or KB/MB/GB (powers of 1000).
type byteFlag int64

func (b *byteFlag) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteFlag) Set(s string) error {
	units := []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	num, mul := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mul = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (e.g. 64MiB)", s)
	}
	*b = byteFlag(n * float64(mul))
	return nil
}
