package twin

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// DeviceFacts are the registry and connection fields of the service twin
// JSON, which the twin store does not keep. The caller fills them from the
// registry and the broker.
type DeviceFacts struct {
	DeviceEtag                string    // the identity's etag
	Status                    string    // "enabled" or "disabled"
	StatusUpdateTime          time.Time // zero when never set
	ConnectionState           string    // "Connected" or "Disconnected"
	LastActivityTime          time.Time // zero when never set
	CloudToDeviceMessageCount int
	AuthenticationType        string  // "sas", "selfSigned" or "certificateAuthority"
	PrimaryThumbprint         *string // X.509 thumbprints; nil prints null
	SecondaryThumbprint       *string
	ModelID                   string // IoT Plug and Play model id; "" leaves modelId out
}

// serviceTwin is the service twin JSON of Azure's GET /twins/{id}, in
// Azure's field order. The properties are spliced in as raw JSON.
type serviceTwin struct {
	DeviceID                  string          `json:"deviceId"`
	ModuleID                  string          `json:"moduleId,omitempty"`
	ETag                      string          `json:"etag"`
	DeviceEtag                string          `json:"deviceEtag,omitempty"`
	Status                    string          `json:"status,omitempty"`
	StatusUpdateTime          string          `json:"statusUpdateTime"`
	ConnectionState           string          `json:"connectionState,omitempty"`
	LastActivityTime          string          `json:"lastActivityTime"`
	CloudToDeviceMessageCount int             `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string          `json:"authenticationType,omitempty"`
	X509Thumbprint            thumbprints     `json:"x509Thumbprint"`
	ModelID                   string          `json:"modelId,omitempty"`
	Version                   int64           `json:"version"`
	Tags                      json.RawMessage `json:"tags"`
	Properties                struct {
		Desired  json.RawMessage `json:"desired"`
		Reported json.RawMessage `json:"reported"`
	} `json:"properties"`
}

type thumbprints struct {
	Primary   *string `json:"primaryThumbprint"`
	Secondary *string `json:"secondaryThumbprint"`
}

// Render returns the service twin JSON of t (PROTOCOL.md §2.4): the
// documents with "$metadata" and "$version" on each properties side, the
// twin's etag and version, and dev's registry fields.
func Render(t *Twin, dev DeviceFacts) ([]byte, error) {
	st := serviceTwin{
		DeviceID:                  t.DeviceID,
		ModuleID:                  t.ModuleID,
		ETag:                      t.ETag,
		DeviceEtag:                dev.DeviceEtag,
		Status:                    dev.Status,
		StatusUpdateTime:          formatTime(dev.StatusUpdateTime),
		ConnectionState:           dev.ConnectionState,
		LastActivityTime:          formatTime(dev.LastActivityTime),
		CloudToDeviceMessageCount: dev.CloudToDeviceMessageCount,
		AuthenticationType:        dev.AuthenticationType,
		X509Thumbprint:            thumbprints{dev.PrimaryThumbprint, dev.SecondaryThumbprint},
		ModelID:                   dev.ModelID,
		Version:                   t.Version,
		Tags:                      t.Tags,
	}
	st.Properties.Desired = splice(t.Desired.Doc, t.Desired.Metadata, t.Desired.Version)
	st.Properties.Reported = splice(t.Reported.Doc, t.Reported.Metadata, t.Reported.Version)
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(st); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// RenderDevice returns the body of the device's twin GET response
// (PROTOCOL.md §1.6): both property documents with "$version" and without
// "$metadata" or a "properties" wrapper.
func RenderDevice(t *Twin) []byte {
	b := make([]byte, 0, len(t.Desired.Doc)+len(t.Reported.Doc)+64)
	b = append(b, `{"desired":`...)
	b = append(b, splice(t.Desired.Doc, nil, t.Desired.Version)...)
	b = append(b, `,"reported":`...)
	b = append(b, splice(t.Reported.Doc, nil, t.Reported.Version)...)
	return append(b, '}')
}

// Body returns the desired-property notification sent to the device
// (PROTOCOL.md §1.6): the patch with "$version" added, which the device
// SDKs read from the body.
func (c DesiredChange) Body() []byte {
	return splice(c.Patch, nil, c.Version)
}

// splice appends "$metadata" (when meta is not nil) and "$version" to the
// JSON object doc, without parsing it: doc is compact JSON from encode.
func splice(doc, meta json.RawMessage, version int64) json.RawMessage {
	doc = bytes.TrimSpace(doc)
	if len(doc) < 2 {
		doc = json.RawMessage(`{}`)
	}
	b := make([]byte, 0, len(doc)+len(meta)+40)
	b = append(b, doc[:len(doc)-1]...)
	if len(bytes.TrimSpace(doc[1:len(doc)-1])) > 0 {
		b = append(b, ',')
	}
	if meta != nil {
		b = append(b, `"$metadata":`...)
		b = append(b, meta...)
		b = append(b, ',')
	}
	b = append(b, `"$version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}')
}

// formatTime prints a time as Azure does: RFC 3339 in UTC, the zero time
// as "0001-01-01T00:00:00Z".
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
