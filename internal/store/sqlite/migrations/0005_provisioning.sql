-- Provisioning tokens and operations (package provision). Times are UTC
-- text in one fixed-width format (see 0001).

-- A token's secret is never stored, only its SHA-256.
CREATE TABLE provisioning_tokens (
	id          TEXT    NOT NULL PRIMARY KEY,
	name        TEXT    NOT NULL UNIQUE,
	secret_hash BLOB    NOT NULL UNIQUE,
	created_at  TEXT    NOT NULL,
	expires_at  TEXT    NOT NULL,
	max_uses    INTEGER NOT NULL DEFAULT 0 CHECK (max_uses >= 0), -- 0: unlimited
	uses        INTEGER NOT NULL DEFAULT 0,
	revoked_at  TEXT                                              -- NULL while not revoked
) STRICT;

-- 'expired' is never stored: a pending operation past expires_at is expired.
CREATE TABLE provisioning_operations (
	id                  TEXT NOT NULL PRIMARY KEY,
	token_id            TEXT NOT NULL REFERENCES provisioning_tokens (id),
	requested_device_id TEXT NOT NULL DEFAULT '',
	verification_code   TEXT NOT NULL,
	state               TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'completed')),
	created_at          TEXT NOT NULL,
	expires_at          TEXT NOT NULL,
	decided_at          TEXT,                      -- NULL until approved or rejected
	device_id           TEXT NOT NULL DEFAULT '',  -- set on approval
	model_id            TEXT NOT NULL DEFAULT '',
	data                TEXT,                      -- JSON object the device sent, or NULL
	reason              TEXT NOT NULL DEFAULT ''   -- the operator's reason for a rejection
) STRICT;

CREATE INDEX provisioning_operations_state ON provisioning_operations (state, created_at);

-- The key that signs registration tokens: one row, shared by every node.
CREATE TABLE provisioning_keys (
	id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	key BLOB    NOT NULL
) STRICT;
