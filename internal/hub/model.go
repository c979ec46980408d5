package hub

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/method"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/stream"
	"github.com/ferry-iot/ferry/internal/twin"
)

// pnp is IoT Plug and Play in the hub: the model repository, which model
// each device announced, telemetry checked against it after storage (never
// on the PUBACK path), and command payloads checked before invocation.
type pnp struct {
	h    *Hub
	repo *model.Repository
	log  *slog.Logger

	mu    sync.Mutex
	ids   map[string]string                // device id -> announced model id ("" = none); a cache of the registry
	stats map[string]*model.TelemetryStats // per device, since start

	announced chan [2]string // (device, model id) from CONNECT usernames, applied to the registry off the broker's path
	// modelsChanged wakes an idle checker when a model is added or deleted.
	modelsChanged chan struct{}

	checked, mismatched, refused prometheus.Counter

	cancel context.CancelFunc
	done   chan struct{}
	unsub  func()
}

// pnpPositionGroup is the telemetry checker's position in the stream store.
const pnpPositionGroup = "$pnp"

// Bound on the per-device caches; past it they start over (the registry is
// the truth, the stats are since start anyway).
const pnpMaxDevices = 200_000

func (h *Hub) startModels(ctx context.Context) error {
	repo, err := model.NewRepository(ctx, h.db, h.cfg.Now)
	if err != nil {
		return err
	}
	p := &pnp{h: h, repo: repo, log: h.log.With("component", "pnp"),
		ids: map[string]string{}, stats: map[string]*model.TelemetryStats{},
		announced: make(chan [2]string, 4096)}
	p.checked = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_pnp_telemetry_checked_total",
		Help: "Telemetry messages checked against their device's Plug and Play model."})
	p.mismatched = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_pnp_telemetry_mismatch_total",
		Help: "Telemetry messages that do not fit their device's model (stored all the same)."})
	p.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_pnp_command_refused_total",
		Help: "Direct method calls refused because the payload does not fit the command's request schema."})
	h.promReg.MustRegister(p.checked, p.mismatched, p.refused)
	p.unsub = h.registry.Subscribe(func(c registry.Change) {
		if c.ModuleID == "" {
			p.forget(c.DeviceID)
		}
	})
	p.modelsChanged = make(chan struct{}, 1)
	repo.OnChange(func() {
		select {
		case p.modelsChanged <- struct{}{}:
		default:
		}
	})
	h.pnp = p
	return nil
}

// start runs the model-id recorder and the telemetry checker.
func (p *pnp) start() error {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	pos, err := p.startPosition(ctx)
	if err != nil {
		cancel()
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.recordModels(ctx) }()
	go func() { defer wg.Done(); p.checkLoop(ctx, pos) }()
	go func() { wg.Wait(); close(p.done) }()
	return nil
}

func (p *pnp) close() {
	if p == nil {
		return
	}
	if p.unsub != nil {
		p.unsub()
	}
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

func (p *pnp) forget(deviceID string) {
	p.mu.Lock()
	delete(p.ids, deviceID)
	p.mu.Unlock()
}

// onModelID is the broker's OnModelID: it only queues the announcement.
func (p *pnp) onModelID(deviceID, moduleID, modelID string) {
	if moduleID != "" {
		return // module twins do not carry a model id yet
	}
	p.mu.Lock()
	same := p.ids[deviceID] == modelID
	if !same && model.ValidDTMI(modelID, true) {
		// Check the connection's messages against the model it announces
		// from the first one on, not from when the registry holds it.
		if len(p.ids) >= pnpMaxDevices {
			clear(p.ids)
		}
		p.ids[deviceID] = modelID
	}
	p.mu.Unlock()
	if same {
		return
	}
	select {
	case p.announced <- [2]string{deviceID, modelID}:
	default:
		p.log.Warn("model id announcements back up; one dropped", "device", deviceID, "modelId", modelID)
	}
}

// recordModels writes announced model ids into the registry (the twin's
// modelId), when they differ from what it holds.
func (p *pnp) recordModels(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-p.announced:
			if err := p.recordModel(ctx, a[0], a[1]); err != nil && ctx.Err() == nil {
				p.log.Warn("record the announced model id", "device", a[0], "modelId", a[1], "error", err)
				p.forget(a[0]) // back to what the registry holds; announcing again retries
			}
		}
	}
}

