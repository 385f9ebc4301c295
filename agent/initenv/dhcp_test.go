package initenv

import (
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestRequestModifiers(t *testing.T) {
	m, err := dhcpv4.NewDiscovery(net.HardwareAddr{0x2c, 0xcf, 0x67, 0, 0, 1},
		// u-root's dhclient puts its own class identifier first; ours must win.
		append([]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXE UROOT"))}, requestModifiers()...)...)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ClassIdentifier(); got != ClassID {
		t.Errorf("option 60 = %q, want %q", got, ClassID)
	}
	if !m.IsOptionRequested(OptionServerURL) {
		t.Errorf("option 55 %v does not ask for 224", m.ParameterRequestList())
	}
}

func TestServerURLFromLease(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opt     []byte // nil: no option 224
		want    string
		wantErr string
	}{
		{name: "absent", opt: nil, want: ""},
		{name: "url", opt: []byte("http://10.0.0.1:8080"), want: "http://10.0.0.1:8080"},
		{name: "trailing slash and NUL", opt: []byte("http://10.0.0.1:8080/\x00"), want: "http://10.0.0.1:8080"},
		{name: "not a url", opt: []byte("10.0.0.1"), wantErr: "want an http(s) URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mods []dhcpv4.Modifier
			if tt.opt != nil {
				mods = append(mods, dhcpv4.WithGeneric(OptionServerURL, tt.opt))
			}
			m, err := dhcpv4.New(mods...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ServerURLFromLease(m)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ServerURLFromLease = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
