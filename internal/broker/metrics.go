package broker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the broker's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	connects      prometheus.Counter
	disconnects   prometheus.Counter
	authFailures  *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	aclDenials    prometheus.Counter
	messagesIn    prometheus.Counter
	bytesIn       prometheus.Counter
	connectedGage prometheus.GaugeFunc
	credentialEnd *prometheus.CounterVec
	subsRefused   prometheus.Counter
}

// NewMetrics creates the broker's metrics and registers them with reg. The
// connected-devices gauge reads b at scrape time, so call Bind once the broker exists.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mqtt_connects_total", Help: "Accepted MQTT connections."}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mqtt_disconnects_total", Help: "Ended MQTT connections that had been accepted."}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_mqtt_auth_failures_total", Help: "Refused MQTT connections by reason."}, []string{"reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_messages_refused_total", Help: "Device messages refused (not stored) by reason."}, []string{"reason"}),
		aclDenials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mqtt_acl_denied_total", Help: "Publishes and subscriptions refused by the topic ACL."}),
		messagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_messages_in_total", Help: "Device telemetry messages accepted for storage."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_message_bytes_in_total", Help: "Body bytes of accepted device telemetry."}),
		credentialEnd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_mqtt_credential_disconnects_total",
			Help: "Accepted MQTT connections the hub closed because their credential ended, by reason."}, []string{"reason"}),
		subsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mqtt_subscriptions_refused_total",
			Help: "Topic filters refused because the client already held the most subscriptions a client may."}),
	}
	reg.MustRegister(m.subsRefused, m.connects, m.disconnects, m.authFailures, m.refusals, m.aclDenials, m.messagesIn, m.bytesIn, m.credentialEnd)
	return m
}

// Bind registers the gauge of connected clients, read from b.
func (m *Metrics) Bind(reg prometheus.Registerer, b *Broker) {
	m.connectedGage = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_mqtt_connected", Help: "Authenticated MQTT connections now."},
		func() float64 { return float64(b.ConnectedCount()) })
	reg.MustRegister(m.connectedGage)
}

func (m *Metrics) connected() {
	if m != nil {
		m.connects.Inc()
	}
}

func (m *Metrics) disconnected() {
	if m != nil {
		m.disconnects.Inc()
	}
}

func (m *Metrics) authFailure(reason string) {
	if m != nil {
		m.authFailures.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.refusals.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) aclDenied() {
	if m != nil {
		m.aclDenials.Inc()
	}
}

func (m *Metrics) received(n int) {
	if m != nil {
		m.messagesIn.Inc()
		m.bytesIn.Add(float64(n))
	}
}

func (m *Metrics) credentialEnded(reason string) {
	if m != nil {
		m.credentialEnd.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) subscriptionRefused() {
	if m != nil {
		m.subsRefused.Inc()
	}
}
