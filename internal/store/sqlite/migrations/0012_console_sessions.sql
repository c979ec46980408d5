-- Web console sign-in sessions (package console), kept here so that a hub
-- restart signs nobody out. A row is keyed by the SHA-256 of the session
-- id: the id itself lives only in the browser's cookie, and the session's
-- CSRF token is derived from it, so a copy of this file signs nobody in.
-- key_hash is the SHA-256 of the policy key the session signed in with (or
-- that verified its SAS token): when that key is regenerated the session
-- no longer matches, and deleting the policy deletes its sessions.
-- Times are UTC text in the fixed-width format of 0001, so text order is
-- time order.
CREATE TABLE console_sessions (
	id_hash      BLOB NOT NULL PRIMARY KEY,
	policy       TEXT NOT NULL REFERENCES policies (key_name) ON DELETE CASCADE,
	key_hash     BLOB NOT NULL,
	created_at   TEXT NOT NULL,
	last_seen_at TEXT NOT NULL,
	expires_at   TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Purging expired sessions and evicting the ones closest to expiry when
-- the console keeps its maximum seek here.
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
CREATE INDEX console_sessions_policy ON console_sessions (policy);
