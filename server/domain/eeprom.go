package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// EEPROMCard describes the bootloader recovery card the server offers for download.
type EEPROMCard = mgmtapi.EEPROMCard

var firmwareName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (s *Service) eepromDir() string { return filepath.Join(s.opt.DataDir, "eeprom") }

// EEPROMCardFile is the path of the built card image.
func (s *Service) EEPROMCardFile() string { return filepath.Join(s.eepromDir(), "card.img") }

// SetEEPROMFirmware checks the operator's Pi 5 bootloader image and recovery.bin,
// embeds the fleet config (eeprom.DefaultConfig, then each KEY=VALUE of settings
// applied over it) and replaces the card on offer. Bad firmware or settings are
// ErrInvalid naming the problem; the card on offer before stays as it was.
func (s *Service) SetEEPROMFirmware(ctx context.Context, name string, pieeprom, recovery []byte, settings []string) (EEPROMCard, error) {
	// The name goes into file names and a download's Content-Disposition: keep a
	// plain one only.
	name = filepath.Base(strings.TrimSpace(name))
	if !firmwareName.MatchString(name) {
		name = "pieeprom.bin"
	}
	fw, err := eeprom.NewFirmware(name, pieeprom, recovery)
	if err != nil {
		return EEPROMCard{}, invalid("pieeprom", "%v", err)
	}
	conf := eeprom.DefaultConfig()
	for _, kv := range settings {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		if err := conf.SetLine(kv); err != nil {
			return EEPROMCard{}, invalid("config", "%v", err)
		}
	}
	now := s.now()
	card, err := eeprom.BuildCard(fw, eeprom.CardOptions{Config: &conf, Time: now})
	if err != nil {
		return EEPROMCard{}, invalid("config", "%v", err)
	}
	sum := sha256.Sum256(card.Image)
	info := EEPROMCard{
		Firmware: fw.Name, Version: card.Version, Config: string(card.Config),
		Size: int64(len(card.Image)), SHA256: hex.EncodeToString(sum[:]), Built: now,
	}
	meta, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return EEPROMCard{}, err
	}

	s.eepromMu.Lock()
	defer s.eepromMu.Unlock()
	if err := os.MkdirAll(s.eepromDir(), 0o755); err != nil {
		return EEPROMCard{}, err
	}
	// The card first, its description last: a reader of card.json finds the card
	// it describes (the card's own hash is in it).
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"pieeprom.bin", pieeprom}, {"recovery.bin", recovery}, {"card.img", card.Image}, {"card.json", meta},
	} {
		if err := writeFileSync(filepath.Join(s.eepromDir(), f.name), f.data); err != nil {
			return EEPROMCard{}, err
		}
	}
	err = s.st.Update(ctx, func(t *store.Tx) error {
		return t.Audit(ctx, Actor(ctx), "eeprom.firmware", fw.Name, fmt.Sprintf("%s; card sha256 %s", card.Version, info.SHA256))
	})
	if err != nil {
		return EEPROMCard{}, err
	}
	s.log.Info("eeprom card built", "firmware", fw.Name, "version", card.Version, "sha256", info.SHA256)
	return info, nil
}

// EEPROMCardInfo returns the card on offer, or ErrNotFound before any firmware was
// uploaded.
func (s *Service) EEPROMCardInfo(ctx context.Context) (EEPROMCard, error) {
	b, err := os.ReadFile(filepath.Join(s.eepromDir(), "card.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return EEPROMCard{}, fmt.Errorf("%w: no bootloader firmware uploaded yet (PUT /api/v1/eeprom/firmware)", ErrNotFound)
	}
	if err != nil {
		return EEPROMCard{}, err
	}
	var info EEPROMCard
	if err := json.Unmarshal(b, &info); err != nil {
		return EEPROMCard{}, fmt.Errorf("read %s: %w", filepath.Join(s.eepromDir(), "card.json"), err)
	}
	return info, nil
}
