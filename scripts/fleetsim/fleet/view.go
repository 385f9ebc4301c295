package fleet

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
)

// APIView reads the server's deployments over its management API
// (GET /api/v1/deployments, docs/api.md) with the admin token.
type APIView struct {
	Server string // base URL
	Token  string // admin token (RPI_DEPLOY_TOKEN)
	// Batch, if non-zero, limits the view to one batch's deployments.
	Batch int64
}

// Boards returns each board's newest deployment, by lower-case serial.
func (v *APIView) Boards(ctx context.Context) (map[string]ServerBoard, error) {
	q := url.Values{"limit": {"100000"}}
	if v.Batch != 0 {
		q.Set("batch", fmt.Sprint(v.Batch))
	}
	var list []mgmtapi.Deployment
	if err := client.New(v.Server, v.Token).Get(ctx, "/api/v1/deployments", q, &list); err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	out := make(map[string]ServerBoard, len(list))
	for _, d := range list {
		s := strings.ToLower(d.Serial)
		if prev, ok := out[s]; ok && prev.DeploymentID > d.ID {
			continue // keep the newest
		}
		phase := d.Phase
		if d.State != mgmtapi.DeployOpen {
			phase = d.State // verified, failed, abandoned: the end is what counts
		}
		errText := d.Error
		if errText != "" && d.ErrorPhase != "" {
			errText = d.ErrorPhase + ": " + errText
		}
		out[s] = ServerBoard{Serial: s, DeploymentID: d.ID, Hostname: d.Hostname, Phase: phase, Error: errText, Bytes: d.Bytes, Total: d.Total}
	}
	return out, nil
}
