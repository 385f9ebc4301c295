//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom"
	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom/eepromtest"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestRecoveryCardFlashed: a new board's SD card after the bootloader card did its
// work. The card holds only the recovery files, with recovery.bin renamed to
// RECOVERY.000 (as recovery.bin does after writing pieeprom.upd), at the start of a
// larger card; the board network-boots, and the agent flashes that card like a blank
// one: the master image, verified, named.
func TestRecoveryCardFlashed(t *testing.T) {
	initramfs, kernel := input(t, envInitramfs), input(t, envKernel)
	needTools(t, "qemu-system-aarch64", "sfdisk", "mtype", "mren", "mdir", "fsck.fat", "e2fsck")
	ctx := context.Background()
	dir := t.TempDir()

	src, packed := filepath.Join(dir, "master.img"), filepath.Join(dir, "e2e-recovery.img.zst")
	info, man := smallImage(t, src, packed, 11)

	// The card as the operator wrote it (rpi-image eeprom-card, Raspberry Pi's own
	// firmware), at the start of a used card larger than the master image.
	fw, err := eeprom.LoadFirmware(eepromtest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := eeprom.BuildCard(fw, eeprom.CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	card := filepath.Join(dir, "card.img")
	writeJunk(t, card, info.Size+32<<20)
	f, err := os.OpenFile(card, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(rc.Image, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// What recovery.bin leaves behind after writing the EEPROM.
	part := card + "@@1M"
	if out, err := exec.Command("mren", "-i", part, "::/recovery.bin", "::/RECOVERY.000").CombinedOutput(); err != nil {
		t.Fatalf("mren: %v: %s", err, out)
	}
	listing, err := exec.Command("mdir", "-b", "-i", part, "::/").CombinedOutput()
	if low := strings.ToLower(string(listing)); err != nil || strings.Contains(low, "recovery.bin") ||
		!strings.Contains(low, "recovery.000") || !strings.Contains(low, eeprom.UpdateName) {
		t.Fatalf("the card before the boot: %v\n%s", err, listing)
	}

	l := netnstest.NewLink(t, serverCIDR, "")
	l.AddBridgeTap(t, "tap0")
	useNamespace(l.Server)
	srv := startServer(t, l)
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 1, Image: packed})

	g := bootQEMU(t, vm{ns: l.Client, kernel: kernel, initramfs: initramfs, card: card,
		cmdline: "rpideploy.target=/dev/vda rpideploy.serial=" + serial})
	if err := g.wait(bootWait); err != nil {
		t.Fatalf("QEMU: %v\nconsole (last lines):\n%s", err, g.tail(80))
	}
	var board struct {
		mgmtapi.Board
		Deployments []mgmtapi.Deployment `json:"deployments"`
	}
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/boards/"+serial, nil, &board); err != nil {
		t.Fatalf("board %s: %v\nconsole:\n%s", serial, err, g.tail(80))
	}
	if len(board.Deployments) != 1 {
		t.Fatalf("board has %d deployments, want 1\nconsole:\n%s", len(board.Deployments), g.tail(80))
	}
	d := board.Deployments[0]
	if d.State != mgmtapi.DeployVerified || d.SHA256 != man.SHA256 || d.Image != fleet.ImageName {
		t.Fatalf("deployment = state %q sha256 %q image %q (error %q in %q); want verified %s %s",
			d.State, d.SHA256, d.Image, d.Error, d.ErrorPhase, man.SHA256, fleet.ImageName)
	}
	checkCard(t, card, src, info, man, d.Hostname)
	// Nothing of the recovery card is left in the new boot partition.
	boot := card + "@@" + strconv.FormatInt(info.Boot.Offset, 10)
	after, err := exec.Command("mdir", "-b", "-i", boot, "::/").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir of the flashed card: %v\n%s", err, after)
	}
	for _, gone := range []string{"recovery.000", "pieeprom", "readme.txt"} {
		if strings.Contains(strings.ToLower(string(after)), gone) {
			t.Errorf("the flashed card still holds %s:\n%s", gone, after)
		}
	}
}
