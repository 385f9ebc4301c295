package pack

import "unsafe"

// directAlign is the alignment of O_DIRECT reads and writes: buffer address, length
// and file offset (the logical block size of any disk is at most 4096 bytes).
const directAlign = 4096

// alignedBuffer returns n bytes (n a multiple of directAlign) starting at an address
// that is a multiple of directAlign.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := directAlign - int(uintptr(unsafe.Pointer(&b[0]))&(directAlign-1))
	if skip == directAlign {
		skip = 0
	}
	return b[skip : skip+n : skip+n]
}
