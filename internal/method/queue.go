package method

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Queued commands: a method call kept for a device that is offline and
// invoked when it connects, with its lifecycle (queued, delivered, completed,
// expired, failed) readable at any time. Calls wait in a JetStream stream,
// one subject per device, in order; their state lives in a KV bucket.

// JetStream names.
const (
	CommandStream = "FERRY_COMMANDS"
	commandPrefix = "ferry.cmd.d."
	CommandBucket = "FERRY_COMMAND_STATE"
	// MaxQueueTTL bounds how long a command may wait for its device.
	MaxQueueTTL = 48 * time.Hour
)

// Command states.
const (
	StateQueued    = "queued"    // waiting for the device
	StateDelivered = "delivered" // sent to the device, waiting for its answer
	StateCompleted = "completed" // the device answered (any status)
	StateExpired   = "expired"   // the device did not come online in time
	StateFailed    = "failed"    // the device did not answer in time
)

// Command is a queued method call and what became of it.
type Command struct {
	ID              string    `json:"id"`
	DeviceID        string    `json:"deviceId"`
	ModuleID        string    `json:"moduleId,omitempty"`
	MethodName      string    `json:"methodName"`
	Payload         []byte    `json:"payload,omitempty"`
	ContentType     string    `json:"contentType,omitempty"`
	ResponseTimeout float64   `json:"responseTimeoutInSeconds"`
	State           string    `json:"state"`
	Created         time.Time `json:"createdTimeUtc"`
	Expires         time.Time `json:"expiryTimeUtc"`
	Updated         time.Time `json:"updatedTimeUtc"`
	ResultStatus    int       `json:"resultStatus,omitempty"`
	ResultPayload   []byte    `json:"resultPayload,omitempty"`
	Error           string    `json:"error,omitempty"`
}

// Queue keeps commands for offline devices. It is safe for concurrent use.
type Queue struct {
	svc    *Service
	stream jetstream.Stream
	state  jetstream.KeyValue
	js     jetstream.JetStream
	log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	busy map[string]bool // guarded by mu: clients with a dispatch pass running
	more map[string]bool // guarded by mu: something happened during that pass
}

