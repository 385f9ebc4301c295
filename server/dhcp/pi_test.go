package dhcp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rpi-deploy/rpi-deploy/server/dhcp/dhcptest"
)

// capturedOption97 is option 97 of a real Raspberry Pi 4 bootloader (see
// testdata/option97-rpi4.txt for where the bytes come from). The DHCP tests send
// these bytes rather than bytes that our own encoding of a guess would make.
func capturedOption97(t testing.TB) []byte {
	t.Helper()
	v, err := dhcptest.CapturedOption97()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// capturedSerial is the TFTP prefix the captured board asked for.
const capturedSerial = "5b154510"

// TestOption97Captured pins the byte order: revision and serial little-endian. A
// big-endian decoder reads this board as revision 1131a000, serial 1045155b, and the
// serial then disagrees with the TFTP prefix the same board asks for.
func TestOption97Captured(t *testing.T) {
	got, err := ParseOption97(capturedOption97(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Client{Model: "RPi4", Revision: "00a03111", Serial: capturedSerial}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseOption97(captured) (-want +got):\n%s", d)
	}
}

func TestOption97Forms(t *testing.T) {
	captured := capturedOption97(t)
	// The old form (EEPROM DHCP_OPTION97=0) repeats the serial's four bytes, in the
	// same order as the new form's serial field.
	old := append([]byte{0}, captured[13:17]...)
	for range 3 {
		old = append(old, captured[13:17]...)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    Client
		wantErr bool
	}{
		{name: "captured RPi4", in: captured, want: Client{Model: "RPi4", Revision: "00a03111", Serial: capturedSerial}},
		{name: "old form", in: old, want: Client{Serial: capturedSerial}},
		{name: "short", in: captured[:16], wantErr: true},
		{name: "type 1", in: append([]byte{1}, captured[1:]...), wantErr: true},
		{name: "not a Pi", in: append([]byte{0}, []byte("ABCD0123456789ab")...), wantErr: true},
		{name: "empty", in: nil, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOption97(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
