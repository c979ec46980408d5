package hub_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// BenchmarkReportedPatches: 1,000 devices on plain MQTT each send reported
// property patches one after another (waiting for each 204), for b.N
// patches in all; reports acknowledged patches per second.
func BenchmarkReportedPatches(b *testing.B) {
	const devices = 1000
	h := hubtest.Start(b)
	addr := h.MQTTAddr("tcp").String()
	conns := make([]*hubtest.Conn, devices)
	for i := range conns {
		d, err := h.Client.CreateDevice(context.Background(), registry.Device{DeviceID: fmt.Sprintf("rp-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		dev := hubtest.Device{ID: d.DeviceID, Host: h.DeviceHost()}
		dev.Key = mustKey(b, d.Authentication.SymmetricKey.PrimaryKey)
		c, code, err := hubtest.Dial(addr, nil, hubtest.ConnectOptions{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Clean: true})
		if err != nil || code != 0 {
			b.Fatal(code, err)
		}
		if _, err := c.Subscribe("$iothub/twin/res/#"); err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; next.Add(1) <= int64(b.N); n++ {
				rid := fmt.Sprintf("%d-%d", i, n)
				if _, err := c.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, []byte(fmt.Sprintf(`{"temp":%d}`, n)), 0, false); err != nil {
					b.Error(err)
					return
				}
				for {
					pk, err := c.Next(10 * time.Second)
					if err != nil {
						b.Error(err)
						return
					}
					if pk.FixedHeader.Type == packets.Publish && strings.HasSuffix(strings.Split(pk.TopicName, "&")[0], "$rid="+rid) {
						if !strings.HasPrefix(pk.TopicName, "$iothub/twin/res/204/") {
							b.Errorf("patch answered %s", pk.TopicName)
						}
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "patches/s")
}

// BenchmarkDesiredDelivery: the service changes a desired property over
// REST and the connected device receives it; reports the p50 and p99 of the
// time from the PATCH request to the device's receipt.
func BenchmarkDesiredDelivery(b *testing.B) {
	h := hubtest.Start(b)
	dev := h.CreateDevice(b, "desired-bench")
	c, code, err := hubtest.Dial(h.MQTTAddr("tcp").String(), nil, hubtest.ConnectOptions{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Clean: true})
	if err != nil || code != 0 {
		b.Fatal(code, err)
	}
	defer c.Close()
	if _, err := c.Subscribe("$iothub/twin/PATCH/properties/desired/#"); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := h.Client.PatchTwin(context.Background(), dev.ID, []byte(fmt.Sprintf(`{"properties":{"desired":{"n":%d}}}`, i)), ""); err != nil {
			b.Fatal(err)
		}
		for {
			pk, err := c.Next(5 * time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if pk.FixedHeader.Type == packets.Publish && strings.Contains(string(pk.Payload), fmt.Sprintf(`"n":%d`, i)) {
				lat = append(lat, time.Since(t0))
				break
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func mustKey(b *testing.B, k string) []byte {
	key, err := decodeKey(k)
	if err != nil {
		b.Fatal(err)
	}
	return key
}