// NewQueue opens (or creates) the command stream and state bucket.
func NewQueue(ctx context.Context, js jetstream.JetStream, svc *Service, log *slog.Logger, now func() time.Time) (*Queue, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: CommandStream, Description: "Ferry queued direct-method calls, one subject per device",
		Subjects: []string{commandPrefix + ">"}, Storage: jetstream.FileStorage, MaxAge: MaxQueueTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("method: open %s: %w", CommandStream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: CommandBucket, Description: "Ferry queued command states", History: 1,
		Storage: jetstream.FileStorage, TTL: 7 * 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("method: open %s: %w", CommandBucket, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Queue{svc: svc, stream: st, state: kv, js: js, log: log, now: now,
		busy: make(map[string]bool), more: make(map[string]bool)}, nil
}

func commandSubject(clientID string) string {
	return commandPrefix + hex.EncodeToString([]byte(clientID))
}

// Enqueue keeps a call for the device until it connects, at most ttl.
func (q *Queue) Enqueue(ctx context.Context, deviceID, moduleID string, req Request, ttl time.Duration) (*Command, error) {
	if err := validate(&req); err != nil {
		return nil, err
	}
	if ttl <= 0 || ttl > MaxQueueTTL {
		return nil, fault.Invalidf("queueTtlInSeconds must be from 1 to %d", int(MaxQueueTTL.Seconds()))
	}
	now := q.now().UTC()
	var id [12]byte
	_, _ = randRead(id[:])
	cmd := &Command{ID: hex.EncodeToString(id[:]), DeviceID: deviceID, ModuleID: moduleID, MethodName: req.Name,
		Payload: req.Payload, ContentType: req.ContentType, ResponseTimeout: req.ResponseTimeout.Seconds(),
		State: StateQueued, Created: now, Expires: now.Add(ttl), Updated: now}
	if err := q.save(ctx, cmd); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(cmd)
	if _, err := q.js.Publish(ctx, commandSubject(clientID(deviceID, moduleID)), data); err != nil {
		return nil, fmt.Errorf("method: queue command for %s: %w", deviceID, err)
	}
	q.Ready(clientID(deviceID, moduleID))
	return cmd, nil
}

// Get returns a command's current state.
func (q *Queue) Get(ctx context.Context, id string) (*Command, error) {
	e, err := q.state.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fault.New(fault.NotFound, "CommandNotFound", 404000, "no command %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("method: command %s: %w", id, err)
	}
	var c Command
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("method: command %s: %w", id, err)
	}
	return &c, nil
}

func (q *Queue) save(ctx context.Context, c *Command) error {
	data, _ := json.Marshal(c)
	if _, err := q.state.Put(ctx, c.ID, data); err != nil {
		return fmt.Errorf("method: save command %s: %w", c.ID, err)
	}
	return nil
}

func clientID(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

// Ready tells the queue that a client can take method calls: its queued
// commands are invoked in order, on a short-lived goroutine.
func (q *Queue) Ready(client string) {
	q.mu.Lock()
	if q.busy[client] {
		q.more[client] = true
		q.mu.Unlock()
		return
	}
	q.busy[client] = true
	q.mu.Unlock()
	go func() {
		for {
			q.dispatch(client)
			q.mu.Lock()
			if !q.more[client] {
				delete(q.busy, client)
				q.mu.Unlock()
				return
			}
			delete(q.more, client)
			q.mu.Unlock()
		}
	}()
}

// dispatch invokes the client's queued commands until the queue is empty or
// the client is gone.
func (q *Queue) dispatch(client string) {
	subj := commandSubject(client)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		raw, err := q.stream.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(subj))
		cancel()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				q.log.Error("method: read command queue", "client", client, "error", err)
			}
			return
		}
		var cmd Command
		if err := json.Unmarshal(raw.Data, &cmd); err != nil {
			q.finish(raw.Sequence, nil)
			continue
		}
		if cur, err := q.Get(context.Background(), cmd.ID); err == nil {
			cmd = *cur
		}
		if !q.now().Before(cmd.Expires) {
			cmd.State, cmd.Error = StateExpired, "the device did not come online before the command expired"
			q.finish(raw.Sequence, &cmd)
			continue
		}
		if tp := q.svc.transport.Load(); tp == nil || !(*tp).MethodsReady(client) {
			return // offline again: the command waits for the next connection
		}
		cmd.State, cmd.Updated = StateDelivered, q.now().UTC()
		_ = q.save(context.Background(), &cmd)
		resp, err := q.svc.Invoke(context.Background(), cmd.DeviceID, cmd.ModuleID, Request{
			Name: cmd.MethodName, Payload: cmd.Payload, ContentType: cmd.ContentType,
			ResponseTimeout: time.Duration(cmd.ResponseTimeout * float64(time.Second)),
		})
		switch {
		case err == nil:
			cmd.State, cmd.ResultStatus, cmd.ResultPayload = StateCompleted, resp.Status, resp.Payload
		case fault.Is(err, fault.NotFound):
			cmd.State = StateQueued // went offline before the call: keep it
			cmd.Updated = q.now().UTC()
			_ = q.save(context.Background(), &cmd)
			return
		default:
			cmd.State, cmd.Error = StateFailed, fault.Public(err)
		}
		q.finish(raw.Sequence, &cmd)
	}
}

// finish records a command's final state and removes it from the queue.
func (q *Queue) finish(seq uint64, cmd *Command) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cmd != nil {
		cmd.Updated = q.now().UTC()
		if err := q.save(ctx, cmd); err != nil {
			q.log.Error("method: record command state", "command", cmd.ID, "error", err)
		}
	}
	if err := q.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		q.log.Error("method: remove a finished command", "seq", seq, "error", err)
	}
}
