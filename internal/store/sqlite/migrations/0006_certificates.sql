-- Certificate authorities for X.509 device authentication (registry.CA).
-- Times are UTC text in one fixed-width format (see 0001).

CREATE TABLE certificate_authorities (
	name              TEXT    NOT NULL PRIMARY KEY,
	certificate       TEXT    NOT NULL,                -- PEM
	thumbprint        TEXT    NOT NULL UNIQUE,         -- hex SHA-256 of the DER certificate
	verified          INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
	verification_code TEXT    NOT NULL DEFAULT '',     -- '' once verified
	created_at        TEXT    NOT NULL,
	updated_at        TEXT    NOT NULL,
	etag              TEXT    NOT NULL
) STRICT;
