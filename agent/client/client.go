// Package client talks to rpi-deployd's agent API (agent/agentapi): hello with
// backoff and jitter for "retry later" answers and transient errors, progress events
// (best effort), the result (retried), and the image manifest.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// ErrRejected is wrapped when the server answers 4xx: retrying cannot help.
var ErrRejected = errors.New("rejected by server")

// Client is an agent API client. Zero-value fields mean their defaults.
type Client struct {
	// Server is the base URL, e.g. "http://10.0.0.1:8080".
	Server string
	HTTP   *http.Client // default: a client with a 30 s timeout per request
	// Retry bounds retries of transient failures (connection refused, 5xx, timeouts).
	Retry retry.Policy
	// Wait bounds how long hello keeps following "retry later" answers (default: no
	// limit; the server decides).
	Wait retry.Policy
	Log  *slog.Logger
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Resolve makes ref (absolute, or relative to the server) absolute.
func (c *Client) Resolve(ref string) (string, error) {
	base, err := url.Parse(c.Server)
	if err != nil {
		return "", fmt.Errorf("server url %q: %w", c.Server, err)
	}
	u, err := base.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", ref, err)
	}
	return u.String(), nil
}

// transientError marks failures worth retrying.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// do sends one request; body is JSON-encoded when not nil and out decoded when not nil.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	u, err := c.Resolve(path)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return transientError{fmt.Errorf("%s %s: %w", method, u, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return transientError{fmt.Errorf("%s %s: read answer: %w", method, u, err)}
	}
	if resp.StatusCode >= 300 {
		var e agentapi.Error
		msg := string(bytes.TrimSpace(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
			if e.Field != "" {
				msg += " (field " + e.Field + ")"
			}
		}
		err := fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, msg)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			return fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return transientError{err}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, u, err)
		}
	}
	return nil
}

// doRetry is do with the Retry policy for transient failures.
func (c *Client) doRetry(ctx context.Context, method, path string, body, out any) error {
	r := c.Retry.Start()
	for {
		err := c.do(ctx, method, path, body, out)
		var te transientError
		if err == nil || !errors.As(err, &te) {
			return err
		}
		c.log().Warn("server not answering; retrying", "path", path, "err", err, "retry", r.Attempts()+1)
		if werr := r.Wait(ctx, 0, err); werr != nil {
			return werr
		}
	}
}

// Hello says hello until the server answers deploy or boot_local, following "retry"
// answers (their delay, with jitter, under the Wait policy) and retrying transient
// failures (under the Retry policy).
func (c *Client) Hello(ctx context.Context, h agentapi.Hello) (*agentapi.HelloResponse, error) {
	wait := c.Wait
	if wait.Budget == 0 {
		wait.Budget = -1
	}
	w := wait.Start()
	for {
		var resp agentapi.HelloResponse
		if err := c.doRetry(ctx, http.MethodPost, agentapi.PathHello, h, &resp); err != nil {
			return nil, fmt.Errorf("hello: %w", err)
		}
		switch resp.Action {
		case agentapi.ActionDeploy:
			if resp.Deployment == nil {
				return nil, fmt.Errorf("hello: deploy answer without a deployment")
			}
			return &resp, nil
		case agentapi.ActionBootLocal:
			return &resp, nil
		case agentapi.ActionRetry:
			d := time.Duration(resp.RetryAfterMS) * time.Millisecond
			c.log().Info("server says retry later", "reason", resp.Reason, "after", d)
			if err := w.Wait(ctx, d, fmt.Errorf("server said retry: %s", resp.Reason)); err != nil {
				return nil, fmt.Errorf("hello: %w", err)
			}
		default:
			return nil, fmt.Errorf("hello: unknown action %q", resp.Action)
		}
	}
}

// Event posts a progress event once (best effort: callers log and go on).
func (c *Client) Event(ctx context.Context, id int64, ev agentapi.Event) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.do(ctx, http.MethodPost, fmt.Sprintf(agentapi.PathEvents, id), ev, nil)
}

// Result posts the result, retrying transient failures.
func (c *Client) Result(ctx context.Context, id int64, res agentapi.Result) error {
	return c.doRetry(ctx, http.MethodPost, fmt.Sprintf(agentapi.PathResult, id), res, nil)
}

// Manifest fetches and validates the manifest at ref (absolute or server-relative).
func (c *Client) Manifest(ctx context.Context, ref string) (*manifest.Manifest, error) {
	var raw json.RawMessage
	if err := c.doRetry(ctx, http.MethodGet, ref, nil, &raw); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := manifest.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", ref, err)
	}
	return m, nil
}
