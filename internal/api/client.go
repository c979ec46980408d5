package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// tokenTTL is the life of the SAS token signed for each request. Node's
// azure-iothub signs every call with an hour, and so do we: a token per
// request never expires mid-use and is cheap (one HMAC).
const tokenTTL = time.Hour

// requestTimeout bounds a request that does not long-poll, so a hub that
// accepts the connection and never answers cannot hang a script. A long poll
// gets its wait on top.
const requestTimeout = 60 * time.Second

// ClientOptions configures a Client. The zero value talks to
// https://{HostName} and trusts the system's root certificates.
type ClientOptions struct {
	// HTTPClient sends the requests. When nil, the Client makes one whose
	// TLS configuration trusts CAFile (or the system roots).
	HTTPClient *http.Client
	// CAFile is a PEM file of certificates to trust instead of the system
	// roots, typically the hub's ca.pem. Ignored when HTTPClient is set.
	CAFile string
	// BaseURL overrides "https://{HostName}", for example for a hub behind
	// a proxy. The connection string's HostName still goes into tokens.
	BaseURL string
	// UserAgent is sent with every request; empty means "ferry".
	UserAgent string
	// Now returns the current time, for token expiry; nil means time.Now.
	Now func() time.Time
}

// Client is a client of the hub's service REST API, authenticated with a
// shared access policy's connection string. It is safe for concurrent use.
type Client struct {
	http      *http.Client
	base      string // scheme://host[:port], no trailing slash
	hostName  string // the connection string's HostName: the token's sr
	keyName   string // the policy name: the token's skn
	key       []byte // the policy key, decoded
	userAgent string
	now       func() time.Time
}

// NewClient returns a Client for the service connection string connString
// ("HostName=..;SharedAccessKeyName=..;SharedAccessKey=..").
func NewClient(connString string, opts ClientOptions) (*Client, error) {
	cs, err := protocol.ParseConnectionString(connString)
	if err != nil {
		return nil, fault.Invalidf("hub connection string: %v", err)
	}
	if !cs.IsService() || cs.SharedAccessKey == "" {
		return nil, fault.Invalidf("hub connection string: want a service connection string " +
			"(HostName=..;SharedAccessKeyName=..;SharedAccessKey=..), not a device's")
	}
	key, err := protocol.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		return nil, fault.Invalidf("hub connection string: %v", err)
	}
	c := &Client{
		http:      opts.HTTPClient,
		base:      strings.TrimSuffix(opts.BaseURL, "/"),
		hostName:  cs.HostName,
		keyName:   cs.SharedAccessKeyName,
		key:       key,
		userAgent: opts.UserAgent,
		now:       opts.Now,
	}
	if c.base == "" {
		c.base = "https://" + cs.HostName
	}
	if c.userAgent == "" {
		c.userAgent = "ferry"
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		if c.http, err = newHTTPClient(opts.CAFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// newHTTPClient returns an HTTP client that trusts caFile, or the system
// roots when caFile is empty.
func newHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("api: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fault.Invalidf("CA file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr}, nil
}

// HostName returns the hub host name of the connection string.
func (c *Client) HostName() string { return c.hostName }

// token returns a service SAS token for the hub, valid for tokenTTL. Its sr
// is the host name exactly as in the connection string, not percent-encoded,
// as Azure's Node service SDK writes it (PROTOCOL.md §2.2); the signed text is
// "<sr>\n<se>".
func (c *Client) token() string {
	se := strconv.FormatInt(c.now().Add(tokenTTL).Unix(), 10)
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(c.hostName + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return "SharedAccessSignature sr=" + c.hostName + "&sig=" + url.QueryEscape(sig) +
		"&se=" + se + "&skn=" + url.QueryEscape(c.keyName)
}

// request is one call to the API.
type request struct {
	method  string
	path    string     // already escaped
	query   url.Values // api-version is added
	header  http.Header
	body    any           // marshalled as JSON when not nil
	raw     []byte        // sent as is when body is nil and raw is not (Content-Type from header)
	wait    time.Duration // the long-poll wait the hub may take before answering
	out     any           // the JSON success body is decoded into it when not nil
	rawOut  *[]byte       // the success body as is, when not nil
	outHead func(http.Header)
}

// do sends r and decodes its answer. A status >= 300 returns the hub's error
// as a *fault.Error.
func (c *Client) do(ctx context.Context, r request) error {
	q := r.query
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", APIVersion)
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("api: encode %s %s: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	} else if r.raw != nil {
		body = bytes.NewReader(r.raw)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+r.wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path+"?"+q.Encode(), body)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", c.token())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return ErrorFromResponse(resp)
	}
	if r.outHead != nil {
		r.outHead(resp.Header)
	}
	if r.rawOut != nil {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("api: %s %s: read response: %w", r.method, r.path, err)
		}
		*r.rawOut = b
		return nil
	}
	if r.out == nil {
		_, _ = io.Copy(io.Discard, resp.Body) // let the connection be reused
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(r.out); err != nil {
		return fmt.Errorf("api: %s %s: decode response: %w", r.method, r.path, err)
	}
	return nil
}

// unreachable classifies a transport error. A cancelled context stays
// recognisable with errors.Is; anything else means the hub could not be
// reached, which is Unavailable so callers may retry.
func unreachable(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &fault.Error{Kind: fault.Timeout, Msg: "the hub did not answer in time", Err: err}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // the URL is in the message already, once is enough
	}
	var herr x509.HostnameError
	if errors.As(err, &herr) {
		return &fault.Error{Kind: fault.Unavailable, Msg: "the hub's TLS certificate is not valid for " +
			herr.Host + " (the hub's --host flag adds names to it)", Err: err}
	}
	var cerr *tls.CertificateVerificationError
	if errors.As(err, &cerr) {
		return &fault.Error{Kind: fault.Unavailable, Msg: "the hub's TLS certificate is not trusted " +
			"(pass the hub's CA with --ca or FERRY_CA)", Err: err}
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: "cannot reach the hub", Err: err}
}