func (p *pnp) recordModel(ctx context.Context, deviceID, modelID string) error {
	if !model.ValidDTMI(modelID, true) {
		return errors.New("not a DTMI with a version")
	}
	for range 3 {
		d, err := p.h.registry.Get(ctx, deviceID)
		if err != nil {
			return err
		}
		if d.ModelID == modelID {
			p.mu.Lock()
			p.ids[deviceID] = modelID
			p.mu.Unlock()
			return nil
		}
		d.ModelID = modelID
		_, err = p.h.registry.Update(ctx, *d, d.ETag)
		if !fault.Is(err, fault.PreconditionFailed) {
			return err
		}
	}
	return errors.New("the device kept changing")
}

// deviceModel returns a device's compiled model, nil when it announced
// none; err says why a model it announced cannot be used.
func (p *pnp) deviceModel(ctx context.Context, deviceID string) (id string, m *model.Model, err error) {
	p.mu.Lock()
	id, ok := p.ids[deviceID]
	p.mu.Unlock()
	if !ok {
		d, err := p.h.registry.Get(ctx, deviceID)
		if err != nil {
			return "", nil, err
		}
		id = d.ModelID
		p.mu.Lock()
		if len(p.ids) >= pnpMaxDevices {
			clear(p.ids)
		}
		p.ids[deviceID] = id
		p.mu.Unlock()
	}
	if id == "" {
		return "", nil, nil
	}
	m, err = p.repo.Model(id)
	return id, m, err
}

// check checks one stored message against its device's model; nil when
// it fits or there is nothing to check it against.
func (p *pnp) check(ctx context.Context, msg *stream.Message) []model.Problem {
	if msg.ModuleID != "" || msg.MessageType == route.RoutedType || msg.Stream == route.DeadLetterStream {
		return nil
	}
	_, m, err := p.deviceModel(ctx, msg.DeviceID)
	if err != nil || m == nil {
		return nil
	}
	body := msg.Body
	if strings.EqualFold(msg.ContentEncoding, "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return []model.Problem{{Path: "$", Msg: "the gzip body does not inflate"}}
		}
		if body, err = io.ReadAll(io.LimitReader(zr, 4<<20)); err != nil {
			return []model.Problem{{Path: "$", Msg: "the gzip body does not inflate"}}
		}
	}
	return m.CheckTelemetry(component(msg), body)
}

// component is the Plug and Play component a message comes from: $.sub,
// or else a "dt-subject" application property (the name IoT Hub gives
// $.sub, and what SDKs that cannot set $.sub send).
func component(msg *stream.Message) string {
	if msg.Component != "" {
		return msg.Component
	}
	for _, p := range msg.Properties {
		if p.Key == "dt-subject" {
			return p.Value
		}
	}
	return ""
}

// CheckMessage implements api.PnP: the stream API shows a message's
// mismatch with the model to readers such as ferry monitor.
func (p *pnp) CheckMessage(ctx context.Context, msg *stream.Message) []model.Problem {
	return p.check(ctx, msg)
}

func (p *pnp) startPosition(ctx context.Context) (stream.Cursor, error) {
	c, ok, err := p.h.streams.Position(ctx, pnpPositionGroup, "*")
	if err != nil || ok {
		return c, err
	}
	if c, err = p.h.streams.Last(ctx); err != nil { // the first start checks from now on
		return c, err
	}
	return c, p.h.streams.Commit(ctx, pnpPositionGroup, "*", c)
}

