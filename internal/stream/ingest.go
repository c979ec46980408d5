package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ingestConfig is the JetStream stream that holds the batches. Direct get
// lets readers fetch a batch, or the first batch after a time, without
// going through the JetStream API's request queue.
func ingestConfig(cfg WriterConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        IngestStream,
		Description: "Ferry telemetry: one message per batch of device messages",
		Subjects:    []string{IngestSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    orUnlimited(cfg.MaxBytes),
		Replicas:    cfg.Replicas,
		AllowDirect: true,
	}
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// openIngest returns the ingest stream, creating it with default limits
// when it does not exist yet. Unlike the Writer, it never changes the
// limits of an existing stream.
func openIngest(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, IngestStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := WriterConfig{}
		cfg.setDefaults()
		st, err = js.CreateStream(ctx, ingestConfig(cfg))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, IngestStream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream: open %s: %w", IngestStream, err)
	}
	return st, nil
}