// ifMatchHeader quotes an etag for If-Match as Azure's ensureQuoted does; "" and
// "*" mean any version.
func ifMatchHeader(etag string) http.Header {
	if etag == "" || etag == "*" {
		return http.Header{"If-Match": {`"*"`}}
	}
	if !strings.HasPrefix(etag, `"`) {
		etag = `"` + etag + `"`
	}
	return http.Header{"If-Match": {etag}}
}

// devicePath is the path of one device.
func devicePath(id string) string { return "/devices/" + url.PathEscape(id) }

// CreateDevice registers a new device. Empty symmetric keys make the hub
// generate them. An existing id is fault.Conflict.
func (c *Client) CreateDevice(ctx context.Context, d registry.Device) (*registry.Device, error) {
	var out registry.Device
	err := c.do(ctx, request{method: http.MethodPut, path: devicePath(d.DeviceID), body: d, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateDevice replaces a device's identity if its etag still matches (""
// means any version). A stale etag is fault.PreconditionFailed.
func (c *Client) UpdateDevice(ctx context.Context, d registry.Device, etag string) (*registry.Device, error) {
	var out registry.Device
	err := c.do(ctx, request{method: http.MethodPut, path: devicePath(d.DeviceID),
		header: ifMatchHeader(etag), body: d, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDevice returns one device; an unknown id is fault.NotFound.
func (c *Client) GetDevice(ctx context.Context, id string) (*registry.Device, error) {
	var out registry.Device
	if err := c.do(ctx, request{method: http.MethodGet, path: devicePath(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteDevice removes a device if its etag still matches ("" means any
// version).
func (c *Client) DeleteDevice(ctx context.Context, id, etag string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: devicePath(id), header: ifMatchHeader(etag)})
}

// ListDevices returns up to top devices (0 lets the hub choose) ordered by
// id, starting after the page that returned continuation ("" for the first
// page). The returned continuation is "" on the last page.
func (c *Client) ListDevices(ctx context.Context, top int, continuation string) ([]registry.Device, string, error) {
	q := url.Values{}
	if top > 0 {
		q.Set("top", strconv.Itoa(top))
	}
	var h http.Header
	if continuation != "" {
		h = http.Header{http.CanonicalHeaderKey(ContinuationHeader): {continuation}}
	}
	var (
		out  []registry.Device
		next string
	)
	// The trailing slash is Azure's list path (PROTOCOL.md §2.4).
	err := c.do(ctx, request{method: http.MethodGet, path: "/devices/", query: q, header: h, out: &out,
		outHead: func(h http.Header) { next = h.Get(ContinuationHeader) }})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Hub returns facts about the hub, such as the host name devices connect to.
func (c *Client) Hub(ctx context.Context) (*HubInfo, error) {
	var out HubInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/hub", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Streams lists the hub's telemetry streams.
func (c *Client) Streams(ctx context.Context) ([]StreamInfo, error) {
	var out []StreamInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/streams", out: &out}); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadQuery selects messages of a stream read. Zero fields do not filter.
type ReadQuery struct {
	Group  string        // stream group
	Device string        // device id
	From   string        // where a read without a position starts: RFC 3339 time, "beginning" or "now"
	To     string        // RFC 3339 time after which messages are left out
	After  string        // cursor: read the messages after this position (plain reads only)
	Limit  int           // most messages in the page (1..1000); 0 lets the hub choose
	Wait   time.Duration // how long the hub may wait for a first message when none is there yet
}

// values encodes q as query parameters.
func (q ReadQuery) values() url.Values {
	v := url.Values{}
	for _, p := range [...]struct{ k, v string }{{"group", q.Group}, {"device", q.Device},
		{"from", q.From}, {"to", q.To}, {"after", q.After}} {
		if p.v != "" {
			v.Set(p.k, p.v)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Wait > 0 {
		v.Set("wait", q.Wait.String())
	}
	return v
}

// ReadStream reads a page of messages from stream ("*" for all streams).
func (c *Client) ReadStream(ctx context.Context, stream string, q ReadQuery) (*MessagePage, error) {
	var out MessagePage
	err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/streams/" + streamSegment(stream) + "/messages",
		query: q.values(), wait: q.Wait, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ReadConsumerGroup reads the page of messages after consumer group cg's
// committed position in stream. It does not move the position: Commit does,
// once the caller has handled the page. q.From applies only while the group
// has no position; q.After is ignored.
func (c *Client) ReadConsumerGroup(ctx context.Context, cg, stream string, q ReadQuery) (*MessagePage, error) {
	q.After = ""
	var out MessagePage
	err := c.do(ctx, request{method: http.MethodGet, path: consumerGroupPath(cg, stream) + "/messages",
		query: q.values(), wait: q.Wait, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Commit stores cursor as consumer group cg's position in stream, so its next
// read starts after it.
func (c *Client) Commit(ctx context.Context, cg, stream, cursor string) error {
	return c.do(ctx, request{method: http.MethodPut, path: consumerGroupPath(cg, stream) + "/position",
		body: Position{Cursor: cursor}})
}

// CommittedPosition returns consumer group cg's position in stream; a group
// that has not committed yet is fault.NotFound.
func (c *Client) CommittedPosition(ctx context.Context, cg, stream string) (string, error) {
	var out Position
	err := c.do(ctx, request{method: http.MethodGet, path: consumerGroupPath(cg, stream) + "/position", out: &out})
	return out.Cursor, err
}

func consumerGroupPath(cg, stream string) string {
	return "/api/v1/consumergroups/" + url.PathEscape(cg) + "/streams/" + streamSegment(stream)
}

// streamSegment escapes a stream name for a path, keeping the wildcard "*"
// readable in logs (the hub unescapes either form).
func streamSegment(stream string) string {
	if stream == "*" {
		return "*"
	}
	return url.PathEscape(stream)
}
