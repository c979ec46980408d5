package sqlite

// Trim statements, for their query plans.
const (
	SQLTwinsOverCount     = sqlTwinsOverCount
	SQLTwinsChangedBefore = sqlTwinsChangedBefore
	SQLTrimTwinHistory    = sqlTrimTwinHistory
)
