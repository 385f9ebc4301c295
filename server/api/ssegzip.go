package api

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
)

// gzipStream frames an event stream as one gzip member (RFC 1952) whose DEFLATE
// data (RFC 1951) is a run of pieces that each end byte-aligned and refer to no byte
// before them: the shared, compressed batches of events (events.SharedRead.Deflate),
// which every stream sends as they are, and the stream's own small messages (the
// first line, pings, reset) as stored blocks. So a thousand compressed streams cost
// one compression per batch, not one per stream, and a browser's EventSource, which
// asks for gzip, reads about a tenth of the bytes. The trailer's CRC-32 is the CRC
// of the pieces combined (crc32Combine), not a second pass over the bytes.
type gzipStream struct {
	crc  uint32 // CRC-32 (IEEE) of the uncompressed bytes so far
	size uint32 // their length, modulo 2^32 (gzip's ISIZE)
}

// gzipHeader starts a member: no name, no time, OS unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// stored appends msg to dst as stored blocks (at most 65535 bytes each, not final)
// followed by an empty one, as a sync flush ends, and counts msg in the trailer. The
// empty block is what makes some decoders (Go's compress/flate) hand out the bytes
// before them: without it they wait for the next block's header.
func (g *gzipStream) stored(dst, msg []byte) []byte {
	g.add(crc32.ChecksumIEEE(msg), len(msg))
	for len(msg) > 0 {
		n := min(len(msg), 0xffff)
		dst = append(dst, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		dst = append(dst, msg[:n]...)
		msg = msg[n:]
	}
	return append(dst, 0, 0, 0, 0xff, 0xff)
}

// add counts n uncompressed bytes with CRC-32 crc, sent after the ones counted.
func (g *gzipStream) add(crc uint32, n int) {
	g.crc = crc32Combine(g.crc, crc, int64(n))
	g.size += uint32(n)
}

// end appends the final (empty, stored) block and the trailer to dst.
func (g *gzipStream) end(dst []byte) []byte {
	dst = append(dst, 1, 0, 0, 0xff, 0xff)
	dst = binary.LittleEndian.AppendUint32(dst, g.crc)
	return binary.LittleEndian.AppendUint32(dst, g.size)
}

// acceptsGzip reports whether an Accept-Encoding header value admits gzip: it is
// listed (or "*" is) without q=0.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}

// crc32Combine returns the CRC-32 (IEEE) of a+b from crc1 = CRC(a), crc2 = CRC(b)
// and len2 = len(b), in about 20 short loops of arithmetic modulo the CRC's
// polynomial, whatever the lengths (zlib's crc32_combine: crc1·x^(8·len2) + crc2).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	return multModP(x2nModP(len2, 3), crc1) ^ crc2
}

// crcPoly is the CRC-32 (IEEE) polynomial, bit-reflected: bit 31 is x^0.
const crcPoly = 0xedb88320

// multModP is a·b modulo the polynomial, for a != 0 (reflected: 1<<31 is 1).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; ; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
}

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for n := 1; n < 32; n++ {
		p = multModP(p, p)
		t[n] = p
	}
	return t
}()

// x2nModP is x^(n·2^k) modulo the polynomial.
func x2nModP(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		k++
	}
	return p
}
