-- Module identities (package registry): separately authenticated clients
-- of one device. Times are UTC text in one fixed-width format (see 0001).
CREATE TABLE modules (
	device_id                   TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	module_id                   TEXT    NOT NULL, -- BINARY collation: lists are in byte order
	generation_id               TEXT    NOT NULL,
	etag                        TEXT    NOT NULL,
	connection_state            TEXT    NOT NULL,
	connection_state_updated_at TEXT    NOT NULL,
	last_activity_at            TEXT    NOT NULL,
	c2d_message_count           INTEGER NOT NULL DEFAULT 0,
	auth_type                   TEXT    NOT NULL,
	authentication              TEXT    NOT NULL, -- JSON: registry.Authentication
	managed_by                  TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (device_id, module_id)
) STRICT;

-- A module's twin and its history go with the module. Deleting the device
-- deletes both through their own foreign keys as well.
CREATE TRIGGER modules_twin_delete AFTER DELETE ON modules BEGIN
	DELETE FROM twin_history WHERE device_id = OLD.device_id AND module_id = OLD.module_id;
	DELETE FROM twins WHERE device_id = OLD.device_id AND module_id = OLD.module_id;
END;
