package twin

import (
	"context"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Options configures a Service. The zero value is usable.
type Options struct {
	// Limits are the rules patches must keep. Default: Azure's.
	Limits Limits
	// Now returns the current time. Default time.Now.
	Now func() time.Time

	// Reported patches are committed in batches, one write transaction
	// each, when the store is a BatchStore.
	//
	// Linger is the least time between taking two batches: a patch that
	// arrives sooner after the previous batch waits (at most Linger) to
	// share the next commit; after a quiet spell a patch is committed at
	// once. Default 0: no waiting, since patches arriving while a batch
	// commits form the next batch anyway, and a sub-millisecond timer
	// costs a lone device about a millisecond per patch.
	Linger time.Duration
	// MaxBatch caps the patches in one transaction. Default DefaultMaxBatch.
	MaxBatch int
	// MaxPending caps the patches queued or being committed; more callers
	// wait for room. Default DefaultMaxPending.
	MaxPending int
}

func (o *Options) setDefaults() {
	o.Limits.setDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Linger = max(o.Linger, 0)
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
}

// Service applies Azure's twin rules on top of a Store. It is safe for
// concurrent use.
type Service struct {
	store  Store
	limits Limits
	now    func() time.Time
	batch  *batcher // nil when store is not a BatchStore
}

// NewService returns a Service over store. When store is a BatchStore,
// reported patches are group-committed; Close then waits for the patches
// in flight. Without Close nothing leaks: the batching goroutine runs only
// while patches are queued.
func NewService(store Store, opts Options) *Service {
	opts.setDefaults()
	s := &Service{store: store, limits: opts.Limits, now: opts.Now}
	if bs, ok := store.(BatchStore); ok {
		s.batch = newBatcher(s, bs, &opts)
	}
	return s
}

// Close stops taking reported patches (later ones fail with ErrClosed) and
// waits until those already sent are committed and answered. If ctx ends
// first, the patches not yet in a transaction fail with ErrClosed, and
// Close returns ctx's error once the running transaction has ended. Call it
// before closing the store. Close is idempotent; other methods keep
// working.
func (s *Service) Close(ctx context.Context) error {
	if s.batch == nil {
		return nil
	}
	return s.batch.close(ctx)
}

// Get returns the twin of a device (moduleID "") or module. A registered
// device whose twin was never written has the Empty twin; an unknown device
// is DeviceNotFoundError.
func (s *Service) Get(ctx context.Context, deviceID, moduleID string) (*Twin, error) {
	return s.store.GetTwin(ctx, deviceID, moduleID)
}

// PatchReported applies a device's reported-properties merge patch and
// returns the new reported "$version", which the device is told in the
// response topic. An empty patch changes nothing and returns the current
// version. The change is recorded with the source from ctx (WithSource),
// "device" by default.
//
// PatchReported returns once the patch is committed. Concurrent patches
// share one store transaction (see Options.Linger); a patch that fails
// (validation, size limit, unknown device) fails alone. If ctx ends while
// the patch waits, PatchReported returns ctx's error, and the patch may
// still be applied.
func (s *Service) PatchReported(ctx context.Context, deviceID, moduleID string, patch []byte) (int64, error) {
	p, err := s.limits.ParsePatch(Reported, patch)
	if err != nil {
		return 0, err
	}
	src := sourceFrom(ctx, "device")
	if s.batch != nil {
		return s.batch.patch(ctx, &reportedReq{ctx: ctx, deviceID: deviceID, moduleID: moduleID,
			src: src, patch: p, reply: make(chan error, 1)})
	}
	var version int64
	err = s.store.UpdateTwin(ctx, deviceID, moduleID, func(t *Twin) ([]Change, error) {
		cs, err := s.commit(t, src, sidePatch{Reported, p})
		version = t.Reported.Version
		return cs, err
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// PatchDesired applies a service twin PATCH: body {"tags":{...},
// "properties":{"desired":{...}}}, both parts optional, each a merge patch;
// other members (reported properties, deviceId, etag...) are ignored, as a
// caller may send back a twin it read. ifMatch "" or "*" applies
// unconditionally; any other etag (quoted or not) must be the twin's etag,
// else the patch fails with PreconditionFailedError. It returns the new twin
// and the desired delta to send to the device, which is empty when desired
// did not change.
func (s *Service) PatchDesired(ctx context.Context, deviceID, moduleID string, patch []byte, ifMatch string) (*Twin, DesiredChange, error) {
	tags, desired, err := s.parseServiceDoc(patch, false)
	if err != nil {
		return nil, DesiredChange{}, err
	}
	return s.serviceUpdate(ctx, deviceID, moduleID, ifMatch, func(t *Twin) (object, object, error) {
		return tags, desired, nil
	})
}

// Replace applies a service twin PUT: the tags and desired properties of doc
// replace the twin's (an absent part counts as empty); reported properties
// are the device's and stay. The change is applied and recorded as the
// merge patch from the old documents to the new ones, which is also the
// desired delta returned for the device. ifMatch is as for PatchDesired.
func (s *Service) Replace(ctx context.Context, deviceID, moduleID string, doc []byte, ifMatch string) (*Twin, DesiredChange, error) {
	tags, desired, err := s.parseServiceDoc(doc, true)
	if err != nil {
		return nil, DesiredChange{}, err
	}
	return s.serviceUpdate(ctx, deviceID, moduleID, ifMatch, func(t *Twin) (object, object, error) {
		oldTags, err := decodeObject(t.Tags)
		if err != nil {
			return nil, nil, err
		}
		oldDesired, err := decodeObject(t.Desired.Doc)
		if err != nil {
			return nil, nil, err
		}
		return diff(oldTags, tags), diff(oldDesired, desired), nil
	})
}

// serviceUpdate runs a tags and desired change computed by patches from the
// current twin.
func (s *Service) serviceUpdate(ctx context.Context, deviceID, moduleID, ifMatch string,
	patches func(t *Twin) (tags, desired object, err error)) (*Twin, DesiredChange, error) {
	src := sourceFrom(ctx, "service")
	var out *Twin
	var dc DesiredChange
	err := s.store.UpdateTwin(ctx, deviceID, moduleID, func(t *Twin) ([]Change, error) {
		if !etagMatches(ifMatch, t.ETag) {
			return nil, PreconditionFailedError(deviceID)
		}
		tags, desired, err := patches(t)
		if err != nil {
			return nil, err
		}
		cs, err := s.commit(t, src, sidePatch{Tags, tags}, sidePatch{Desired, desired})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Side == Desired {
				dc = DesiredChange{Patch: c.Patch, Version: c.Version}
			}
		}
		out = t
		return cs, nil
	})
	if err != nil {
		return nil, DesiredChange{}, err
	}
	return out, dc, nil
}

// parseServiceDoc reads the tags and desired parts of a service PATCH or
// PUT body. For a PUT (replace) the parts are documents: nulls are dropped
// and the "$metadata" a caller echoes from a GET is ignored.
func (s *Service) parseServiceDoc(data []byte, replace bool) (tags, desired object, err error) {
	v, err := decode(data)
	if err != nil {
		return nil, nil, invalid("twin", "invalid JSON: %v", err)
	}
	root, ok := v.(object)
	if !ok {
		return nil, nil, invalid("twin", "the body must be a JSON object, not %s", kind(v))
	}
	part := func(side Side, v any) (object, error) {
		if v == nil {
			if replace {
				return object{}, nil
			}
			return nil, nil
		}
		o, ok := v.(object)
		if !ok {
			return nil, invalid(string(side), "must be a JSON object, not %s", kind(v))
		}
		if replace {
			delete(o, "$metadata")
			dropNulls(o)
		}
		return o, s.limits.checkPatch(side, o)
	}
	if tags, err = part(Tags, root["tags"]); err != nil {
		return nil, nil, err
	}
	var d any
	if props, ok := root["properties"].(object); ok {
		d = props["desired"]
	} else if root["properties"] != nil {
		return nil, nil, invalid("properties", "must be a JSON object, not %s", kind(root["properties"]))
	}
	desired, err = part(Desired, d)
	return tags, desired, err
}

// etagMatches applies If-Match: "" and "*" match anything.
func etagMatches(ifMatch, etag string) bool {
	ifMatch = strings.TrimPrefix(strings.TrimSpace(ifMatch), "W/")
	if ifMatch == "" || ifMatch == "*" {
		return true
	}
	return strings.Trim(ifMatch, `"`) == etag
}

// Delete removes the twins of a device and its modules, with their history,
// when the device is deleted.
func (s *Service) Delete(ctx context.Context, deviceID string) error {
	if deviceID == "" {
		return fault.Invalidf("empty device id")
	}
	return s.store.DeleteTwins(ctx, deviceID)
}
