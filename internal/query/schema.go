package query

import "fmt"

// Schema names the tables and columns a query compiles against. Every name
// must be a plain SQL identifier (letters, digits, '_'); Compile refuses
// others. Names come from code, never from query text.
type Schema struct {
	Devices         string // the registry table, one row per device
	DeviceID        string // its primary key
	Status          string // "enabled" or "disabled"
	ConnectionState string // "Connected" or "Disconnected"
	LastActivity    string // lastActivityTime, as stored text
	ModelID         string // the model id; "" when unset

	Twins           string // the twin table, one row per device twin and per module twin
	TwinDeviceID    string // the device id
	TwinModuleID    string // the module id; "" for a device twin
	Tags            string // JSON object
	Desired         string // JSON object: desired properties
	Reported        string // JSON object: reported properties
	DesiredVersion  string // integer: properties.desired.$version
	ReportedVersion string // integer: properties.reported.$version
	Version         string // integer: the twin's version
	ETag            string // text: the twin's etag
}

// DefaultSchema is the schema of Ferry's SQLite store.
var DefaultSchema = Schema{
	Devices:         "devices",
	DeviceID:        "id",
	Status:          "status",
	ConnectionState: "connection_state",
	LastActivity:    "last_activity_at",
	ModelID:         "model_id",
	Twins:           "twins",
	TwinDeviceID:    "device_id",
	TwinModuleID:    "module_id",
	Tags:            "tags",
	Desired:         "desired",
	Reported:        "reported",
	DesiredVersion:  "desired_version",
	ReportedVersion: "reported_version",
	Version:         "version",
	ETag:            "etag",
}

// check reports a name that is not a plain identifier.
func (s Schema) check() error {
	for _, n := range []string{s.Devices, s.DeviceID, s.Status, s.ConnectionState, s.LastActivity,
		s.ModelID, s.Twins, s.TwinDeviceID, s.TwinModuleID, s.Tags, s.Desired, s.Reported,
		s.DesiredVersion, s.ReportedVersion, s.Version, s.ETag} {
		if !isSQLIdent(n) {
			return fmt.Errorf("query: schema name %q is not a plain identifier", n)
		}
	}
	return nil
}

func isSQLIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Page selects one page of a non-aggregate query's rows, which are ordered
// by the query's ORDER BY items, then by device id and module id (byte
// order); see Compile.
type Page struct {
	Limit int    // at most this many rows; 0 means no limit
	After string // continuation token of the previous page (see Run); "" for the first page
}
