package protocol_test

import (
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

func ExampleParseTopic() {
	t, err := protocol.ParseTopic("devices/dev1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&room=a%20b")
	if err != nil {
		panic(err)
	}
	p, err := protocol.ParsePropertyBag(t.Bag)
	if err != nil {
		panic(err)
	}
	room, _ := p.Get("room")
	fmt.Println(t.Kind, t.DeviceID, p.ContentType, p.ContentEncoding, room)
	// Output: telemetry dev1 application/json utf-8 a b
}

func ExampleC2DTopic() {
	p := protocol.Properties{MessageID: "m1", App: []protocol.Property{{Key: "iothub-ack", Value: "full"}}}
	fmt.Println(protocol.C2DTopic("dev1", p))
	fmt.Println(protocol.C2DTopic("dev1", protocol.Properties{}))
	// Output:
	// devices/dev1/messages/devicebound/%24.mid=m1&iothub-ack=full
	// devices/dev1/messages/devicebound/
}

func ExampleSAS_Verify() {
	key, _ := protocol.DecodeKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	tok, err := protocol.ParseSAS("SharedAccessSignature sr=localhost%3A8884%2Fdevices%2Fdev1" +
		"&sig=JpaAVam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ%3D&se=1795404927")
	if err != nil {
		panic(err)
	}
	resource, _ := tok.ResourceURI()
	fmt.Println(resource == protocol.DeviceResource("localhost:8884", "dev1", ""))
	fmt.Println(tok.Verify(key, time.Unix(1795400000, 0)))
	fmt.Println(tok.Verify(key, time.Unix(1795404927, 0)))
	// Output:
	// true
	// <nil>
	// protocol: SAS token expired at 2026-11-23T03:35:27Z
}

func ExampleParseUsername() {
	u, err := protocol.ParseUsername("myhub.azure-devices.net/dev1/m1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1")
	if err != nil {
		panic(err)
	}
	fmt.Println(u.Host, u.DeviceID, u.ModuleID, u.APIVersion, u.ModelID)
	// Output: myhub.azure-devices.net dev1 m1 2021-04-12 dtmi:com:example:Thermostat;1
}

func ExampleDeviceOwnsFilter() {
	for _, f := range []string{"devices/dev1/messages/devicebound/#", "$iothub/methods/POST/#", "devices/+/messages/devicebound/#", "#"} {
		fmt.Println(f, protocol.DeviceOwnsFilter("dev1", "", f))
	}
	// Output:
	// devices/dev1/messages/devicebound/# true
	// $iothub/methods/POST/# true
	// devices/+/messages/devicebound/# false
	// # false
}
