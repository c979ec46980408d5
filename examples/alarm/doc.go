// Package alarm is seed 000's alarm scenario on Ferry: alarm-agent sends a
// protobuf Parcel holding an AlarmStatus whenever the simulated alarm
// changes, and a route delivers it to alarm-monitor's ProcessMessage direct
// method as protobuf bytes. The hub's configuration (devices, schema, route)
// replaces the seed's serverless forwarding functions; see README.md and
// setup.sh. The test in this folder runs the whole scenario against a real
// hub.
package alarm
