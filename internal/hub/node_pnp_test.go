package hub_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/model"
)

// TestNodePnP runs test/node/pnp.js: Microsoft's azure-iot-device,
// unchanged, as a Plug and Play device with the modelId option. The hub
// must show the model in the twin, file its component telemetry ($.sub)
// under the component and check it against the model (flagging the one
// message that does not fit), and see its writable-property
// acknowledgement as in sync, as ferry pnp show prints it.
func TestNodePnP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	nodeDir := nodeTestDir(t)
	npmCI(t, nodeDir)
	h := hubtest.Start(t)
	ctx := context.Background()
	c := h.Client
	addExampleModels(t, c)
	d := h.CreateDevice(t, "node-pnp")
	// The operator sets the target before the device connects; the SDK
	// hears the whole desired document after getTwin.
	mod, err := c.Model(ctx, controllerModel)
	if err != nil || mod.Model == nil {
		t.Fatalf("model: %v", err)
	}
	patch, err := model.DesiredPatch(mod.Model, "thermostat1.targetTemperature", json.RawMessage(`23.5`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PatchTwin(ctx, d.ID, patch, ""); err != nil {
		t.Fatal(err)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	cs := "HostName=" + d.Host + ";DeviceId=" + d.ID + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(d.Key)
	var out struct {
		OK    bool `json:"ok"`
		Acked struct {
			Value float64 `json:"value"`
			AV    int64   `json:"av"`
		} `json:"acked"`
		Sent     []string `json:"sent"`
		Failures []string `json:"failures"`
	}
	runNode(t, nodeBin, nodeDir, "pnp.js", []string{"FERRY_DEVICE_CS=" + cs, "FERRY_CA=" + h.CAFile(),
		"FERRY_MODEL_ID=" + controllerModel, "FERRY_RUN=" + run}, &out)
	if !out.OK || out.Acked.Value != 23.5 || len(out.Sent) != 3 {
		t.Fatalf("pnp.js: %+v", out)
	}

	// The twin's modelId comes from the username's model-id (Node sends it raw).
	hubtest.Eventually(t, 20*time.Second, func() error {
		raw, err := c.GetTwin(ctx, d.ID)
		if err != nil {
			return err
		}
		var tw struct {
			ModelID string `json:"modelId"`
		}
		_ = json.Unmarshal(raw, &tw)
		if tw.ModelID != controllerModel {
			return fmt.Errorf("twin modelId %q", tw.ModelID)
		}
		return nil
	})
	// Component telemetry: filed under thermostat1, checked against the
	// model; only the bad message is flagged.
	var page *api.MessagePage
	hubtest.Eventually(t, 20*time.Second, func() error {
		page, err = c.ReadStream(ctx, "*", api.ReadQuery{Device: d.ID, From: "beginning"})
		if err != nil {
			return err
		}
		if len(page.Messages) != 3 {
			return fmt.Errorf("%d messages", len(page.Messages))
		}
		return nil
	})
	for _, m := range page.Messages {
		id, comp := m.SystemProperties.MessageID, m.SystemProperties.Component
		bad := strings.HasPrefix(id, "bad-")
		switch {
		case strings.HasPrefix(id, "t1-") || bad:
			if comp != "thermostat1" {
				t.Errorf("%s: component %q, want thermostat1", id, comp)
			}
		case comp != "":
			t.Errorf("%s: component %q, want none", id, comp)
		}
		if bad != (len(m.PnPMismatch) > 0) {
			t.Errorf("%s: mismatch %v", id, m.PnPMismatch)
		}
	}
	// The acknowledgement, as ferry pnp show reads it.
	hubtest.Eventually(t, 20*time.Second, func() error {
		st, err := c.DevicePnP(ctx, d.ID)
		if err != nil {
			return err
		}
		if st.Telemetry.Checked != 3 || st.Telemetry.Mismatched != 1 {
			return fmt.Errorf("telemetry: %+v", st.Telemetry)
		}
		for _, w := range st.Writable {
			if w.Component == "thermostat1" && w.Name == "targetTemperature" {
				if w.State != model.StateInSync || w.AckCode != 200 || w.AckVer != out.Acked.AV || w.AckVer != w.DesiredV {
					return fmt.Errorf("thermostat1.targetTemperature: %+v", w)
				}
				return nil
			}
		}
		return fmt.Errorf("writable: %+v", st.Writable)
	})
}
