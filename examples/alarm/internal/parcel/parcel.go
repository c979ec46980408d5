// Package parcel holds what alarm-agent and alarm-monitor share: the names
// the hub's route and schema use, packing and unpacking of parcels, and the
// events.log both write.
package parcel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferry-iot/ferry/examples/alarm/alarmpb"
)

// The names the agent, the hub's schema registry and the route agree on.
const (
	// ContentType marks a protobuf body.
	ContentType = "application/x-protobuf"
	// ProtoTypeProperty names the body's registered schema; the hub decodes
	// bodies with it for route conditions, ferry monitor and the console.
	ProtoTypeProperty = "proto-type"
	// ParcelSchema is the schema name a parcel's body is registered under
	// (ferry schema add pb_Parcel ...).
	ParcelSchema = "pb_Parcel"
	// DestinationProperty names the device the parcel is for; the route
	// takes its target from it (--target-from property:destination).
	DestinationProperty = "destination"
	// AlarmStatusType is Parcel.type for an AlarmStatus, as in seed 000.
	AlarmStatusType = "pb_AlarmStatus"
	// Method is the monitor's direct method the route invokes.
	Method = "ProcessMessage"
)

// Pack makes the parcel that carries st from agent (a device id) to
// destination (a device id).
func Pack(st *alarmpb.AlarmStatus, agent, destination string) ([]byte, error) {
	content, err := proto.Marshal(st)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&alarmpb.Parcel{
		Source: &alarmpb.Parcel_Source{Name: "Door Alarm", LocalId: "1", DomainAgent: agent,
			Domain: "Device Domain"},
		Destination: &alarmpb.Parcel_Destination{Name: destination},
		Type:        AlarmStatusType,
		Content:     content,
	})
}

// ErrBadParcel is returned by Unpack for anything but a parcel holding an
// AlarmStatus.
var ErrBadParcel = errors.New("bad parcel received")

// Unpack reads a parcel of an AlarmStatus.
func Unpack(b []byte) (*alarmpb.Parcel, *alarmpb.AlarmStatus, error) {
	var p alarmpb.Parcel
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadParcel, err)
	}
	if p.GetType() != AlarmStatusType {
		return nil, nil, fmt.Errorf("%w: type %q, want %q", ErrBadParcel, p.GetType(), AlarmStatusType)
	}
	var st alarmpb.AlarmStatus
	if err := proto.Unmarshal(p.GetContent(), &st); err != nil {
		return nil, nil, fmt.Errorf("%w: content: %v", ErrBadParcel, err)
	}
	return &p, &st, nil
}

// Status is the AlarmStatus of active at now, time and date in UTC as the
// seed's Python wrote them ("12:44:14.182005", "2022-02-14").
func Status(active bool, now time.Time) *alarmpb.AlarmStatus {
	now = now.UTC()
	return &alarmpb.AlarmStatus{AlarmActive: active, TimeUtc: now.Format("15:04:05.000000"),
		DateUtc: now.Format("2006-01-02")}
}

// Py formats a value as Python's %r does, so the logs read like the seed's.
func Py(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return "'" + v + "'"
	}
	return fmt.Sprint(v)
}

// Log is events.log: one line per event, stamped with the UTC time as
// Python's logging with the gmtime converter does ("2022-02-14 12:44:14,182").
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// OpenLog appends to the file at path ("-" is standard output).
func OpenLog(path string) (*Log, io.Closer, error) {
	if path == "-" {
		return &Log{w: os.Stdout, now: time.Now}, io.NopCloser(nil), nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return &Log{w: f, now: time.Now}, f, nil
}

// Printf writes one line.
func (l *Log) Printf(format string, args ...any) {
	t := l.now().UTC()
	line := t.Format("2006-01-02 15:04:05") + "," + fmt.Sprintf("%03d", t.Nanosecond()/1e6) + " " +
		fmt.Sprintf(format, args...) + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

// Stars is the seed's separator line.
func (l *Log) Stars() { l.Printf("%s", stars) }

var stars = strings.Repeat("*", 73)
