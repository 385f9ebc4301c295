package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func sample() *Manifest {
	h := strings.Repeat("ab", 32)
	return &Manifest{
		Version: Version, Name: "kxp2-test", Size: 3*4096 + 100, SHA256: h, ChunkSize: 4096,
		Compression: "zstd", CompressedSize: 40,
		Ranges:    []Range{{Offset: 0, Length: 4096}},
		DataBytes: 4096,
		Chunks: []Chunk{
			{SHA256: h, DataSHA256: h, Frame: 0, FrameSize: 10, Chain: strings.Repeat("01", 32)},
			{SHA256: h, Frame: 10, FrameSize: 10, Chain: strings.Repeat("02", 32)},
			{SHA256: h, Frame: 20, FrameSize: 10, Chain: strings.Repeat("03", 32)},
			{SHA256: h, Frame: 30, FrameSize: 10},
		},
	}
}

func TestChainRoundTrip(t *testing.T) {
	m := sample()
	var buf bytes.Buffer
	if err := m.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"chain": "0202`) {
		t.Errorf("encoded manifest lacks the chain field:\n%s", buf.String())
	}
	back, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Chunks {
		if back.Chunks[i] != m.Chunks[i] {
			t.Errorf("chunk %d: %+v after a round trip, want %+v", i, back.Chunks[i], m.Chunks[i])
		}
	}
	if !back.HasChain() {
		t.Error("HasChain false for a manifest with chain values")
	}
	// Without chain values (older manifests) it is valid too and says so.
	for i := range m.Chunks {
		m.Chunks[i].Chain = ""
	}
	if err := m.Validate(); err != nil || m.HasChain() {
		t.Errorf("no chain: Validate %v, HasChain %v", err, m.HasChain())
	}
}

func TestChainInvalid(t *testing.T) {
	for name, edit := range map[string]func(m *Manifest){
		"upper case":    func(m *Manifest) { m.Chunks[1].Chain = strings.Repeat("AB", 32) },
		"short":         func(m *Manifest) { m.Chunks[1].Chain = "0102" },
		"not hex":       func(m *Manifest) { m.Chunks[1].Chain = strings.Repeat("zz", 32) },
		"one missing":   func(m *Manifest) { m.Chunks[1].Chain = "" },
		"first missing": func(m *Manifest) { m.Chunks[0].Chain = "" },
		"on the last":   func(m *Manifest) { m.Chunks[3].Chain = strings.Repeat("04", 32) },
		"only the last": func(m *Manifest) {
			m.Chunks = []Chunk{{SHA256: m.SHA256, DataSHA256: m.SHA256, FrameSize: 40, Chain: m.SHA256}}
			m.Size = 4096
		},
	} {
		m := sample()
		edit(m)
		if err := m.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "chain") {
			t.Errorf("%s: Validate = %v, want an invalid chain", name, err)
		}
	}
}
