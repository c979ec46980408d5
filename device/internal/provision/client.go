package provision

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// The hub's paths, relative to the base URL.
const (
	pathInit     = "/api/v1/provisioning/device/init"
	pathPoll     = "/api/v1/provisioning/device/poll"
	pathRegister = "/api/v1/provisioning/device/register"
	pathRefresh  = "/api/v1/provisioning/device/refresh"
)

// DefaultPollInterval is how often Wait polls when the hub does not say.
const DefaultPollInterval = 5 * time.Second

// maxResponse bounds how much of an answer is read.
const maxResponse = 1 << 20

// Options configures a Client. The zero value trusts the system roots.
type Options struct {
	// HTTPClient sends the requests. When nil, the Client makes one that
	// trusts CAFile (or the system roots) and times requests out after 30 s.
	HTTPClient *http.Client
	// CAFile is a PEM file of the certificates to trust for the hub, such
	// as the hub's ca.pem. Ignored when HTTPClient is set.
	CAFile string
	// UserAgent is sent with every request; empty means "ferry-device".
	UserAgent string
}

// Client talks to the provisioning endpoints of one hub. It is safe for
// concurrent use.
type Client struct {
	base string
	http *http.Client
	ua   string
}

// New returns a Client for the hub whose REST API is at baseURL, such as
// "https://hub.example:8080".
func New(baseURL string, opts Options) (*Client, error) {
	base := strings.TrimSuffix(strings.TrimSpace(baseURL), "/")
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
		return nil, fmt.Errorf("provision: hub URL %q must start with https://", baseURL)
	}
	c := &Client{base: base, http: opts.HTTPClient, ua: opts.UserAgent}
	if c.ua == "" {
		c.ua = "ferry-device"
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("provision: CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("provision: CA file %s holds no PEM certificate", opts.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		c.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	return c, nil
}

// InitRequest opens a provisioning operation.
type InitRequest struct {
	ProvisioningToken string          `json:"provisioningToken"`  // required
	DeviceID          string          `json:"deviceId,omitempty"` // the id asked for; the operator may choose another
	ModelID           string          `json:"modelId,omitempty"`  // IoT Plug and Play model id (dtmi:...)
	Data              json.RawMessage `json:"data,omitempty"`     // a JSON object shown to the operator, at most 4 KiB
}

// Operation is an open provisioning operation: show its verification code
// to whoever approves the device, so they can tell it from others.
type Operation struct {
	ID               string    `json:"operationId"`
	VerificationCode string    `json:"verificationCode"` // six characters, e.g. "K7MQ2X"
	ExpiresAt        time.Time `json:"expiresAt"`        // an undecided operation expires then
}

// Registration is a registration token: the device's proof of approval,
// exchanged for credentials by Register and renewed by Refresh.
type Registration struct {
	DeviceID          string    `json:"deviceId"` // may differ from the id asked for
	RegistrationToken string    `json:"registrationToken"`
	ExpiresAt         time.Time `json:"registrationTokenExpiresAt"`
}

// Credentials are what the device connects to the hub with.
type Credentials struct {
	HostName         string `json:"hostName"` // the hub's MQTT host[:port]
	DeviceID         string `json:"deviceId"`
	SharedAccessKey  string `json:"sharedAccessKey"`  // base64
	ConnectionString string `json:"connectionString"` // HostName=..;DeviceId=..;SharedAccessKey=..
	// RegistrationTokenExpiresAt is when the registration token used
	// expires; refresh it before then.
	RegistrationTokenExpiresAt time.Time `json:"registrationTokenExpiresAt"`
}

// pollAnswer is the body of a poll answer.
type pollAnswer struct {
	State             string `json:"state"`
	RetryAfterSeconds int    `json:"retryAfterSeconds"`
	Registration
}

// Init opens a provisioning operation.
func (c *Client) Init(ctx context.Context, req InitRequest) (*Operation, error) {
	var op Operation
	if _, err := c.post(ctx, pathInit, req, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// Poll asks once how an operation stands. It returns (nil, retryAfter, nil)
// while the operation is pending, and the registration token once an
// operator approved it. A rejected or expired operation is an error
// (ErrRejected, ErrExpired).
func (c *Client) Poll(ctx context.Context, provisioningToken, operationID string) (*Registration, time.Duration, error) {
	var ans pollAnswer
	status, err := c.post(ctx, pathPoll, map[string]string{"provisioningToken": provisioningToken, "operationId": operationID}, &ans)
	if err != nil {
		return nil, 0, err
	}
	if status == http.StatusAccepted || ans.State == "pending" {
		return nil, time.Duration(ans.RetryAfterSeconds) * time.Second, nil
	}
	if ans.RegistrationToken == "" {
		return nil, 0, fmt.Errorf("provision: the hub answered state %q without a registration token", ans.State)
	}
	return &ans.Registration, 0, nil
}

// Wait polls op until an operator decides, ctx ends or op expires. It
// retries transient errors (the network is down, the hub restarts) at the
// poll interval the hub asks for. onPending, when not nil, is called after
// each pending answer, for example to show the verification code again.
func (c *Client) Wait(ctx context.Context, provisioningToken string, op *Operation, onPending func(*Operation)) (*Registration, error) {
	for {
		reg, retry, err := c.Poll(ctx, provisioningToken, op.ID)
		switch {
		case err == nil && reg != nil:
			return reg, nil
		case err != nil && !IsTransient(err):
			return nil, err
		case err == nil && onPending != nil:
			onPending(op)
		}
		if retry <= 0 {
			retry = DefaultPollInterval
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Provision opens an operation and waits for its decision. show, when not
// nil, is called once with the operation (its id, verification code and
// expiry) right after it opened; nil prints them to standard output.
func (c *Client) Provision(ctx context.Context, req InitRequest, show func(*Operation)) (*Registration, error) {
	op, err := c.Init(ctx, req)
	if err != nil {
		return nil, err
	}
	if show == nil {
		show = printOperation
	}
	show(op)
	return c.Wait(ctx, req.ProvisioningToken, op, nil)
}

// printOperation is Provision's default display.
func printOperation(op *Operation) {
	fmt.Printf("Waiting for approval of provisioning operation %s: verification code %s (expires %s)\n",
		op.ID, op.VerificationCode, op.ExpiresAt.Local().Format(time.RFC3339))
}

// Register exchanges an unexpired registration token for credentials.
func (c *Client) Register(ctx context.Context, registrationToken string) (*Credentials, error) {
	var cr Credentials
	if _, err := c.post(ctx, pathRegister, map[string]string{"registrationToken": registrationToken}, &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}

// Refresh exchanges a registration token (expired or not) and the
// provisioning token it came from for a new registration token.
func (c *Client) Refresh(ctx context.Context, provisioningToken, registrationToken string) (*Registration, error) {
	var reg Registration
	_, err := c.post(ctx, pathRefresh, map[string]string{"provisioningToken": provisioningToken, "registrationToken": registrationToken}, &reg)
	if err != nil {
		return nil, err
	}
	return &reg, nil
}

// post sends body as JSON and decodes a 2xx answer into out.
func (c *Client) post(ctx context.Context, path string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("provision: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("provision: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, &transientError{err: fmt.Errorf("provision: %w", err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, &transientError{err: fmt.Errorf("provision: read answer: %w", err)}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, errorFromAnswer(resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, fmt.Errorf("provision: decode answer of %s: %w", path, err)
	}
	return resp.StatusCode, nil
}

// transientError is a failure to reach the hub.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// IsTransient reports whether err may go away by itself: the hub could not
// be reached, answered 5xx or 429, or the answer was cut. The hub's
// refusals (the sentinels, bad input) are not transient.
func IsTransient(err error) bool {
	var t *transientError
	if errors.As(err, &t) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return false
}
