package client

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
)

// PullImage has the server pull image name from the site from ("" = a site that
// holds it; POST /api/v1/images/NAME/pull) and follows the pull, asking every
// interval (GET /api/v1/images/NAME, the server's own site's entry), until the
// server's site holds the image ready (nil), the pull stops with an error, or ctx
// ends. progress, if set, gets the bytes held and the image's compressed size: once
// when the pull starts, then after each poll.
func (c *Client) PullImage(ctx context.Context, name, from string, every time.Duration, progress func(bytes, size int64)) error {
	path := "/api/v1/images/" + url.PathEscape(name)
	var st mgmtapi.UploadState
	if err := c.Post(ctx, path+"/pull", map[string]string{"from": from}, &st); err != nil {
		return err
	}
	var health struct {
		Site string `json:"site"`
	}
	if err := c.Get(ctx, "/healthz", nil, &health); err != nil {
		return err
	}
	if progress != nil {
		progress(st.Offset, st.Size)
	}
	for st.State != mgmtapi.ImageReady {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
		var img mgmtapi.ImageView
		if err := c.Get(ctx, path, nil, &img); err != nil {
			return err
		}
		me, ok := siteEntry(img, health.Site)
		if !ok {
			continue // not recorded yet
		}
		if progress != nil {
			progress(me.Bytes, st.Size)
		}
		if me.State == mgmtapi.ImageSiteReady {
			return nil
		}
		if me.Error != "" {
			return &PullStopped{Name: name, Bytes: me.Bytes, Size: st.Size, Reason: me.Error}
		}
	}
	return nil
}

// PullStopped is a pull that stopped with an error at the server; the next pull
// continues after the bytes it holds.
type PullStopped struct {
	Name        string
	Bytes, Size int64
	Reason      string
}

func (e *PullStopped) Error() string {
	return fmt.Sprintf("pull of image %q stopped at %d of %d bytes: %s", e.Name, e.Bytes, e.Size, e.Reason)
}

// siteEntry finds the entry of site among an image's sites.
func siteEntry(img mgmtapi.ImageView, site string) (mgmtapi.ImageSite, bool) {
	for _, s := range img.Sites {
		if s.Site == site {
			return s, true
		}
	}
	return mgmtapi.ImageSite{}, false
}
