-- Device and module twins (package twin) and their change history.
--
-- tags, desired and reported are plain JSON objects without Azure's
-- "$metadata" and "$version" keys, so that the query language can compile
-- tags.x and properties.reported.y to json_extract over these columns. The
-- metadata is kept apart in Azure's "$metadata" shape, the versions as
-- integers. Times are UTC text in one fixed-width format (see 0001).
CREATE TABLE twins (
	device_id        TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	module_id        TEXT    NOT NULL DEFAULT '', -- '' for the device twin
	etag             TEXT    NOT NULL,            -- changes on tags and desired changes
	version          INTEGER NOT NULL,            -- increments on every change
	tags             TEXT    NOT NULL,            -- JSON object
	tags_version     INTEGER NOT NULL,
	desired          TEXT    NOT NULL,            -- JSON object
	desired_meta     TEXT    NOT NULL,            -- JSON: Azure's $metadata of desired
	desired_version  INTEGER NOT NULL,            -- Azure's desired $version
	reported         TEXT    NOT NULL,            -- JSON object
	reported_meta    TEXT    NOT NULL,            -- JSON: Azure's $metadata of reported
	reported_version INTEGER NOT NULL,            -- Azure's reported $version
	updated_at       TEXT    NOT NULL,            -- time of the last change
	PRIMARY KEY (device_id, module_id)
) STRICT; -- a rowid table: rows reach tens of KiB, too big for WITHOUT ROWID

-- Every device has its device twin row from the start (twin.Empty), so the
-- query language can join devices and twins without outer joins. Module
-- twin rows appear on their first change.
INSERT INTO twins (device_id, etag, version, tags, tags_version, desired, desired_meta, desired_version,
	reported, reported_meta, reported_version, updated_at)
SELECT id, 'AAAAAAAAAAE=', 1, '{}', 1, '{}', '{"$lastUpdated":"0001-01-01T00:00:00Z"}', 1,
	'{}', '{"$lastUpdated":"0001-01-01T00:00:00Z"}', 1, '0001-01-01T00:00:00.000000000Z'
FROM devices;

CREATE TRIGGER devices_twin AFTER INSERT ON devices BEGIN
	INSERT INTO twins (device_id, etag, version, tags, tags_version, desired, desired_meta, desired_version,
		reported, reported_meta, reported_version, updated_at)
	VALUES (NEW.id, 'AAAAAAAAAAE=', 1, '{}', 1, '{}', '{"$lastUpdated":"0001-01-01T00:00:00Z"}', 1,
		'{}', '{"$lastUpdated":"0001-01-01T00:00:00Z"}', 1, '0001-01-01T00:00:00.000000000Z');
END;

-- One row per accepted change of one side; a service PATCH of tags and
-- desired is two rows with one twin_version. patch is the JSON merge patch
-- applied, so replaying the rows in twin_version order rebuilds the twin.
CREATE TABLE twin_history (
	device_id    TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	module_id    TEXT    NOT NULL,
	twin_version INTEGER NOT NULL,
	side         TEXT    NOT NULL CHECK (side IN ('tags', 'desired', 'reported')),
	version      INTEGER NOT NULL, -- the side's version after the change
	at           TEXT    NOT NULL,
	source       TEXT    NOT NULL, -- 'device', 'service', 'service:<policy>'
	patch        TEXT    NOT NULL, -- JSON merge patch
	PRIMARY KEY (device_id, module_id, twin_version, side)
) STRICT, WITHOUT ROWID; -- one b-tree write per change on the hot path
