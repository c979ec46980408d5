-- Bounding twin history (twin.Service.TrimHistory, run by the hub's
-- retention sweep): the oldest changes of a twin are deleted once it keeps
-- more than a count of them or they are older than an age.

-- The twin as of the newest trimmed change, one row per trimmed twin, in the
-- columns of twins. Replay needs a start: "as of" reads replay the kept
-- changes onto this row instead of onto the empty twin, so they stay exact
-- for any time from updated_at on, and refuse earlier times (which the
-- trimmed changes would have been needed for). version is the twin version
-- of the newest trimmed change: twin_history keeps only later versions.
CREATE TABLE twin_history_base (
	device_id        TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	module_id        TEXT    NOT NULL,
	etag             TEXT    NOT NULL,
	version          INTEGER NOT NULL,
	tags             TEXT    NOT NULL,
	tags_version     INTEGER NOT NULL,
	desired          TEXT    NOT NULL,
	desired_meta     TEXT    NOT NULL,
	desired_version  INTEGER NOT NULL,
	reported         TEXT    NOT NULL,
	reported_meta    TEXT    NOT NULL,
	reported_version INTEGER NOT NULL,
	updated_at       TEXT    NOT NULL, -- time of the newest trimmed change
	PRIMARY KEY (device_id, module_id)
) STRICT;

-- A module's base goes with the module, as its twin and history do (0004).
CREATE TRIGGER modules_twin_history_base_delete AFTER DELETE ON modules BEGIN
	DELETE FROM twin_history_base WHERE device_id = OLD.device_id AND module_id = OLD.module_id;
END;

-- The age bound looks for the twins that have changes older than a cutoff:
-- a range at the start of this index, as long as the rows the sweep is
-- about to delete, instead of a scan of all history. Times only grow, so
-- the hot path's insert into it is an append at the right edge.
CREATE INDEX twin_history_at ON twin_history (at);
