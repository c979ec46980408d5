#!/usr/bin/env bash
# Ingest with and without 5 browsers' live charts (issue 7's bar: within 5%).
# Builds ferry, starts a fresh hub (default fsync durability), signs in to
# the console with curl and alternates `ferry bench ingest` runs without (A)
# and with (B) five Server-Sent Event streams of /console/data/devices/
# bench-N/live open (five devices, so five tailers: the worst case).
#
#   test/browser/live-bench.sh            # 5 pairs of 8 s, unpaced
#   PAIRS=3 DUR=6s RATE=50000 test/browser/live-bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRS=${PAIRS:-5}; DUR=${DUR:-8s}
work=$(mktemp -d)
F=$work/ferry; D=$work/data; J=$work/cookies
go build -o "$F" ./cmd/ferry
"$F" serve --data "$D" --http 127.0.0.1:18443 --mqtt 127.0.0.1:18831 --mqtts 127.0.0.1:18884 > "$work/serve.log" 2>&1 &
PID=$!
sse=()
cleanup() { for p in "${sse[@]}"; do kill "$p" 2>/dev/null || true; done; kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$D/owner-connection-string" ] && break; sleep 0.2; done; sleep 1
KEY=$(sed 's/.*SharedAccessKey=//' "$D/owner-connection-string")
U=https://127.0.0.1:18443/console
tok=$(curl -sk -c "$J" "$U/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
curl -sk -b "$J" -c "$J" -o /dev/null --data-urlencode "csrf=$tok" --data-urlencode policy=iothubowner --data-urlencode "key=$KEY" "$U/login"
bench() { "$F" bench ingest --data "$D" --addr 127.0.0.1:18831 --devices 10 --window 100 --duration "$DUR" --warmup 2s --server-pid "$PID" --json ${RATE:+--rate $RATE} 2>/dev/null; }
summary() { python3 -c 'import json,sys; r=json.load(sys.stdin); print("%9.0f msgs/s  %5.2f µs/msg server CPU  p99 %5.1f ms" % (r["MsgsPerSec"], r["ServerCPUPerMsg"]/1000, r["LatencyP99"]/1e6))'; }
bench >/dev/null # creates the devices
echo "load before: $(uptime)"
for i in $(seq "$PAIRS"); do
  echo "A$i no browsers      $(bench | summary)"
  sse=()
  for d in 0 1 2 3 4; do curl -sk -N -b "$J" "$U/data/devices/bench-$d/live" > "$work/sse-$d" & sse+=($!); done
  sleep 1
  echo "B$i 5 live charts    $(bench | summary)   (SSE bytes received: $(cat "$work"/sse-* | wc -c))"
  for p in "${sse[@]}"; do kill "$p" 2>/dev/null || true; done
  sse=()
done
echo "load after: $(uptime)"
