package mailbox

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// words writes a property buffer the way the firmware wiki draws it: one
// little-endian 32-bit word per group of 8 hex digits, each written most significant
// byte first as in the wiki and in vcmailbox's arguments, then byte-swapped here.
func words(t *testing.T, ws ...string) []byte {
	t.Helper()
	var out []byte
	for _, w := range ws {
		b, err := hex.DecodeString(w)
		if err != nil || len(b) != 4 {
			t.Fatalf("bad word %q", w)
		}
		out = append(out, b[3], b[2], b[1], b[0])
	}
	return out
}

// TestRebootOrderMessage pins the bytes against the property-interface layout and the
// words `vcmailbox 0x0003808b 4 4 0xf21` puts in its buffer: size 28, request code 0,
// the tag, value buffer size 4, the request/response word 4, the order, end tag.
func TestRebootOrderMessage(t *testing.T) {
	for _, tc := range []struct {
		order uint32
		want  []string
	}{
		{OrderSDThenNetwork, []string{"0000001c", "00000000", "0003808b", "00000004", "00000004", "00000f21", "00000000"}},
		{0x1, []string{"0000001c", "00000000", "0003808b", "00000004", "00000004", "00000001", "00000000"}},
	} {
		got := RebootOrderMessage(tc.order)
		if want := words(t, tc.want...); string(got) != string(want) {
			t.Errorf("order %#x:\n got % x\nwant % x", tc.order, got, want)
		}
	}
	// The literal bytes on the wire for 0xf21, little-endian.
	if got := hex.EncodeToString(RebootOrderMessage(0xf21)); got != "1c000000"+"00000000"+"8b800300"+"04000000"+"04000000"+"210f0000"+"00000000" {
		t.Errorf("bytes = %s", got)
	}
}

func TestParseRebootOrderResponse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buf     []byte
		want    uint32
		wantErr error // nil = success; else errors.Is target (or errAny)
		msg     string
	}{
		{name: "success", buf: words(t, "0000001c", "80000000", "0003808b", "00000004", "80000004", "00000f21", "00000000"), want: 0xf21},
		{name: "parse error", buf: words(t, "0000001c", "80000001", "0003808b", "00000004", "00000004", "00000f21", "00000000"), wantErr: ErrRejected, msg: "error parsing"},
		{name: "not processed", buf: words(t, "0000001c", "00000000", "0003808b", "00000004", "00000004", "00000f21", "00000000"), wantErr: ErrRejected},
		{name: "tag not answered (old bootloader)", buf: words(t, "0000001c", "80000000", "0003808b", "00000004", "00000004", "00000f21", "00000000"), wantErr: ErrRejected, msg: "response bit clear"},
		{name: "other tag", buf: words(t, "0000001c", "80000000", "00030030", "00000004", "80000004", "00000f21", "00000000"), wantErr: errAny, msg: "tag 0x00030030"},
		{name: "value length 8", buf: words(t, "0000001c", "80000000", "0003808b", "00000004", "80000008", "00000f21", "00000000"), wantErr: errAny, msg: "value length 8"},
		{name: "short", buf: words(t, "00000018", "80000000", "0003808b", "00000004", "80000004", "00000f21"), wantErr: errAny, msg: "24 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRebootOrderResponse(tc.buf)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr == nil && got != tc.want:
				t.Errorf("order = %#x, want %#x", got, tc.want)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("no error, order %#x", got)
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			case tc.msg != "" && !strings.Contains(err.Error(), tc.msg):
				t.Errorf("err = %v, want it to say %q", err, tc.msg)
			}
		})
	}
}

var errAny = errors.New("any error")
