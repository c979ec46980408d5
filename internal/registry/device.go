package registry

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status says whether a device may connect.
type Status string

// The device statuses, spelled as in Azure's device JSON.
const (
	StatusEnabled  Status = "enabled"
	StatusDisabled Status = "disabled"
)

// AuthType is how a device authenticates.
type AuthType string

// The authentication types, spelled as in Azure's device JSON.
const (
	AuthSAS        AuthType = "sas"                  // SAS tokens signed with a symmetric key
	AuthSelfSigned AuthType = "selfSigned"           // an X.509 certificate matched by thumbprint
	AuthCA         AuthType = "certificateAuthority" // an X.509 certificate signed by a trusted CA
)

// Connection states, spelled as in Azure's device JSON.
const (
	Connected    = "Connected"
	Disconnected = "Disconnected"
)

// SymmetricKey holds a device's two base64-encoded keys. Two keys let an
// operator roll one while devices still use the other.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint holds the hex thumbprints of a self-signed device
// certificate. Absent thumbprints marshal as null, as Azure prints them.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Authentication is a device's credential configuration.
type Authentication struct {
	SymmetricKey   *SymmetricKey  `json:"symmetricKey,omitempty"`
	X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
	Type           AuthType       `json:"type"`
}

// Capabilities are optional device features.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Device is one identity in the registry. Its JSON form is Azure IoT Hub's
// device JSON; timestamps the hub has not set yet are the zero time.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"` // differs between two devices that reused one id
	ETag                       string         `json:"etag"`         // changes on every identity update, not on connection state
	ConnectionState            string         `json:"connectionState"`
	Status                     Status         `json:"status"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime time.Time      `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          time.Time      `json:"statusUpdatedTime"`
	LastActivityTime           time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
	DeviceScope                *string        `json:"deviceScope"`
	ParentScopes               []string       `json:"parentScopes"`
	ModelID                    string         `json:"modelId,omitempty"` // IoT Plug and Play model (DTMI)
}

// deviceJSON has Device's fields without its methods, so MarshalJSON and
// UnmarshalJSON can use the default encoding without recursing.
type deviceJSON Device

// MarshalJSON encodes d as Azure's device JSON. parentScopes is always an
// array: the Node SDK and az print [] and clients index it without a nil check.
func (d Device) MarshalJSON() ([]byte, error) {
	if d.ParentScopes == nil {
		d.ParentScopes = []string{}
	}
	return json.Marshal(deviceJSON(d))
}

// UnmarshalJSON decodes Azure's device JSON. Timestamps are accepted with or
// without a zone, because the .NET service SDK sends DateTime values such as
// "0001-01-01T00:00:00" that time.Time alone refuses; zoneless ones are UTC.
func (d *Device) UnmarshalJSON(b []byte) error {
	var aux struct {
		*deviceJSON
		ConnectionStateUpdatedTime flexTime `json:"connectionStateUpdatedTime"`
		StatusUpdatedTime          flexTime `json:"statusUpdatedTime"`
		LastActivityTime           flexTime `json:"lastActivityTime"`
	}
	aux.deviceJSON = (*deviceJSON)(d)
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.ConnectionStateUpdatedTime = time.Time(aux.ConnectionStateUpdatedTime)
	d.StatusUpdatedTime = time.Time(aux.StatusUpdatedTime)
	d.LastActivityTime = time.Time(aux.LastActivityTime)
	return nil
}

// flexTime decodes an RFC 3339 timestamp whose zone may be missing.
type flexTime time.Time

// zonelessLayout is how .NET prints a DateTime of unspecified kind.
const zonelessLayout = "2006-01-02T15:04:05.999999999"

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = flexTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		*f = flexTime{}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.ParseInLocation(zonelessLayout, s, time.UTC)
	}
	if err != nil {
		return fmt.Errorf("registry: timestamp %q is not RFC 3339", s)
	}
	*f = flexTime(t)
	return nil
}