// checkLoop reads every stored message after storage, as the router does,
// and counts those that do not fit their device's model. It commits its
// position at most once a second.
func (p *pnp) checkLoop(ctx context.Context, pos stream.Cursor) {
	committed, lastCommit := pos, time.Now()
	defer func() {
		if pos != committed {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = p.h.streams.Commit(cctx, pnpPositionGroup, "*", pos)
			cancel()
		}
	}()
	for ctx.Err() == nil {
		if p.repo.Len() == 0 {
			// No model to check against: skip what arrives without reading
			// it (decoding every batch would cost ingest CPU for nothing),
			// looking again each second.
			if last, err := p.h.streams.Last(ctx); err == nil && last.Seq >= pos.Seq {
				pos = last
			}
			select {
			case <-ctx.Done():
			case <-p.modelsChanged:
			case <-time.After(time.Second):
			}
			if pos != committed {
				if err := p.h.streams.Commit(ctx, pnpPositionGroup, "*", pos); err == nil {
					committed, lastCommit = pos, time.Now()
				}
			}
			continue
		}
		msgs, next, err := p.h.streams.Read(ctx, stream.Query{After: pos, Limit: stream.MaxLimit, Wait: 10 * time.Second})
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("read telemetry to check", "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		for i := range msgs {
			p.count(ctx, &msgs[i])
		}
		pos = next
		if pos != committed && time.Since(lastCommit) > time.Second {
			if err := p.h.streams.Commit(ctx, pnpPositionGroup, "*", pos); err == nil {
				committed, lastCommit = pos, time.Now()
			}
		}
	}
}

func (p *pnp) count(ctx context.Context, msg *stream.Message) {
	if msg.ModuleID != "" || msg.MessageType == route.RoutedType {
		return
	}
	_, m, err := p.deviceModel(ctx, msg.DeviceID)
	if err != nil || m == nil {
		return
	}
	probs := p.check(ctx, msg)
	p.checked.Inc()
	if len(probs) > 0 {
		p.mismatched.Inc()
	}
	p.mu.Lock()
	st := p.stats[msg.DeviceID]
	if st == nil {
		if len(p.stats) >= pnpMaxDevices {
			clear(p.stats)
		}
		st = &model.TelemetryStats{}
		p.stats[msg.DeviceID] = st
	}
	st.Checked++
	if len(probs) > 0 {
		st.Mismatched++
		st.LastMismatchAt, st.LastMismatchSub, st.LastProblems = msg.EnqueuedTime.UTC(), component(msg), probs
		st.LastMismatchCursor = msg.Cursor.String()
	}
	p.mu.Unlock()
}

// DeviceState implements api.PnP.
func (p *pnp) DeviceState(ctx context.Context, deviceID string) (*model.DeviceState, error) {
	d, err := p.h.registry.Get(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	st := &model.DeviceState{DeviceID: deviceID, ModelID: d.ModelID}
	p.mu.Lock()
	if s := p.stats[deviceID]; s != nil {
		st.Telemetry = *s
	}
	p.mu.Unlock()
	if d.ModelID == "" {
		return st, nil
	}
	if st.Model, err = p.repo.Model(d.ModelID); err != nil {
		st.ModelError = err.Error()
		return st, nil
	}
	t, err := p.h.twins.Get(ctx, deviceID, "")
	if err != nil {
		return nil, err
	}
	var doc struct{ Desired, Reported json.RawMessage }
	if err := json.Unmarshal(twin.RenderDevice(t), &doc); err != nil {
		return nil, err
	}
	st.Writable = model.WritableStates(st.Model, doc.Desired, doc.Reported)
	return st, nil
}

// checkedMethods checks a call's payload against the request schema of
// the command it names, for devices with a model, before invoking it.
type checkedMethods struct {
	*method.Service
	p *pnp
}

// Invoke implements api.Invoker.
func (c checkedMethods) Invoke(ctx context.Context, deviceID, moduleID string, req method.Request) (method.Response, error) {
	if err := c.p.checkCommand(ctx, deviceID, moduleID, req); err != nil {
		return method.Response{}, err
	}
	return c.Service.Invoke(ctx, deviceID, moduleID, req)
}

func (p *pnp) checkCommand(ctx context.Context, deviceID, moduleID string, req method.Request) error {
	if p == nil || moduleID != "" || (req.ContentType != "" && !method.IsJSON(req.ContentType)) {
		return nil
	}
	id, m, err := p.deviceModel(ctx, deviceID)
	if err != nil || m == nil {
		return nil // an unknown device is the method service's to report
	}
	known, probs := m.CheckCommand(req.Name, req.Payload)
	if !known || len(probs) == 0 {
		return nil
	}
	p.refused.Inc()
	msg := make([]string, len(probs))
	for i, pr := range probs {
		msg[i] = pr.String()
	}
	return fault.New(fault.Invalid, "InvalidCommandPayload", 400027,
		"the payload of %s does not fit model %s: %s", req.Name, id, strings.Join(msg, "; "))
}

var _ api.Invoker = checkedMethods{}
