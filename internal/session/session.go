// Package session holds what must outlive an MQTT connection: the
// subscriptions of clients that connected with CleanSession=0. Azure's device
// SDKs renew their SAS token by reconnecting and never subscribe again, so the
// hub restores these subscriptions on reconnect, also after a restart.
package session

import "context"

// Subscription is one persisted topic filter of one client.
type Subscription struct {
	ClientID string // MQTT client id (device id, or deviceId/moduleId)
	Filter   string // topic filter as subscribed
	QoS      byte   // granted QoS (0 or 1)
}

// Store persists subscriptions. Implementations must be safe for concurrent use.
type Store interface {
	// SaveSubscriptions inserts or replaces the given subscriptions.
	SaveSubscriptions(ctx context.Context, subs []Subscription) error
	// DeleteSubscriptions removes the named filters of one client.
	DeleteSubscriptions(ctx context.Context, clientID string, filters []string) error
	// DeleteSession removes every subscription of one client.
	DeleteSession(ctx context.Context, clientID string) error
	// LoadSubscriptions returns every stored subscription, grouped by client id.
	LoadSubscriptions(ctx context.Context) ([]Subscription, error)
}
