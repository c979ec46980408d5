package route

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/stream"
)

// BodyDecoder turns a binary body into JSON for conditions: the protobuf
// schema registry (internal/schema) implements it.
type BodyDecoder interface {
	// DecodeJSON decodes data, a message of the named type, to JSON.
	DecodeJSON(typeName string, data []byte) ([]byte, error)
}

// TwinReader returns the JSON documents of a device's (or module's) twin.
type TwinReader interface {
	TwinDocs(ctx context.Context, deviceID, moduleID string) (tags, desired, reported []byte, err error)
}

// Property names Ferry reads and writes on messages.
const (
	ProtoTypeProperty = "proto-type"  // the protobuf message type of an application/x-protobuf body
	HopsProperty      = "ferry-hops"  // how many routings a message went through (loop bound)
	RouteProperty     = "ferry-route" // the route that delivered a message
)

// MaxBodyBytes bounds a decompressed body read for conditions.
const MaxBodyBytes = 1 << 20

// input is one message as conditions see it. Its lazy parts, the body as
// JSON and the sender's twin, are computed at most once per message and
// shared by all routes.
type input struct {
	m      *stream.Message
	source Source
	dec    BodyDecoder
	twins  TwinReader
	ctx    context.Context

	bodyDone bool
	bodyRead bool   // a condition read the body
	body     []byte // the body as JSON; nil when it is not
	bodyWhy  string // why not: "not JSON", "protobuf: ...", "gzip: ..."

	twinDone                bool
	tags, desired, reported []byte

	// A memo of body and twin field values for this message, shared by
	// all routes: ten routes on $body.temperature look it up once. An
	// entry is current when its generation is gen.
	gen     uint32
	memo    []val
	memoGen []uint32
}

// reset prepares in for m.
func (in *input) reset(m *stream.Message, src Source) {
	*in = input{m: m, source: src, dec: in.dec, twins: in.twins, ctx: in.ctx,
		gen: in.gen + 1, memo: in.memo, memoGen: in.memoGen}
	if in.gen == 0 { // wrapped: forget every entry
		clear(in.memoGen)
		in.gen = 1
	}
}

// jsonBody returns the body as JSON, decoding it on first use: JSON as
// is; gzip (content encoding) first inflated; application/x-protobuf with
// a registered proto-type decoded through the BodyDecoder. Anything else
// has no JSON form, and conditions on it are undefined (so false).
func (in *input) jsonBody() []byte {
	in.bodyRead = true
	if in.bodyDone {
		return in.body
	}
	in.bodyDone = true
	data := in.m.Body
	if enc := strings.ToLower(strings.TrimSpace(in.m.ContentEncoding)); enc == "gzip" {
		var err error
		if data, err = gunzip(data); err != nil {
			in.bodyWhy = "gzip: " + err.Error()
			return nil
		}
	}
	ct := mediaType(in.m.ContentType)
	switch {
	case ct == "application/x-protobuf" || ct == "application/protobuf":
		typ := appProperty(in.m, ProtoTypeProperty)
		if typ == "" || in.dec == nil {
			in.bodyWhy = "protobuf without a proto-type property"
			return nil
		}
		js, err := in.dec.DecodeJSON(typ, data)
		if err != nil {
			in.bodyWhy = "protobuf: " + err.Error()
			return nil
		}
		in.body = js
	case ct == "application/json" || strings.HasSuffix(ct, "+json") || ct == "":
		// Devices often send JSON without saying so; a body that is
		// valid JSON counts when no content type claims otherwise.
		if !json.Valid(data) {
			in.bodyWhy = "not JSON"
			return nil
		}
		in.body = data
	default:
		in.bodyWhy = "content type " + ct + " is not JSON"
	}
	return in.body
}

func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	for i := 0; i < len(ct); i++ {
		if 'A' <= ct[i] && ct[i] <= 'Z' {
			return strings.ToLower(ct)
		}
	}
	return ct
}

var errTooBig = errors.New("body exceeds the routing limit when inflated")

func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBodyBytes {
		return nil, errTooBig
	}
	return out, nil
}

// twinDocs loads the sender's twin on first use.
func (in *input) twinDocs() (tags, desired, reported []byte) {
	if !in.twinDone {
		in.twinDone = true
		if in.twins != nil && in.m.DeviceID != "" {
			in.tags, in.desired, in.reported, _ = in.twins.TwinDocs(in.ctx, in.m.DeviceID, in.m.ModuleID)
		}
	}
	return in.tags, in.desired, in.reported
}

// appProperty returns an application property's value, "" when absent.
func appProperty(m *stream.Message, key string) string {
	for i := range m.Properties {
		if m.Properties[i].Key == key {
			return m.Properties[i].Value
		}
	}
	return ""
}

// accessor reads one field of a message.
type accessor struct {
	root query.Root
	path []string
	sys  sysProp
	name string // application property name
	slot int    // memo slot of a body or twin field; -1 for none
}

