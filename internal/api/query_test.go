package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestQueryOrderByPaging pages an ORDER BY query through a real hub, with
// Azure's x-ms-max-item-count and x-ms-continuation headers and with
// ferry query --all, and checks that a token is refused by another query.
func TestQueryOrderByPaging(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	// Ranks tie in threes; every fifth device has none, and so sorts last
	// descending; ties go by device id descending.
	const n = 17
	for i := range n {
		id := fmt.Sprintf("ord-%02d", i)
		h.CreateDevice(t, id)
		if i%5 == 4 {
			continue
		}
		patch := fmt.Sprintf(`{"tags":{"rank":%d}}`, i/3)
		if _, err := h.Client.PatchTwin(ctx, id, []byte(patch), ""); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for r := (n - 1) / 3; r >= 0; r-- {
		for i := n - 1; i >= 0; i-- {
			if i/3 == r && i%5 != 4 {
				want = append(want, fmt.Sprintf("ord-%02d", i))
			}
		}
	}
	for i := n - 1; i >= 0; i-- {
		if i%5 == 4 {
			want = append(want, fmt.Sprintf("ord-%02d", i))
		}
	}
	const text = "SELECT deviceId, tags.rank FROM devices ORDER BY tags.rank DESC"
	var got []string
	next, pages := "", 0
	for {
		items, cont, err := h.Client.Query(ctx, text, 4, next)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		for _, it := range items {
			var v struct{ DeviceID string }
			if err := json.Unmarshal(it, &v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v.DeviceID)
		}
		if cont == "" {
			break
		}
		if pages == 2 {
			// The token belongs to this query: another one refuses it.
			_, _, err := h.Client.Query(ctx, "SELECT deviceId FROM devices ORDER BY tags.rank", 4, cont)
			if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "different query") {
				t.Fatalf("another query with this query's token: %v", err)
			}
		}
		next = cont
	}
	if !slices.Equal(got, want) || pages != (n+3)/4 {
		t.Fatalf("%d pages:\n got %q\nwant %q", pages, got, want)
	}

	var out, errb strings.Builder
	code := cli.Main(ctx, []string{"query", text, "--top", "3", "--all",
		"--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &out, &errb)
	if code != 0 {
		t.Fatalf("ferry query: %d %s", code, errb.String())
	}
	var items []struct{ DeviceID string }
	if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
		t.Fatalf("ferry query output: %v\n%s", err, out.String())
	}
	got = got[:0]
	for _, it := range items {
		got = append(got, it.DeviceID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ferry query --all --top 3:\n got %q\nwant %q", got, want)
	}

	_, _, err := h.Client.Query(ctx, "SELECT * FROM devices ORDER BY tags.rank DESC, tags.rank", 4, "")
	if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "line 1, column 48: tags.rank appears twice in ORDER BY") {
		t.Fatalf("a repeated ORDER BY field: %v", err)
	}
}
