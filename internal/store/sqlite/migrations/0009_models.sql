-- IoT Plug and Play model repository: DTDL interfaces (model.Interface),
-- one row per interface, kept as the DTDL the operator uploaded. Times are
-- UTC text (see 0001).

CREATE TABLE models (
	id         TEXT NOT NULL PRIMARY KEY, -- the interface's DTMI
	doc        TEXT NOT NULL,             -- the interface's DTDL (JSON)
	created_at TEXT NOT NULL
) STRICT;
