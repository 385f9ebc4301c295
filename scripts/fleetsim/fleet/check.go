package fleet

import (
	"context"
	"fmt"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// check holds every board's end against the server's deployments and the card.
//
//   - The agent said verified (exit 0): the server must show the deployment
//     verified, and the card must hold the image: every data chunk read back matches
//     the manifest, except the chunks of the boot partition, which the agent changed
//     on purpose (first-boot hostname). Otherwise the board is BadVerified.
//   - The agent failed: the server must show the deployment failed (its error is the
//     cause); a deployment still open on the server is Stuck; one the server shows
//     verified is BadVerified.
func (f *Fleet) check(ctx context.Context) {
	f.refresh(ctx)
	boot, hasBoot := f.cfg.Manifest.Bootfs()
	skip := func(chunk int) bool {
		if !hasBoot {
			return false
		}
		r := f.cfg.Manifest.ChunkRange(chunk)
		return r.Offset < boot.Start+boot.Size && boot.Start < r.End()
	}
	for _, b := range f.Boards {
		if b.Outcome == Canceled || b.Outcome == SimError {
			continue
		}
		sb, seen := f.serverBoard(b.Serial)
		if seen {
			b.Hostname = sb.Hostname
		}
		if f.cfg.View != nil {
			switch {
			case b.Outcome == Stuck:
				// already the worst
			case !seen && b.Outcome == Verified:
				b.Outcome, b.Cause = Failed, "the agent exited 0 but the server opened no deployment for it (boot local?)"
				continue
			case !seen:
				// failed before the server opened a deployment: the agent's cause stands
			case sb.Phase == agentapi.PhaseVerified && b.Outcome != Verified:
				b.Outcome, b.Cause = BadVerified, fmt.Sprintf("server shows deployment %d verified, but the agent failed: %s", sb.DeploymentID, b.Cause)
				continue
			case sb.Phase == agentapi.PhaseFailed && b.Outcome == Verified:
				b.Outcome, b.Cause = Failed, fmt.Sprintf("agent exited 0 but the server shows deployment %d failed: %s", sb.DeploymentID, sb.Error)
				continue
			case sb.Phase == agentapi.PhaseFailed:
				if sb.Error != "" {
					b.Cause = sb.Error
				}
			case sb.Phase != agentapi.PhaseVerified:
				b.Outcome, b.Cause = Stuck, fmt.Sprintf("the agent ended (%s %s) but the server still shows deployment %d in %q", b.Outcome, b.Cause, sb.DeploymentID, sb.Phase)
				continue
			}
		}
		if b.Outcome != Verified {
			continue
		}
		n, err := readback.Verify(ctx, b.Target, f.cfg.Manifest, readback.Options{Skip: skip, Workers: 1})
		if err != nil {
			b.Outcome, b.Cause = BadVerified, fmt.Sprintf("card does not hold the image: %v", err)
			continue
		}
		f.logf("board %03d %s: card checked, %d chunks match", b.Index, b.Serial, n)
	}
}
