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
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// ErrRejected is wrapped when the server answers 4xx: retrying cannot help.
var ErrRejected = errors.New("rejected by server")

// ErrSecret is wrapped (with ErrRejected) when the server refuses the deployment
// secret (401): a newer hello of this board replaced it.
var ErrSecret = errors.New("deployment secret refused")

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

	mu      sync.Mutex
	hello   *agentapi.Hello  // the last hello sent
	secrets map[int64]string // deployment ID → its secret, from the hello answers
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

// doWith sends one request; body is JSON-encoded when not nil and out decoded when not
// nil, and secret (when not "") goes in the deployment secret header.
func (c *Client) doWith(ctx context.Context, method, path, secret string, body, out any) error {
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
	if secret != "" {
		req.Header.Set(agentapi.HeaderSecret, secret)
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
		if resp.StatusCode == http.StatusUnauthorized && secret != "" {
			return fmt.Errorf("%w: %w: %w", ErrRejected, ErrSecret, err)
		}
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
	return c.doRetryWith(ctx, method, path, "", body, out)
}

// doRetryWith is doRetry with a deployment secret.
func (c *Client) doRetryWith(ctx context.Context, method, path, secret string, body, out any) error {
	r := c.Retry.Start()
	for {
		err := c.doWith(ctx, method, path, secret, body, out)
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
	c.mu.Lock()
	c.hello = &h
	c.mu.Unlock()
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
			c.remember(resp.Deployment)
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

// remember keeps the secret of a deployment the server gave this client.
func (c *Client) remember(d *agentapi.Deployment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secrets == nil {
		c.secrets = map[int64]string{}
	}
	c.secrets[d.ID] = d.Secret
}

func (c *Client) secret(id int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secrets[id]
}

// Event posts a progress event once (best effort: callers log and go on), with the
// deployment's secret from the hello answer.
func (c *Client) Event(ctx context.Context, id int64, ev agentapi.Event) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.doWith(ctx, http.MethodPost, fmt.Sprintf(agentapi.PathEvents, id), c.secret(id), ev, nil)
}

// Result posts the result with the deployment's secret, retrying transient
// failures. When the server refuses the secret (another hello as this board's
// serial replaced it), it says hello once more: if the answer is the same open
// deployment, its new secret carries the result.
func (c *Client) Result(ctx context.Context, id int64, res agentapi.Result) error {
	path := fmt.Sprintf(agentapi.PathResult, id)
	err := c.doRetryWith(ctx, http.MethodPost, path, c.secret(id), res, nil)
	c.mu.Lock()
	h := c.hello
	c.mu.Unlock()
	if !errors.Is(err, ErrSecret) || h == nil {
		return err
	}
	c.log().Warn("server refused the deployment secret; saying hello again for a new one", "deployment", id)
	var resp agentapi.HelloResponse
	if herr := c.doRetry(ctx, http.MethodPost, agentapi.PathHello, h, &resp); herr != nil {
		return fmt.Errorf("%w; hello again: %w", err, herr)
	}
	if resp.Action != agentapi.ActionDeploy || resp.Deployment == nil || resp.Deployment.ID != id {
		return fmt.Errorf("%w; hello again answered %s, not deployment %d", err, resp.Action, id)
	}
	c.remember(resp.Deployment)
	return c.doRetryWith(ctx, http.MethodPost, path, resp.Deployment.Secret, res, nil)
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
