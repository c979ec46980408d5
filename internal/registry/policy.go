package registry

import "slices"

// Right is a permission granted by a shared access policy.
type Right string

// The rights, named as in Azure IoT Hub.
const (
	RegistryRead   Right = "RegistryRead"   // read device identities and twins
	RegistryWrite  Right = "RegistryWrite"  // create, update and delete device identities (implies RegistryRead)
	ServiceConnect Right = "ServiceConnect" // service-side operations: twin writes, methods, C2D, monitoring
	DeviceConnect  Right = "DeviceConnect"  // connect as any device with a policy-signed token
)

// AllRights lists every right, as held by the iothubowner policy.
var AllRights = []Right{RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect}

// Policy is a shared access policy: a named pair of keys and the rights a
// token signed with either key grants.
type Policy struct {
	KeyName      string  `json:"keyName"`
	PrimaryKey   string  `json:"primaryKey"`   // base64
	SecondaryKey string  `json:"secondaryKey"` // base64
	Rights       []Right `json:"rights"`
}

// Has reports whether p grants r. RegistryWrite implies RegistryRead, as in
// Azure, where the registryReadWrite policy may also read.
func (p Policy) Has(r Right) bool {
	if slices.Contains(p.Rights, r) {
		return true
	}
	return r == RegistryRead && slices.Contains(p.Rights, RegistryWrite)
}

// defaultPolicies are the policies a new Azure IoT hub starts with, without keys.
func defaultPolicies() []Policy {
	return []Policy{
		{KeyName: "iothubowner", Rights: slices.Clone(AllRights)},
		{KeyName: "service", Rights: []Right{ServiceConnect}},
		{KeyName: "device", Rights: []Right{DeviceConnect}},
		{KeyName: "registryRead", Rights: []Right{RegistryRead}},
		{KeyName: "registryReadWrite", Rights: []Right{RegistryRead, RegistryWrite}},
	}
}
