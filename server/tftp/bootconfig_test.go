package tftp

import (
	"flag"
	"os"
	"path/filepath"
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
}
