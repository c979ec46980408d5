-- When a persistent MQTT session ends if its client does not come back:
-- written when the client disconnects, deleted when it reconnects or the
-- session is deleted. At startup the hub deletes the subscriptions of the
-- sessions that ended while it was down (see the broker's session expiry).
CREATE TABLE mqtt_session_expiry (
	client_id  TEXT    NOT NULL PRIMARY KEY,
	expires_at INTEGER NOT NULL -- unix seconds
) STRICT, WITHOUT ROWID;
