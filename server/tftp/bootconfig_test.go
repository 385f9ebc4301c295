package tftp

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s (-want +got):\n%s", name, d)
	}
}

func TestGeneratedBootFiles(t *testing.T) {
	board := Board{Serial: "abcd1234", MAC: "2c:cf:67:00:00:01"}
	golden(t, "config.txt.board.golden", ConfigTxt(board, ""))
	golden(t, "config.txt.shared.golden", ConfigTxt(Board{}, "dtparam=audio=off"))
	golden(t, "cmdline.txt.board.golden", CmdlineTxt(board, "", "http://10.42.0.1:8080"))
	golden(t, "cmdline.txt.shared.golden", CmdlineTxt(Board{}, "console=ttyAMA10,115200", "http://10.42.0.1:8080"))
	serial, err := CmdlineFor(ConsoleSerial)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cmdline.txt.serial.golden", CmdlineTxt(board, serial, "http://10.42.0.1:8080"))
}

// TestConsoleLast: Linux makes the last console= /dev/console, where the agent and
// the rescue shell appear; the chosen console must be last, the other still present
// (kernel messages go to both).
func TestConsoleLast(t *testing.T) {
	for _, tc := range []struct {
		console, last, other string
	}{
		{"", "console=tty1", "console=serial0,115200"},
		{ConsoleHDMI, "console=tty1", "console=serial0,115200"},
		{ConsoleSerial, "console=serial0,115200", "console=tty1"},
	} {
		base, err := CmdlineFor(tc.console)
		if err != nil {
			t.Fatal(err)
		}
		var consoles []string
		for _, a := range strings.Fields(string(CmdlineTxt(Board{Serial: "5b154510"}, base, "http://10.42.0.1:8080"))) {
			if strings.HasPrefix(a, "console=") {
				consoles = append(consoles, a)
			}
		}
		if want := []string{tc.other, tc.last}; !slices.Equal(consoles, want) {
			t.Errorf("console %q: console= arguments %q, want %q", tc.console, consoles, want)
		}
	}
	if _, err := CmdlineFor("vga"); err == nil || !strings.Contains(err.Error(), `console "vga"`) {
		t.Errorf("CmdlineFor(vga) = %v, want an error naming it", err)
	}
	if _, err := New(Options{Root: t.TempDir(), Console: ConsoleSerial, Cmdline: "console=ttyAMA10"}); err == nil {
		t.Error("New with both Console and Cmdline: no error")
	}
}
