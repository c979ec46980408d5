package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/stream"
)

// streamCollector exports the stream writer's atomic counters to Prometheus
// at scrape time, so the hot path never touches Prometheus.
type streamCollector struct {
	m                                                        *stream.Metrics
	stored, duplicates, failed, batches, batchBytes, blocked *prometheus.Desc
	latency                                                  *prometheus.Desc
}

func newStreamCollector(m *stream.Metrics) *streamCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &streamCollector{
		m:          m,
		stored:     d("ferry_stream_messages_stored_total", "Messages durably appended to streams."),
		duplicates: d("ferry_stream_duplicates_total", "Messages acknowledged without storing because the stream already held their message id."),
		failed:     d("ferry_stream_append_errors_total", "Messages that JetStream failed to store (JetStream errors)."),
		batches:    d("ferry_stream_batches_total", "Batches appended to JetStream; in fsync durability, one fsync each."),
		batchBytes: d("ferry_stream_batch_bytes_total", "Bytes of all appended batches."),
		blocked:    d("ferry_stream_append_blocked_total", "Appends that waited because the writer's queue was full."),
		latency:    d("ferry_stream_append_latency_seconds", "Time from receipt of a message to its durable append."),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.stored, c.duplicates, c.failed, c.batches, c.batchBytes, c.blocked, c.latency} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.stored, c.m.Stored.Load())
	counter(c.duplicates, c.m.Duplicates.Load())
	counter(c.failed, c.m.Failed.Load())
	counter(c.batches, c.m.Batches.Load())
	counter(c.batchBytes, c.m.BatchBytes.Load())
	counter(c.blocked, c.m.Blocked.Load())
	s := c.m.Latency.Snapshot()
	buckets := make(map[float64]uint64, len(stream.LatencyBuckets))
	var cum uint64
	for i, b := range stream.LatencyBuckets {
		cum += s.Counts[i]
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, s.Count, s.Sum.Seconds(), buckets)
}
