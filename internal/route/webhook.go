package route

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// Webhook headers.
const (
	SignatureHeader  = "X-Ferry-Signature"  // "sha256=" + hex HMAC-SHA256 of the body under the endpoint's secret
	PropertiesHeader = "X-Ferry-Properties" // application properties, form-encoded (k=v&k2=v2)
	AttemptHeader    = "X-Ferry-Attempt"    // 1 for the first attempt
)

// webhookConcurrency bounds the requests in flight to one webhook endpoint.
const webhookConcurrency = 8

// Sign returns the signature header value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// postWebhook POSTs the body, retrying transient failures (network errors,
// 408, 429 and 5xx) with exponential backoff and full jitter. A 2xx answer
// is success; another 4xx fails at once.
func (s *Service) postWebhook(ctx context.Context, d *delivery) error {
	select {
	case d.ep.sem <- struct{}{}:
		defer func() { <-d.ep.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	form := url.Values{}
	for _, kv := range d.props {
		form.Add(kv.Key, kv.Value)
	}
	props := form.Encode()
	var sig string
	if d.ep.Secret != "" {
		sig = Sign([]byte(d.ep.Secret), d.m.Body)
	}
	timeout := 10 * time.Second
	if d.ep.TimeoutSeconds > 0 {
		timeout = time.Duration(d.ep.TimeoutSeconds) * time.Second
	}
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		retry, err = s.postOnce(ctx, d, attempt, props, sig, timeout)
		if err == nil || !retry || attempt >= s.cfg.WebhookAttempts || ctx.Err() != nil {
			break
		}
		s.cfg.Metrics.webhookRetry(d.c.Name)
		backoff := min(s.cfg.WebhookBackoff<<(attempt-1), 10*time.Second)
		sleep(ctx, time.Duration(rand.Int64N(int64(backoff)+1)))
	}
	return err
}

func (s *Service) postOnce(ctx context.Context, d *delivery, attempt int, props, sig string, timeout time.Duration) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, d.ep.URL, bytes.NewReader(d.m.Body))
	if err != nil {
		return false, err
	}
	for _, h := range systemHeaders(d.m) {
		req.Header.Set(h[0], h[1])
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set(PropertiesHeader, props)
	req.Header.Set(AttemptHeader, fmt.Sprint(attempt))
	req.Header.Set("User-Agent", "ferry-router")
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook answered %s", resp.Status)
	}
}
