package api

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// maxFirmwareUpload bounds PUT /api/v1/eeprom/firmware: a 2 MiB bootloader image, a
// recovery.bin of at most 1 MiB, a config and the multipart framing.
const maxFirmwareUpload = 4 << 20

func (a *API) eepromRoutes(m *gin.RouterGroup) {
	m.GET("/eeprom/card", a.eepromCard)
	m.GET("/eeprom/card.img", a.eepromCardImage)
	m.PUT("/eeprom/firmware", a.putEEPROMFirmware)
}

// putEEPROMFirmware: PUT /api/v1/eeprom/firmware, multipart/form-data with files
// "pieeprom" (Raspberry Pi's pieeprom-*.bin) and "recovery" (recovery.bin) and an
// optional field "config" (KEY=VALUE lines applied over the fleet defaults). The
// server builds the bootloader card and answers its description.
func (a *API) putEEPROMFirmware(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFirmwareUpload)
	if err := c.Request.ParseMultipartForm(maxFirmwareUpload); err != nil {
		fail(c, http.StatusBadRequest, "want multipart/form-data with files pieeprom and recovery (at most 4 MiB): "+err.Error(), "")
		return
	}
	defer c.Request.MultipartForm.RemoveAll()
	pieeprom, name, err := formFile(c.Request.MultipartForm, "pieeprom")
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error(), "pieeprom")
		return
	}
	recovery, _, err := formFile(c.Request.MultipartForm, "recovery")
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error(), "recovery")
		return
	}
	var settings []string
	for _, v := range c.Request.MultipartForm.Value["config"] {
		settings = append(settings, strings.Split(strings.ReplaceAll(v, "\r\n", "\n"), "\n")...)
	}
	info, err := a.svc.SetEEPROMFirmware(c.Request.Context(), name, pieeprom, recovery, settings)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

func formFile(f *multipart.Form, field string) ([]byte, string, error) {
	hs := f.File[field]
	if len(hs) != 1 {
		return nil, "", fmt.Errorf("want exactly one file in form field %q", field)
	}
	r, err := hs[0].Open()
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, hs[0].Filename, err
}

// eepromCard: GET /api/v1/eeprom/card, the card on offer (404 before any firmware).
func (a *API) eepromCard(c *gin.Context) {
	info, err := a.svc.EEPROMCardInfo(c.Request.Context())
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

// eepromCardImage: GET /api/v1/eeprom/card.img, the card image as a download.
func (a *API) eepromCardImage(c *gin.Context) {
	info, err := a.svc.EEPROMCardInfo(c.Request.Context())
	if err != nil {
		failErr(c, err)
		return
	}
	name := "rpi-deploy-eeprom-card-" + strings.TrimSuffix(strings.TrimPrefix(info.Firmware, "pieeprom-"), ".bin") + ".img"
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("X-Content-SHA256", info.SHA256)
	c.File(a.svc.EEPROMCardFile())
}
