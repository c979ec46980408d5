// Package query parses the device query language of Azure IoT Hub (the
// subset Ferry supports) and compiles it to parameterized SQL.
package query
