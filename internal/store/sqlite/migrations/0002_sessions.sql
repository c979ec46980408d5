-- Subscriptions of persistent MQTT sessions (package session), restored when
-- a client reconnects with CleanSession=0, also after a restart.
CREATE TABLE mqtt_subscriptions (
	client_id TEXT    NOT NULL,
	filter    TEXT    NOT NULL,
	qos       INTEGER NOT NULL CHECK (qos BETWEEN 0 AND 2),
	PRIMARY KEY (client_id, filter)
) STRICT, WITHOUT ROWID;
