package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ferry-iot/ferry/internal/c2d"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/method"
	"github.com/ferry-iot/ferry/internal/stream"
)

// endpoint is a compiled endpoint.
type endpoint struct {
	Endpoint
	from targetFrom
	sem  chan struct{} // webhook: requests in flight, cap webhookConcurrency
}

// delivery is one message on its way to one endpoint.
type delivery struct {
	c     *compiled
	ep    *endpoint
	m     *stream.Message
	props []stream.Property // application properties, enriched

	device, module string // the target of a device endpoint
}

// routedCopy is m as a stream endpoint or the dead-letter stream stores it:
// body and system properties untouched, enriched properties, marked so the
// router does not route it again.
func (s *Service) routedCopy(m *stream.Message, streamName string, props []stream.Property) *stream.Message {
	cp := *m
	cp.Stream = streamName
	cp.MessageType = RoutedType
	cp.Properties = props
	cp.EnqueuedTime = s.cfg.Now()
	cp.Cursor = stream.Cursor{}
	return &cp
}

func (s *Service) toStream(p *page, c *compiled, ep *endpoint, m *stream.Message, props []stream.Property) {
	if err := p.append(s.routedCopy(m, ep.Name, props)); err != nil {
		s.failed(c, ep, err)
		return
	}
	c.met.routed.Inc()
}

func (s *Service) toNATS(p *page, c *compiled, ep *endpoint, m *stream.Message, props []stream.Property) {
	if s.cfg.NATS == nil {
		s.failed(c, ep, errors.New("no NATS connection"))
		return
	}
	msg := &nats.Msg{Subject: ep.Name, Data: m.Body, Header: nats.Header{}}
	for _, h := range systemHeaders(m) {
		msg.Header.Set(h[0], h[1])
	}
	for _, kv := range props {
		msg.Header.Add("Ferry-Prop-"+kv.Key, kv.Value)
	}
	if err := s.cfg.NATS.PublishMsg(msg); err != nil {
		s.failed(c, ep, err)
		s.deadLetter(p, c, ep, m, props, err)
		return
	}
	p.nats = true
	c.met.routed.Inc()
}

// systemHeaders are the message's system properties as header pairs, for
// webhooks and NATS.
func systemHeaders(m *stream.Message) [][2]string {
	h := make([][2]string, 0, 8)
	add := func(k, v string) {
		if v != "" {
			h = append(h, [2]string{k, v})
		}
	}
	add("Ferry-Device-Id", m.DeviceID)
	add("Ferry-Module-Id", m.ModuleID)
	add("Ferry-Message-Id", m.MessageID)
	add("Ferry-Correlation-Id", m.CorrelationID)
	add("Ferry-Stream", orDefault(m.Stream))
	add("Ferry-To", m.To)
	add("Content-Type", m.ContentType)
	add("Content-Encoding", m.ContentEncoding)
	if !m.EnqueuedTime.IsZero() {
		add("Ferry-Enqueued-Time", m.EnqueuedTime.UTC().Format(time.RFC3339Nano))
	}
	return h
}

// resolveTarget finds a device endpoint's target and applies the route's
// allow-list; a refused delivery is counted and logged, and false returned.
func (s *Service) resolveTarget(d *delivery) bool {
	if reason, why := d.resolve(); reason != "" {
		s.refuse(d.c, d.m, d.ep, reason, why)
		return false
	}
	return true
}

// resolve sets d's target; a refusal returns its reason and explanation.
func (d *delivery) resolve() (reason, why string) {
	target := d.ep.Target
	if target == "" {
		if d.ep.from.to {
			target = deviceFromTo(d.m.To)
		} else {
			target = appProperty(d.m, d.ep.from.property)
		}
	}
	if target == "" {
		return "no_target", "the message names no target (" + d.ep.TargetFrom + ")"
	}
	d.device, d.module, _ = strings.Cut(target, "/")
	a := d.c.Allow
	switch {
	case len(a.Sources) > 0 && !slices.Contains(a.Sources, d.m.DeviceID):
		return "source_not_allowed", "sender " + d.m.DeviceID + " is not in the route's allowed sources"
	case len(a.Targets) > 0 && !slices.Contains(a.Targets, d.device):
		return "target_not_allowed", "target " + d.device + " is not in the route's allowed targets"
	}
	return "", ""
}

// deviceFromTo reads a device id from a $.to value: "dev", "/devices/dev"
// or "/devices/dev/modules/mod/..." forms.
func deviceFromTo(to string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(to), "/devices/")
	if !ok {
		return strings.TrimSpace(to)
	}
	dev, rest, _ := strings.Cut(rest, "/")
	if mod, ok := strings.CutPrefix(rest, "modules/"); ok {
		mod, _, _ = strings.Cut(mod, "/")
		return dev + "/" + mod
	}
	return dev
}

