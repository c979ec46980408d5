package hub_test

import (
	"fmt"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/protocol"
)

type (
	apiMessage = api.Message
	hubConfig  = hub.Config
)

func countIs(got, want int) error {
	if got != want {
		return fmt.Errorf("%d messages, want %d", got, want)
	}
	return nil
}

func decodeKey(k string) ([]byte, error) { return protocol.DecodeKey(k) }
