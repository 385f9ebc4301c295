// Package flashtest packs a raw image into .img.zst + manifest for tests, marking every
// non-zero 4 KiB block as data. It stands in until image-tools/pack is on main.
package flashtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// Pack compresses raw into zst (one frame per chunk) and returns the manifest.
func Pack(name string, raw []byte, chunkSize int64, firstBoot string, parts []manifest.Partition) (*manifest.Manifest, []byte, error) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		return nil, nil, err
	}
	defer enc.Close()
	m := &manifest.Manifest{Version: manifest.Version, Name: name, Size: int64(len(raw)), ChunkSize: chunkSize,
		Compression: "zstd", FirstBoot: firstBoot, Partitions: parts}
	whole := sha256.Sum256(raw)
	m.SHA256 = hex.EncodeToString(whole[:])
	zero := make([]byte, manifest.BlockSize)
	for off := int64(0); off < m.Size; off += manifest.BlockSize {
		end := min(off+manifest.BlockSize, m.Size)
		if bytes.Equal(raw[off:end], zero[:end-off]) {
			continue
		}
		if n := len(m.Ranges); n > 0 && m.Ranges[n-1].End() == off {
			m.Ranges[n-1].Length += end - off
		} else {
			m.Ranges = append(m.Ranges, manifest.Range{Offset: off, Length: end - off})
		}
		m.DataBytes += end - off
	}
	var zst []byte
	for i := range manifest.NumChunks(m.Size, chunkSize) {
		cr := m.ChunkRange(i)
		b := raw[cr.Offset:cr.End()]
		sum := sha256.Sum256(b)
		c := manifest.Chunk{SHA256: hex.EncodeToString(sum[:]), Frame: int64(len(zst))}
		if d := m.DataIn(cr); len(d) > 0 {
			h := sha256.New()
			for _, r := range d {
				h.Write(raw[r.Offset:r.End()])
			}
			c.DataSHA256 = hex.EncodeToString(h.Sum(nil))
		}
		zst = enc.EncodeAll(b, zst)
		c.FrameSize = int64(len(zst)) - c.Frame
		m.Chunks = append(m.Chunks, c)
	}
	m.CompressedSize = int64(len(zst))
	return m, zst, m.Validate()
}

// WriteFiles packs raw and writes dir/NAME.img.zst and dir/NAME.manifest.json.
func WriteFiles(dir, name string, raw []byte, chunkSize int64, firstBoot string, parts []manifest.Partition) (*manifest.Manifest, error) {
	m, zst, err := Pack(name, raw, chunkSize, firstBoot, parts)
	if err != nil {
		return nil, err
	}
	p := dir + "/" + name + ".img.zst"
	if err := os.WriteFile(p, zst, 0o644); err != nil {
		return nil, err
	}
	return m, m.Save(manifest.PathFor(p))
}
