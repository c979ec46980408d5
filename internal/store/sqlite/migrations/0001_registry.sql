-- Device identities and shared access policies (package registry).
-- Times are UTC text in one fixed-width format, so text order is time order.

-- The columns hold what is queried or written on its own (status, etag,
-- connection state); the credential and attribute documents are JSON.
CREATE TABLE devices (
	id                          TEXT    NOT NULL PRIMARY KEY, -- BINARY collation: lists page in byte order
	generation_id               TEXT    NOT NULL,
	etag                        TEXT    NOT NULL,
	status                      TEXT    NOT NULL,
	status_reason               TEXT,                          -- NULL when unset (JSON null)
	status_updated_at           TEXT    NOT NULL,
	connection_state            TEXT    NOT NULL,
	connection_state_updated_at TEXT    NOT NULL,
	last_activity_at            TEXT    NOT NULL,
	c2d_message_count           INTEGER NOT NULL DEFAULT 0,
	auth_type                   TEXT    NOT NULL,
	model_id                    TEXT    NOT NULL DEFAULT '',
	authentication              TEXT    NOT NULL,              -- JSON: registry.Authentication
	attributes                  TEXT    NOT NULL               -- JSON: capabilities, deviceScope, parentScopes
) STRICT;

CREATE TABLE policies (
	key_name      TEXT NOT NULL PRIMARY KEY,
	primary_key   TEXT NOT NULL,
	secondary_key TEXT NOT NULL,
	rights        TEXT NOT NULL -- JSON array of registry.Right
) STRICT;
