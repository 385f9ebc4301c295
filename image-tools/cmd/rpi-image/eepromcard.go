package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom"
	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// setFlags collects repeated --set KEY=VALUE flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// runEepromCard builds the bootloader recovery card that turns a new Pi 5's network
// boot on (package eeprom). The card appears at -o complete or not at all.
func runEepromCard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eeprom-card", "--firmware FILE|DIR -o CARD.img", stderr)
	firmware := fs.String("firmware", "", "Raspberry Pi's Pi 5 bootloader: a pieeprom-*.bin with recovery.bin beside it, or the `FILE|DIR` holding both")
	bootOrder := fs.String("boot-order", "", "BOOT_ORDER of the embedded config (default 0xf21: SD, then network)")
	var sets setFlags
	fs.Var(&sets, "set", "`KEY=VALUE` of the embedded config, repeatable; keys are those Raspberry Pi documents")
	out := fs.String("o", "", "write the card image to `CARD.img`")
	stop := fs.Bool("stop", false, "name the image pieeprom.bin, as Raspberry Pi's recovery images do: recovery.bin stops after the update "+
		"with the green LED blinking and runs again at every power-on (default pieeprom.upd: it renames itself to RECOVERY.000 "+
		"and the board boots on to the network)")
	stamp := fs.Int64("timestamp", 0, "Unix `SECONDS` for the files and pieeprom.sig's ts: line (default now)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *firmware == "" {
		return fmt.Errorf("%w: eeprom-card needs --firmware: %s", errUsage, eeprom.FirmwareHelp)
	}
	if *out == "" {
		return fmt.Errorf("%w: eeprom-card needs -o CARD.img", errUsage)
	}
	conf := eeprom.DefaultConfig()
	if *bootOrder != "" {
		if err := conf.Set("BOOT_ORDER", *bootOrder); err != nil {
			return err
		}
	}
	for _, kv := range sets {
		if err := conf.SetLine(kv); err != nil {
			return fmt.Errorf("--set %s: %w", kv, err)
		}
	}
	fw, err := eeprom.LoadFirmware(*firmware)
	if err != nil {
		return err
	}
	opt := eeprom.CardOptions{Config: &conf, Stop: *stop}
	if *stamp != 0 {
		opt.Time = time.Unix(*stamp, 0)
	}
	card, err := eeprom.BuildCard(fw, opt)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := atomicfile.Write(*out, func(w io.Writer) error {
		_, err := w.Write(card.Image)
		return err
	}); err != nil {
		return fmt.Errorf("write card %q: %w", *out, err)
	}
	fmt.Fprintf(stdout, "%s: %s as %s, %s\n", *out, fw.Name, card.Name, card.Version)
	fmt.Fprintf(stdout, "embedded bootloader config:\n%s", card.Config)
	fmt.Fprintf(stdout, "write it to cards with: rpi-image write %s /dev/sdX [/dev/sdY …]\n", *out)
	return nil
}
