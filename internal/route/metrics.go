package route

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/stream"
)

// Metrics are the router's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	matched, routed, failed, deadLettered *prometheus.CounterVec // by route
	refusedVec                            *prometheus.CounterVec // by route and reason
	retries                               *prometheus.CounterVec // by route
	methodVec                             *prometheus.CounterVec // by route and status class
	examinedVec                           *prometheus.CounterVec // by source
	unreadable                            *prometheus.CounterVec // by reason
	fallback, unrouted                    prometheus.Counter
	handed                                prometheus.Counter
	pos                                   prometheus.Gauge
	bySource                              map[Source]prometheus.Counter // examinedVec's series, looked up once

	mu    sync.Mutex
	names map[string]bool // guarded by mu: routes with series
}

// NewMetrics creates the router's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		matched:      vec("ferry_route_matched_total", "Messages whose route condition was true.", "route"),
		routed:       vec("ferry_route_routed_total", "Deliveries handed off to an endpoint.", "route"),
		failed:       vec("ferry_route_failed_total", "Deliveries that failed (after retries).", "route"),
		deadLettered: vec("ferry_route_dead_lettered_total", "Failed deliveries stored in the deadletter stream.", "route"),
		refusedVec:   vec("ferry_route_refused_total", "Deliveries refused: allow-list, unknown or missing target, loop.", "route", "reason"),
		retries:      vec("ferry_route_webhook_retries_total", "Webhook attempts retried.", "route"),
		methodVec:    vec("ferry_route_method_responses_total", "Direct-method answers of method endpoints, by status class.", "route", "status"),
		examinedVec:  vec("ferry_route_messages_total", "Messages the router evaluated, by source.", "source"),
		unreadable:   vec("ferry_route_body_unreadable_total", "Messages whose body a condition read but that has no JSON form.", "reason"),
		fallback: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_route_fallback_total",
			Help: "Telemetry messages that matched no route and stay in their stream (fallback on)."}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_route_unrouted_total",
			Help: "Telemetry messages that matched no route with the fallback off."}),
		handed: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_route_batches_handed_total",
			Help: "Ingest batches (or parts of batches) the router routed from the writer's tap, as they were appended, instead of reading them from the store."}),
		pos: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_route_position_batch",
			Help: "Ingest batch sequence the router has committed."}),
		names: map[string]bool{},
	}
	m.bySource = map[Source]prometheus.Counter{}
	for _, s := range []Source{Telemetry, TwinChanges, LifecycleEvents} {
		m.bySource[s] = m.examinedVec.WithLabelValues(string(s))
	}
	reg.MustRegister(m.matched, m.routed, m.failed, m.deadLettered, m.refusedVec, m.retries, m.methodVec,
		m.examinedVec, m.unreadable, m.fallback, m.unrouted, m.handed, m.pos)
	return m
}

// routeMetrics are one route's counters, looked up once per table build.
type routeMetrics struct {
	m                                     *Metrics
	name                                  string
	matched, routed, failed, deadLettered prometheus.Counter
}

var discard = prometheus.NewCounter(prometheus.CounterOpts{Name: "discard"})

func (m *Metrics) route(name string) *routeMetrics {
	if m == nil {
		return &routeMetrics{name: name, matched: discard, routed: discard, failed: discard, deadLettered: discard}
	}
	m.mu.Lock()
	m.names[name] = true
	m.mu.Unlock()
	return &routeMetrics{m: m, name: name,
		matched: m.matched.WithLabelValues(name), routed: m.routed.WithLabelValues(name),
		failed: m.failed.WithLabelValues(name), deadLettered: m.deadLettered.WithLabelValues(name)}
}

// forget drops the series of routes no longer in t.
func (m *Metrics) forget(t *table) {
	if m == nil {
		return
	}
	live := map[string]bool{}
	for _, c := range t.all {
		live[c.Name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for n := range m.names {
		if live[n] {
			continue
		}
		delete(m.names, n)
		for _, v := range []*prometheus.CounterVec{m.matched, m.routed, m.failed, m.deadLettered, m.retries} {
			v.DeleteLabelValues(n)
		}
		m.refusedVec.DeletePartialMatch(prometheus.Labels{"route": n})
		m.methodVec.DeletePartialMatch(prometheus.Labels{"route": n})
	}
}

func (r *routeMetrics) refused(reason string) {
	if r.m != nil {
		r.m.refusedVec.WithLabelValues(r.name, reason).Inc()
	}
}

func (r *routeMetrics) methodStatus(status int) {
	if r.m != nil {
		r.m.methodVec.WithLabelValues(r.name, strconv.Itoa(status/100)+"xx").Inc()
	}
}

func (m *Metrics) webhookRetry(route string) {
	if m != nil {
		m.retries.WithLabelValues(route).Inc()
	}
}

func (m *Metrics) examined(src Source, n int) {
	if m != nil && n > 0 {
		m.bySource[src].Add(float64(n))
	}
}

func (m *Metrics) bodyUnreadable(why string) {
	if m == nil {
		return
	}
	reason, _, _ := strings.Cut(why, ":")
	switch {
	case strings.HasPrefix(why, "content type"):
		reason = "not_json"
	case reason == "not JSON":
		reason = "not_json"
	case strings.HasPrefix(why, "protobuf without"):
		reason = "protobuf_no_type"
	}
	m.unreadable.WithLabelValues(reason).Inc()
}

func (m *Metrics) unmatched(fallback bool) {
	switch {
	case m == nil:
	case fallback:
		m.fallback.Inc()
	default:
		m.unrouted.Inc()
	}
}

func (m *Metrics) batchHanded() {
	if m != nil {
		m.handed.Inc()
	}
}

func (m *Metrics) position(c stream.Cursor) {
	if m != nil {
		m.pos.Set(float64(c.Seq))
	}
}
