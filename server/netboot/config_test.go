package netboot

import (
	"flag"
	"strings"
	"testing"
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