func (a *accessor) get(in *input) val {
	if a.slot < 0 || a.root == query.MsgSystem || a.root == query.MsgApp {
		return a.read(in)
	}
	if a.slot < len(in.memoGen) && in.memoGen[a.slot] == in.gen {
		return in.memo[a.slot]
	}
	v := a.read(in)
	if a.slot >= len(in.memo) {
		n := a.slot + 1
		in.memo = append(in.memo, make([]val, n-len(in.memo))...)
		in.memoGen = append(in.memoGen, make([]uint32, n-len(in.memoGen))...)
	}
	in.memo[a.slot], in.memoGen[a.slot] = v, in.gen
	return v
}

// memo slots are numbered per distinct body or twin field, process-wide.
var slots = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

const maxSlots = 1024

func slotOf(root query.Root, path []string) int {
	key := strconv.Itoa(int(root)) + "\x00" + strings.Join(path, "\x00")
	slots.Lock()
	defer slots.Unlock()
	if n, ok := slots.m[key]; ok {
		return n
	}
	if len(slots.m) >= maxSlots {
		return -1
	}
	n := len(slots.m)
	slots.m[key] = n
	return n
}

func (a *accessor) read(in *input) val {
	switch a.root {
	case query.MsgSystem:
		s := a.sys.get(in)
		return val{ok: s != "", prop: true, kind: query.String, s: s}
	case query.MsgApp:
		for i := range in.m.Properties {
			if p := &in.m.Properties[i]; p.Key == a.name {
				return val{ok: true, prop: true, kind: query.String, s: p.Value}
			}
		}
		return val{}
	case query.MsgBody:
		return docVal(in.jsonBody(), a.path)
	}
	tags, desired, reported := in.twinDocs()
	switch a.root {
	case query.TwinTags:
		return docVal(tags, a.path)
	case query.TwinDesired:
		return docVal(desired, a.path)
	}
	return docVal(reported, a.path)
}

func docVal(doc []byte, path []string) val {
	if doc == nil {
		return val{}
	}
	raw, ok := lookupJSON(doc, path)
	if !ok {
		return val{}
	}
	return jsonVal(raw)
}

// sysProp is a system property.
type sysProp uint8

const (
	sysMessageID sysProp = iota
	sysCorrelationID
	sysUserID
	sysTo
	sysContentType
	sysContentEncoding
	sysExpiry
	sysCreationTime
	sysDeviceID
	sysModuleID
	sysEnqueued
	sysAuthMethod
	sysComponent
	sysInterfaceID
	sysOutputName
	sysStream
	sysStreamGroup
	sysSource
)

// systemProps maps lower-cased names (Azure's, and its iothub- forms) to
// system properties.
var systemProps = map[string]sysProp{
	"messageid": sysMessageID, "correlationid": sysCorrelationID, "userid": sysUserID, "to": sysTo,
	"contenttype": sysContentType, "contentencoding": sysContentEncoding,
	"expirytimeutc": sysExpiry, "creationtimeutc": sysCreationTime, "iothub-creation-time-utc": sysCreationTime,
	"connectiondeviceid": sysDeviceID, "iothub-connection-device-id": sysDeviceID,
	"connectionmoduleid": sysModuleID, "iothub-connection-module-id": sysModuleID,
	"enqueuedtime": sysEnqueued, "iothub-enqueuedtime": sysEnqueued,
	"connectionauthmethod": sysAuthMethod, "iothub-connection-auth-method": sysAuthMethod,
	"component": sysComponent, "dt-subject": sysComponent,
	"interfaceid": sysInterfaceID, "dt-dataschema": sysInterfaceID,
	"outputname": sysOutputName, "stream": sysStream, "streamgroup": sysStreamGroup,
	"messagesource": sysSource, "iothub-message-source": sysSource,
}

func lookupSystem(name string) (sysProp, bool) {
	p, ok := systemProps[strings.ToLower(name)]
	return p, ok
}

func systemNames() string {
	return "$messageId, $correlationId, $userId, $to, $contentType, $contentEncoding, $expiryTimeUtc, " +
		"$creationTimeUtc, $connectionDeviceId, $connectionModuleId, $enqueuedTime, $connectionAuthMethod, " +
		"$component, $interfaceId, $outputName, $stream, $streamGroup, $messageSource"
}

func (p sysProp) get(in *input) string {
	m := in.m
	switch p {
	case sysMessageID:
		return m.MessageID
	case sysCorrelationID:
		return m.CorrelationID
	case sysUserID:
		return m.UserID
	case sysTo:
		return m.To
	case sysContentType:
		return m.ContentType
	case sysContentEncoding:
		return m.ContentEncoding
	case sysExpiry:
		return m.Expiry
	case sysCreationTime:
		return m.CreationTime
	case sysDeviceID:
		return m.DeviceID
	case sysModuleID:
		return m.ModuleID
	case sysEnqueued:
		if m.EnqueuedTime.IsZero() {
			return ""
		}
		return m.EnqueuedTime.UTC().Format(time.RFC3339Nano)
	case sysAuthMethod:
		return m.AuthMethod
	case sysComponent:
		return m.Component
	case sysInterfaceID:
		return m.InterfaceID
	case sysOutputName:
		return m.OutputName
	case sysStream:
		return orDefault(m.Stream)
	case sysStreamGroup:
		return orDefault(m.Group)
	case sysSource:
		return string(in.source)
	}
	return ""
}

func orDefault(s string) string {
	if s == "" {
		return stream.DefaultName
	}
	return s
}
