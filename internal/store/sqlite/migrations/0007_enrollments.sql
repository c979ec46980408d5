-- DPS-compatible enrollments (package provision). Each row keeps the
-- enrollment as its JSON document (Azure DPS's shape, keys included); the
-- status is a column of its own for listing.
CREATE TABLE enrollment_groups (
	id     TEXT NOT NULL PRIMARY KEY,
	status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
	doc    TEXT NOT NULL -- JSON: provision.EnrollmentGroup
) STRICT;

CREATE TABLE individual_enrollments (
	registration_id TEXT NOT NULL PRIMARY KEY,
	status          TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
	doc             TEXT NOT NULL -- JSON: provision.IndividualEnrollment
) STRICT;
