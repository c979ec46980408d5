// Package registry keeps the hub's identity registry: the devices that may
// connect, with their status and credentials, and the shared access policies
// that services and operators authenticate with.
//
// # Shapes
//
// [Device] marshals to the device JSON of Azure IoT Hub's service REST API, so
// Azure's service SDKs (Node azure-iothub, .NET, Python) read and write it
// unchanged. [Policy] carries Azure's default policy names and rights.
//
// # Service
//
// [Service] applies Azure's rules (device id alphabet, key lengths, If-Match
// semantics, generated keys) on top of a [Store], the small storage interface
// this package declares and internal/store/sqlite implements. The MQTT connect
// path calls [Service.Keys], which is served from a bounded in-memory cache;
// every write goes through one path that invalidates the cache and then calls
// the [Service.Subscribe] callbacks.
package registry
