package twin

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"time"
)

// Side names one of a twin's three documents.
type Side string

// The sides, spelled as in Azure's twin JSON.
const (
	Tags     Side = "tags"
	Desired  Side = "desired"
	Reported Side = "reported"
)

// Twin is the stored state of one device or module twin.
type Twin struct {
	DeviceID    string
	ModuleID    string          // "" for a device twin
	ETag        string          // changes on every tags or desired change
	Version     int64           // increments on every change
	Tags        json.RawMessage // plain JSON object
	TagsVersion int64           // increments on every tags change
	Desired     Properties
	Reported    Properties
	UpdatedAt   time.Time // time of the last change; zero for an Empty twin
}

// Properties is one side of a twin's properties.
type Properties struct {
	Doc      json.RawMessage // plain JSON object without "$" keys
	Metadata json.RawMessage // Azure's "$metadata" object for Doc
	Version  int64           // Azure's "$version"
}

// emptyMeta is the metadata of a side that has never changed: Azure prints
// times the hub has not set as the zero time.
const emptyMeta = `{"$lastUpdated":"0001-01-01T00:00:00Z"}`

// Empty returns the twin of a registered device or module whose twin has
// never been written: empty documents and versions 1.
func Empty(deviceID, moduleID string) *Twin {
	return &Twin{
		DeviceID:    deviceID,
		ModuleID:    moduleID,
		ETag:        ETag(1),
		Version:     1,
		Tags:        json.RawMessage(`{}`),
		TagsVersion: 1,
		Desired:     Properties{Doc: json.RawMessage(`{}`), Metadata: json.RawMessage(emptyMeta), Version: 1},
		Reported:    Properties{Doc: json.RawMessage(`{}`), Metadata: json.RawMessage(emptyMeta), Version: 1},
	}
}

// Clone returns a deep copy of t.
func (t *Twin) Clone() *Twin {
	c := *t
	c.Tags = bytes.Clone(t.Tags)
	c.Desired.Doc, c.Desired.Metadata = bytes.Clone(t.Desired.Doc), bytes.Clone(t.Desired.Metadata)
	c.Reported.Doc, c.Reported.Metadata = bytes.Clone(t.Reported.Doc), bytes.Clone(t.Reported.Metadata)
	return &c
}

// ETag returns the etag of a twin whose tags or desired properties last
// changed at twin version v: base64 of v as 8 big-endian bytes, Azure's form.
func ETag(v int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return base64.StdEncoding.EncodeToString(b[:])
}

// Change is one accepted change of one side of a twin, as kept in history.
type Change struct {
	DeviceID    string
	ModuleID    string
	Side        Side
	Version     int64           // the side's version after the change
	TwinVersion int64           // the twin's version after the change
	Time        time.Time       // when the change was applied
	Source      string          // "device", or "service" or "service:<policy>"
	Patch       json.RawMessage // the merge patch that was applied
}

// DesiredChange is the desired-property delta a device must be told about
// after a service change.
type DesiredChange struct {
	Patch   json.RawMessage // the merge patch, without "$version"; nil when desired did not change
	Version int64           // the new desired "$version"
}

// Changed reports whether desired properties changed.
func (c DesiredChange) Changed() bool { return c.Patch != nil }
