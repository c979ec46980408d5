-- Message routes (route.Route, kept as its JSON document), router settings
-- and protobuf schemas (schema.Schema). Times are UTC text (see 0001).

CREATE TABLE routes (
	name       TEXT NOT NULL PRIMARY KEY,
	doc        TEXT NOT NULL, -- route.Route as JSON
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE route_settings (
	key   TEXT NOT NULL PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

CREATE TABLE schemas (
	name       TEXT NOT NULL PRIMARY KEY,
	message    TEXT NOT NULL, -- full protobuf message name
	descriptor BLOB NOT NULL, -- serialized FileDescriptorSet
	created_at TEXT NOT NULL
) STRICT;
