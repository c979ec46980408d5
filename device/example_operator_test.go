package device_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// operator plays the service side in the examples: what `ferry twin`,
// `ferry invoke` and `ferry c2d send` do, through the hub's REST API.
var operator exampleOperator

type exampleOperator struct{}

func (exampleOperator) client() (*api.Client, string) {
	c, err := api.NewClient(os.Getenv("FERRY_SERVICE_CONNECTION_STRING"), api.ClientOptions{CAFile: os.Getenv("FERRY_CA_FILE")})
	if err != nil {
		log.Fatal(err)
	}
	cs, err := protocol.ParseConnectionString(os.Getenv("FERRY_DEVICE_CONNECTION_STRING"))
	if err != nil {
		log.Fatal(err)
	}
	return c, cs.DeviceID
}

func (o exampleOperator) setDesired(doc string) {
	c, id := o.client()
	if _, err := c.PatchTwin(context.Background(), id, []byte(`{"properties":{"desired":`+doc+`}}`), "*"); err != nil {
		log.Fatal(err)
	}
}

func (o exampleOperator) invoke(name, payload string) string {
	c, id := o.client()
	r, err := c.InvokeMethod(context.Background(), id, "", api.MethodRequest{MethodName: name,
		Payload: []byte(payload), ResponseTimeoutInSeconds: 10, ConnectTimeoutInSeconds: 10})
	if err != nil {
		log.Fatal(err)
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", r.Status, r.Payload))
}

func (o exampleOperator) sendC2D(body string) {
	c, id := o.client()
	if _, err := c.SendC2D(context.Background(), id, []byte(body), api.C2DOptions{ContentType: "application/json", TTL: time.Minute}); err != nil {
		log.Fatal(err)
	}
}
