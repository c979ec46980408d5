package protocol_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

var (
	sinkProps protocol.Properties
	sinkTopic protocol.Topic
	sinkErr   error
	sinkBytes []byte
)

func BenchmarkParsePropertyBag(b *testing.B) {
	var many strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&many, "$.k%d=&a%d=&", i, i)
	}
	for _, bc := range []struct{ name, bag string }{
		{"many-keys", many.String()},
		{"node", nodeBag},
		{"empty", ""},
		{"plain", "$.mid=m1&$.ct=json"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkProps, sinkErr = protocol.ParsePropertyBagLimit(bc.bag, 0, 0)
			}
			if sinkErr != nil {
				b.Fatal(sinkErr)
			}
		})
	}
}

func BenchmarkAppendBag(b *testing.B) {
	p, err := protocol.ParsePropertyBag(nodeBag)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		sinkBytes = p.AppendBag(buf[:0])
	}
}

func BenchmarkParseTopic(b *testing.B) {
	topic := "devices/dev1/messages/events/" + nodeBag
	b.ReportAllocs()
	for b.Loop() {
		sinkTopic, sinkErr = protocol.ParseTopic(topic)
	}
}

func BenchmarkSASVerify(b *testing.B) {
	s, err := protocol.ParseSAS(vectorToken)
	if err != nil {
		b.Fatal(err)
	}
	now := vectorExpiry.Add(-time.Hour)
	b.Run("as-sent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkErr = s.Verify(vectorKey, now)
		}
		if sinkErr != nil {
			b.Fatal(sinkErr)
		}
	})
	b.Run("wrong-key", func(b *testing.B) { // both forms are tried
		b.ReportAllocs()
		for b.Loop() {
			sinkErr = s.Verify([]byte("wrong key"), now)
		}
	})
	b.Run("parse+verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := protocol.ParseSAS(vectorToken)
			if err == nil {
				err = s.Verify(vectorKey, now)
			}
			sinkErr = err
		}
	})
}
