package provision_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device/internal/provision"
	hubprov "github.com/ferry-iot/ferry/internal/provision"
)

// TestAutoApprove: a token created with AutoApprove approves each operation
// as it opens, under the requested id, within its uses.
func TestAutoApprove(t *testing.T) {
	h, c, _ := start(t)
	ctx := t.Context()
	tok := newToken(t, h, hubprov.CreateTokenRequest{Name: "lab", MaxUses: 1, AutoApprove: true})
	if got, err := h.Client.ProvisioningToken(ctx, "lab"); err != nil || !got.AutoApprove {
		t.Fatalf("token %+v, %v: want AutoApprove", got, err)
	}
	op, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: tok, DeviceID: "lab-1"})
	if err != nil {
		t.Fatal(err)
	}
	reg, _, err := c.Poll(ctx, tok, op.ID)
	if err != nil || reg == nil || reg.DeviceID != "lab-1" {
		t.Fatalf("first poll: %+v, %v; want approved as lab-1", reg, err)
	}
	if _, err := c.Register(ctx, reg.RegistrationToken); err != nil {
		t.Fatal(err)
	}
	// The token's one use is spent: it opens no more operations.
	if _, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: tok, DeviceID: "lab-2"}); !errors.Is(err, provision.ErrInvalidProvisioningToken) {
		t.Fatalf("Init past the token's uses: %v, want ErrInvalidProvisioningToken", err)
	}
}

// BenchmarkAutoApprovedRegistrations: devices joining through the approval
// flow with an auto-approving token, 32 at a time, each doing what the
// SDK does (init, poll, register) over HTTPS. Reports registrations/s.
func BenchmarkAutoApprovedRegistrations(b *testing.B) {
	h, c, _ := start(b)
	tok, err := h.Client.CreateProvisioningToken(context.Background(), hubprov.CreateTokenRequest{Name: "bench", AutoApprove: true})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				op, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: fmt.Sprintf("auto-%d", i)})
				if err != nil {
					b.Error(err)
					return
				}
				reg, _, err := c.Poll(ctx, tok.Secret, op.ID)
				if err != nil || reg == nil {
					b.Errorf("poll: %v, %v", reg, err)
					return
				}
				if _, err := c.Register(ctx, reg.RegistrationToken); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registrations/s")
}
