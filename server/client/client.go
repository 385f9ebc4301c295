// Package client is the Go client of rpi-deployd's management API: one client used
// by the operator CLI, by server/servertest and by the demo.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/tlscert"
)

// DefaultServer is the server URL when none is given.
const DefaultServer = "http://127.0.0.1:8080"

// Client talks to one server.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8080 (no trailing slash needed)
	Token string // admin token or session token, sent as Authorization: Bearer
	HTTP  *http.Client
}

// New returns a client; an empty url means DefaultServer.
func New(serverURL, token string) *Client {
	if serverURL == "" {
		serverURL = DefaultServer
	}
	return &Client{URL: strings.TrimSuffix(serverURL, "/"), Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// SetTLS makes the client trust an HTTPS server by a CA file (PEM; a self-signed
// server certificate can be its own CA file) and/or by the SHA-256 fingerprint of its
// certificate (hex, as rpi-deployd prints it at start; colons allowed). With neither,
// the system's roots apply. Certificate verification is never switched off.
func (c *Client) SetTLS(caFile, fingerprint string) error {
	if caFile == "" && fingerprint == "" {
		return nil
	}
	cfg, err := tlscert.ClientConfig(caFile, fingerprint)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	timeout := 5 * time.Minute
	if c.HTTP != nil {
		timeout = c.HTTP.Timeout
	}
	c.HTTP = &http.Client{Timeout: timeout, Transport: tr}
	return nil
}

// Error is a non-2xx answer.
type Error struct {
	Status int
	Msg    string
	Field  string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("HTTP %d: %s (field %s)", e.Status, e.Msg, e.Field)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Msg)
}

// StatusOf returns the HTTP status of an *Error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Do sends a request. body may be nil, an io.Reader (sent as is) or a value (sent as
// JSON); out may be nil, *[]byte (raw body) or a value to decode JSON into. path is
// relative to the server ("/api/v1/venues"); query may be nil.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, "application/octet-stream"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		var body struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if json.Unmarshal(data, &body) == nil && body.Error != "" {
			e.Msg, e.Field = body.Error, body.Field
		} else {
			e.Msg = strings.TrimSpace(string(data))
		}
		return e
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = data
		return nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
		return nil
	}
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, path, query, nil, out)
}

// Post is Do with POST.
func (c *Client) Post(ctx context.Context, path string, body, out any) error {
	return c.Do(ctx, http.MethodPost, path, nil, body, out)
}

// Put is Do with PUT.
func (c *Client) Put(ctx context.Context, path string, body, out any) error {
	return c.Do(ctx, http.MethodPut, path, nil, body, out)
}

// Delete is Do with DELETE.
func (c *Client) Delete(ctx context.Context, path string) error {
	return c.Do(ctx, http.MethodDelete, path, nil, nil, nil)
}
