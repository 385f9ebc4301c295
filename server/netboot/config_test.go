package netboot

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/dhcp"
)

// TestTFTPLimitsConfig: the TFTP limits come from the config file, flags override
// them, and values without a sensible meaning are refused with the field's name.
func TestTFTPLimitsConfig(t *testing.T) {
	c, err := Parse([]byte(`{"tftp_root":"/srv/tftp","tftp_max_transfers":100,"tftp_max_per_client":4,"tftp_timeout":"2s","tftp_retries":3}`))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f := AddFlags(fs)
	if err := fs.Parse([]string{"--tftp-max-per-client", "2"}); err != nil {
		t.Fatal(err)
	}
	c = c.Override(f)
	if c.TFTPMaxTransfers != 100 || c.TFTPMaxPerClient != 2 || c.TFTPTimeout != "2s" || c.TFTPRetries != 3 {
		t.Errorf("config %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for raw, field := range map[string]string{
		`{"tftp_timeout":"soon"}`:    "tftp_timeout",
		`{"tftp_timeout":"10ms"}`:    "tftp_timeout",
		`{"tftp_timeout":"5m"}`:      "tftp_timeout",
		`{"tftp_max_transfers":-1}`:  "tftp_max_transfers",
		`{"tftp_max_per_client":-5}`: "tftp_max_per_client",
		`{"tftp_max_transfer":10}`:   "unknown field",
	} {
		c, err := Parse([]byte(raw))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", raw, err, field)
		}
	}
}

// TestLeaseReuseConfig: lease_reuse reaches the DHCP handler ("0s" turns it off),
// and a value that is not below lease_time is refused with the field's name.
func TestLeaseReuseConfig(t *testing.T) {
	var s Services
	for raw, want := range map[string]time.Duration{
		`{"lease_reuse":"15m"}`: 15 * time.Minute,
		`{"lease_reuse":"0s"}`:  -1,
		`{}`:                    0, // dhcp.NewHandler's default: lease_time/4
		`{"lease_time":"2h","lease_reuse":"90m"}`:    90 * time.Minute,
		`{"lease_time":"10m","lease_reuse":"9m59s"}`: 9*time.Minute + 59*time.Second,
	} {
		c, err := Parse([]byte(raw))
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if got := s.dhcpOptions(c, Deps{}, dhcp.Interface{}).LeaseReuse; got != want {
			t.Errorf("%s: LeaseReuse %v, want %v", raw, got, want)
		}
	}
	for _, raw := range []string{`{"lease_reuse":"1h"}`, `{"lease_time":"10m","lease_reuse":"10m"}`, `{"lease_reuse":"-1m"}`, `{"lease_reuse":"often"}`} {
		c, err := Parse([]byte(raw))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "lease_reuse") {
			t.Errorf("%s: %v, want an error naming lease_reuse", raw, err)
		}
	}
}
