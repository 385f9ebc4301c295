package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/profile"
)

func (a *API) profileRoutes(m *gin.RouterGroup) {
	m.GET("/profiles", a.listProfiles)
	m.GET("/profiles/:name", a.getProfile)
	m.PUT("/profiles/:name", a.putProfile)
	m.DELETE("/profiles/:name", a.deleteProfile)
	m.GET("/profile-links", a.listProfileLinks)
	m.PUT("/profile-links/:scope/:target", a.putProfileLink)
	m.DELETE("/profile-links/:scope/:target", a.deleteProfileLink)
	m.GET("/effective-profile", a.effectiveProfile)
	m.GET("/deployments/:id/profile", a.deploymentProfile)
}

// profileBody is a profile as PUT: profile.Input, plus the read-only fields of a
// profile as GET shows it, accepted and ignored so that a client can send back what
// it read (a PSK shown as "set" keeps the stored one).
type profileBody struct {
	profile.Input
	PasswordSet *bool  `json:"password_set,omitempty"`
	CreatedAt   string `json:"created_at,omitempty"`
	UpdatedAt   string `json:"updated_at,omitempty"`
}

func (a *API) listProfiles(c *gin.Context) {
	v, err := a.svc.Profiles(c.Request.Context())
	ok(c, v, err)
}

func (a *API) getProfile(c *gin.Context) {
	v, err := a.svc.Profile(c.Request.Context(), c.Param("name"))
	ok(c, v, err)
}

func (a *API) putProfile(c *gin.Context) {
	var b profileBody
	if !bindJSON(c, &b, 4<<20) {
		return
	}
	if b.Name != "" && b.Name != c.Param("name") {
		fail(c, http.StatusBadRequest, "name in body and URL differ", "name")
		return
	}
	b.Name = c.Param("name")
	v, err := a.svc.PutProfile(c.Request.Context(), b.Input)
	ok(c, v, err)
}

func (a *API) deleteProfile(c *gin.Context) {
	err := a.svc.DeleteProfile(c.Request.Context(), c.Param("name"))
	ok(c, gin.H{"deleted": c.Param("name")}, err)
}

func (a *API) listProfileLinks(c *gin.Context) {
	v, err := a.svc.ProfileLinks(c.Request.Context())
	ok(c, v, err)
}

func (a *API) putProfileLink(c *gin.Context) {
	var b struct {
		Profile string `json:"profile"`
	}
	if !bindJSON(c, &b, 4<<10) {
		return
	}
	if b.Profile == "" {
		fail(c, http.StatusBadRequest, "profile: required (DELETE detaches)", "profile")
		return
	}
	v, err := a.svc.AttachProfile(c.Request.Context(), c.Param("scope"), c.Param("target"), b.Profile)
	ok(c, v, err)
}

func (a *API) deleteProfileLink(c *gin.Context) {
	v, err := a.svc.AttachProfile(c.Request.Context(), c.Param("scope"), c.Param("target"), "")
	ok(c, gin.H{"detached": v}, err)
}

func (a *API) effectiveProfile(c *gin.Context) {
	var batch int64
	if s := c.Query("batch"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			fail(c, http.StatusBadRequest, "batch "+strconv.Quote(s)+" is not a batch ID", "batch")
			return
		}
		batch = n
	}
	v, err := a.svc.EffectiveProfile(c.Request.Context(), c.Query("product"), c.Query("venue"), batch)
	ok(c, v, err)
}

func (a *API) deploymentProfile(c *gin.Context) {
	id, good := idParam(c)
	if !good {
		return
	}
	v, found, err := a.svc.DeploymentProfile(c.Request.Context(), id)
	if err == nil && !found {
		fail(c, http.StatusNotFound, "deployment "+c.Param("id")+" has no profile", "")
		return
	}
	ok(c, v, err)
}