// checkTarget verifies that a device target exists and carries the tags
// the allow-list requires.
func (s *Service) checkTarget(ctx context.Context, d *delivery) bool {
	if reason, why := s.targetRefusal(ctx, d); reason != "" {
		s.refuse(d.c, d.m, d.ep, reason, why)
		return false
	}
	return true
}

func (s *Service) targetRefusal(ctx context.Context, d *delivery) (reason, why string) {
	if s.cfg.Twins == nil {
		return "", ""
	}
	tags, _, _, err := s.cfg.Twins.TwinDocs(ctx, d.device, d.module)
	if fault.Is(err, fault.NotFound) {
		return "unknown_target", "target " + d.device + " is not a registered device"
	}
	if err != nil {
		return "", "" // the registry is unavailable: the delivery fails or succeeds on its own
	}
	for k, want := range d.c.Allow.TargetTags {
		v := docVal(tags, []string{k})
		if !v.ok || v.describe() != want && v.s != want {
			return "target_not_allowed", "target " + d.device + " lacks tag " + k + "=" + want
		}
	}
	return "", ""
}

// deliverAsync runs a webhook, method or C2D delivery on a slot.
func (s *Service) deliverAsync(p *page, ctx context.Context, d *delivery) {
	var err error
	switch d.ep.Kind {
	case KindWebhook:
		err = s.postWebhook(ctx, d)
	case KindMethod, KindC2D:
		if !s.checkTarget(ctx, d) {
			return
		}
		if d.ep.Kind == KindMethod {
			err = s.invoke(ctx, d)
		} else {
			err = s.sendC2D(ctx, d)
		}
	}
	if err == nil {
		d.c.met.routed.Inc()
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the page is not committed and is routed again
	}
	s.failed(d.c, d.ep, err)
	s.deadLetter(p, d.c, d.ep, d.m, d.props, err)
}

func (s *Service) invoke(ctx context.Context, d *delivery) error {
	if s.cfg.Methods == nil {
		return errors.New("direct methods are not available")
	}
	body, ct := d.m.Body, d.m.ContentType
	if strings.EqualFold(d.m.ContentEncoding, "gzip") {
		// A device cannot see a method payload's encoding: send it inflated.
		b, err := gunzip(body)
		if err != nil {
			return fmt.Errorf("gzip body: %w", err)
		}
		body = b
	}
	timeout := 30 * time.Second
	if d.ep.TimeoutSeconds > 0 {
		timeout = max(time.Duration(d.ep.TimeoutSeconds)*time.Second, method.MinResponseTimeout)
	}
	resp, err := s.cfg.Methods.Invoke(ctx, d.device, d.module, method.Request{
		Name: d.ep.Name, Payload: body, ContentType: ct, ResponseTimeout: timeout})
	if err != nil {
		return err
	}
	d.c.met.methodStatus(resp.Status)
	return nil
}

func (s *Service) sendC2D(ctx context.Context, d *delivery) error {
	if s.cfg.C2D == nil {
		return errors.New("cloud-to-device messages are not available")
	}
	if d.module != "" {
		return fault.Invalidf("C2D messages go to devices, not modules (%s/%s)", d.device, d.module)
	}
	msg := c2d.Message{
		CorrelationID:   d.m.MessageID,
		ContentType:     d.m.ContentType,
		ContentEncoding: d.m.ContentEncoding,
		Body:            d.m.Body,
	}
	for _, kv := range d.props {
		msg.Properties = append(msg.Properties, c2d.Property{Key: kv.Key, Value: kv.Value})
	}
	msg.Properties = append(msg.Properties, c2d.Property{Key: "ferry-source", Value: d.m.DeviceID})
	_, err := s.cfg.C2D.Send(ctx, d.device, msg)
	return err
}

// deadLetter stores a message whose delivery failed for good in the
// dead-letter stream, with the route, endpoint and error as properties.
func (s *Service) deadLetter(p *page, c *compiled, ep *endpoint, m *stream.Message, props []stream.Property, cause error) {
	dl := slices.Clone(props)
	dl = append(dl,
		stream.Property{Key: "ferry-endpoint", Value: ep.String()},
		stream.Property{Key: "ferry-error", Value: truncate(cause.Error(), 512)})
	if err := p.append(s.routedCopy(m, DeadLetterStream, dl)); err != nil {
		s.cfg.Logger.Error("route: dead-letter", "route", c.Name, "err", err)
		return
	}
	c.met.deadLettered.Inc()
}

func (s *Service) failed(c *compiled, ep *endpoint, err error) {
	c.met.failed.Inc()
	s.cfg.Logger.Warn("route: delivery failed", "route", c.Name, "endpoint", ep.String(), "err", err)
}

// refuse counts and logs a delivery the hub will not make.
func (s *Service) refuse(c *compiled, m *stream.Message, ep *endpoint, reason, why string) {
	c.met.refused(reason)
	args := []any{"route", c.Name, "device", m.DeviceID, "reason", reason, "why", why}
	if ep != nil {
		args = append(args, "endpoint", ep.String())
	}
	s.cfg.Logger.Warn("route: delivery refused", args...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
