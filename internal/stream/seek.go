package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// startSeq returns the sequence of the first batch that can hold a message
// enqueued at or after from: the first batch JetStream stored at or after
// from minus ClockSkew. For a zero from it is the start of the stream.
// When no batch is that new yet, it returns the sequence the next batch
// will get.
func (s *Store) startSeq(ctx context.Context, from time.Time) (uint64, error) {
	if from.IsZero() {
		return 1, nil
	}
	seq, found, err := s.seqAtTime(ctx, from.Add(-s.cfg.ClockSkew))
	if err != nil || found {
		return seq, err
	}
	info, err := s.st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream: read stream info: %w", err)
	}
	return info.State.LastSeq + 1, nil
}

// seqAtTime asks JetStream for the first message stored at or after t. The
// nats.go client has no call for a direct get by start time, so this sends
// the request the server documents (JSApiMsgGetRequest.StartTime) itself;
// the server finds the sequence by binary search over its block index.
func (s *Store) seqAtTime(ctx context.Context, t time.Time) (uint64, bool, error) {
	req, err := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
	}{t.UTC()})
	if err != nil {
		return 0, false, err
	}
	ctx, cancel := withDefaultTimeout(ctx, s.js.Options().DefaultTimeout)
	defer cancel()
	resp, err := s.js.Conn().RequestWithContext(ctx, s.apiPrefix()+"DIRECT.GET."+IngestStream, req)
	if err != nil {
		return 0, false, fmt.Errorf("stream: find batch at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	switch resp.Header.Get("Status") {
	case "":
	case "404":
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("stream: find batch at %s: status %s %s",
			t.Format(time.RFC3339Nano), resp.Header.Get("Status"), resp.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(resp.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("stream: find batch at %s: bad sequence header: %w", t.Format(time.RFC3339Nano), err)
	}
	return seq, true, nil
}

// apiPrefix returns the JetStream API subject prefix js uses, ending in ".".
func (s *Store) apiPrefix() string {
	o := s.js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if o.APIPrefix[len(o.APIPrefix)-1] != '.' {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	}
	return jetstream.DefaultAPIPrefix
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
