package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIView reads the server's deployments over its management API
// (GET /api/v1/deployments, docs/api.md) with the admin token.
type APIView struct {
	Server string // base URL
	Token  string // admin token (RPI_DEPLOY_TOKEN)
	// Batch, if non-zero, limits the view to one batch's deployments.
	Batch  int64
	Client *http.Client // nil: a client with a 10 s timeout
}

// apiDeployment is the part of the server's deployment JSON the simulator reads.
type apiDeployment struct {
	ID       int64  `json:"id"`
	Serial   string `json:"serial"`
	Hostname string `json:"hostname"`
	State    string `json:"state"` // open, verified, failed, abandoned
	Phase    string `json:"phase"`
	Bytes    int64  `json:"bytes"`
	Total    int64  `json:"total"`
	Error    string `json:"error"`
	ErrPhase string `json:"error_phase"`
}

// Boards returns each board's newest deployment, by lower-case serial.
func (v *APIView) Boards(ctx context.Context) (map[string]ServerBoard, error) {
	c := v.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	q := url.Values{"limit": {"100000"}}
	if v.Batch != 0 {
		q.Set("batch", fmt.Sprint(v.Batch))
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(v.Server, "/")+"/api/v1/deployments?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+v.Token)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("deployments: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var list []apiDeployment
	if err := json.Unmarshal(body, &list); err != nil {
		var wrapped struct {
			Deployments []apiDeployment `json:"deployments"`
		}
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil {
			return nil, fmt.Errorf("deployments: decode: %w", err)
		}
		list = wrapped.Deployments
	}
	out := make(map[string]ServerBoard, len(list))
	for _, d := range list {
		s := strings.ToLower(d.Serial)
		if prev, ok := out[s]; ok && prev.DeploymentID > d.ID {
			continue // keep the newest
		}
		phase := d.Phase
		if d.State != "" && d.State != "open" {
			phase = d.State // verified, failed, abandoned: the end is what counts
		}
		errText := d.Error
		if errText != "" && d.ErrPhase != "" {
			errText = d.ErrPhase + ": " + errText
		}
		out[s] = ServerBoard{Serial: s, DeploymentID: d.ID, Hostname: d.Hostname, Phase: phase, Error: errText, Bytes: d.Bytes, Total: d.Total}
	}
	return out, nil
}
