// Package protocol parses and formats the strings of the device protocol that
// Ferry speaks: Azure IoT Hub's MQTT device protocol and the Device
// Provisioning Service's MQTT flow. It covers topics and their property bags,
// the CONNECT username, SAS tokens, connection strings, and the topic ACL of a
// device.
//
// Everything here is a pure function over strings and bytes: no I/O, no
// clocks (callers pass the time), no dependencies beyond the standard library.
// The hub uses it on its hot paths (every PUBLISH parses a topic and a
// property bag, every CONNECT parses a username and verifies a token), so the
// parsers avoid allocations where they can, and every parser is fuzzed.
//
// The public device SDK keeps its own exported types; this package is the
// hub's vocabulary and an implementation detail behind the SDK.
//
// Rules shared by all parsers, from PROTOCOL.md:
//
//   - Percent-decoding treats '+' as a literal '+', never as a space. Node's
//     querystring and encodeURIComponent and Python's quote all encode a
//     space as %20, so a '+' on the wire is a real plus sign; decoding it as a
//     space would corrupt base64 signatures and application values that
//     hand-written clients leave unencoded.
//   - Identifiers in topics and usernames (device, module and registration
//     ids) are taken literally, never percent-decoded: the SDKs do not encode
//     them.
//   - Errors wrap one sentinel per concern (ErrBadPropertyBag, ErrBadTopic,
//     ErrBadUsername, ErrBadSAS, ErrBadConnectionString, ...) and never
//     contain secrets.
package protocol
