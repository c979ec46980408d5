#!/usr/bin/env bash
# Side-by-side load runs: the Ferry hub (default fsync durability, real SAS
# authentication) and Debian's Mosquitto (no persistence, no auth), same
# machine, same load generator (`ferry bench`), in one run. Prints each
# result and the ratios the performance bars are stated in.
#
#   bench/compare.sh [DURATION]        default 10s per ingest run
#
# Traffic stays on loopback; every run is bounded by time and count, and the
# script stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
work=$(mktemp -d /tmp/ferry-compare.XXXXXX)
ferry=$work/ferry
go build -o "$ferry" ./cmd/ferry
ulimit -n "$(ulimit -Hn)"

hub_pid=""
start_hub() {
	[ -n "${keep_data:-}" ] || rm -rf "$work/data"
	"$ferry" serve --data "$work/data" --mqtt 127.0.0.1:21883 --mqtts - --http 127.0.0.1:28080 --log-level warn \
		>"$work/hub.log" 2>&1 &
	hub_pid=$!
	for _ in $(seq 100); do
		[ -f "$work/data/owner-connection-string" ] && curl -skf https://127.0.0.1:28080/readyz >/dev/null && break
		sleep 0.1
	done
	# ferry serve re-executes itself once (see cmd/ferry); measure the serving process.
	hub_pid=$(pgrep -n -f "serve --data $work/data")
}
stop_hub() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait 2>/dev/null || true; hub_pid=""; }
start_mosq() { bench/mosquitto.sh stop 21884 >/dev/null 2>&1 || true; mosq_pid=$(bench/mosquitto.sh start 21884); }
stop_mosq() { bench/mosquitto.sh stop 21884 >/dev/null 2>&1 || true; }
trap 'stop_hub; stop_mosq; rm -rf "$work"' EXIT

hub() { "$ferry" bench "$1" --data "$work/data" --addr 127.0.0.1:21883 --server-pid "$hub_pid" --json "${@:2}" 2>/dev/null; }
mosq() { "$ferry" bench "$1" --no-auth --addr 127.0.0.1:21884 --server-pid "$mosq_pid" --json "${@:2}" 2>/dev/null; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "mosquitto: $(mosquitto -h 2>/dev/null | head -1 || true)"
echo

start_hub
start_mosq
echo "== ingest: 10 devices, QoS 1, 64-byte payloads, window 100, unpaced, $dur"
h=$(hub ingest --devices 10 --window 100 --payload 64 --duration "$dur")
m=$(mosq ingest --devices 10 --window 100 --payload 64 --duration "$dur")
python3 - "$h" "$m" <<'PY'
import json, sys
h, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
us = lambda ns: ns / 1000
ms = lambda ns: ns / 1e6
for name, r in (("ferry", h), ("mosquitto", m)):
    print(f"  {name:10} {r['MsgsPerSec']:>10,.0f} msgs/s   p99 {ms(r['LatencyP99']):6.1f} ms   server {us(r['ServerCPUPerMsg']):5.2f} us/msg   loader {us(r['LoaderCPU'])/max(r['Acked'],1):5.2f} us/msg")
print(f"  ratio: throughput {h['MsgsPerSec']/m['MsgsPerSec']:.2f}x mosquitto (bar >= 0.8x), server CPU/msg {h['ServerCPUPerMsg']/m['ServerCPUPerMsg']:.2f}x (bar <= 2x)")
PY
half=$(echo "$h" | field MsgsPerSec | python3 -c "import sys; print(int(float(sys.stdin.read())/2))")

echo "== ingest at half of ferry's max rate ($half msgs/s), same shape"
h=$(hub ingest --devices 10 --window 100 --payload 64 --duration "$dur" --rate "$half")
m=$(mosq ingest --devices 10 --window 100 --payload 64 --duration "$dur" --rate "$half")
python3 - "$h" "$m" <<'PY'
import json, sys
for name, s in (("ferry", sys.argv[1]), ("mosquitto", sys.argv[2])):
    r = json.loads(s)
    print(f"  {name:10} {r['MsgsPerSec']:>10,.0f} msgs/s   p50 {r['LatencyP50']/1e6:5.1f} ms  p99 {r['LatencyP99']/1e6:5.1f} ms (bar < 20 ms for ferry)   server {r['ServerCPUPerMsg']/1000:5.2f} us/msg")
PY

echo "== ingest at 20,000 msgs/s (light load: fsync cost per message)"
h=$(hub ingest --devices 10 --window 100 --payload 64 --duration "$dur" --rate 20000)
m=$(mosq ingest --devices 10 --window 100 --payload 64 --duration "$dur" --rate 20000)
python3 - "$h" "$m" <<'PY'
import json, sys
h, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, r in (("ferry", h), ("mosquitto", m)):
    print(f"  {name:10} p99 {r['LatencyP99']/1e6:5.1f} ms   server {r['ServerCPUPerMsg']/1000:5.2f} us/msg")
print(f"  ratio: server CPU/msg {h['ServerCPUPerMsg']/m['ServerCPUPerMsg']:.2f}x")
PY

echo "== connect: 19,000 connections, fresh servers (ferry: SAS-verified)"
stop_hub; start_hub
hub connect --connections 19000 --concurrency 64 >/dev/null # creates the devices and warms nothing else up
stop_hub
keep_data=1 start_hub # a fresh process on the same data: the devices exist, the caches are cold
h=$(hub connect --connections 19000 --concurrency 64)
stop_mosq; start_mosq
m=$(mosq connect --connections 19000 --concurrency 64)
python3 - "$h" "$m" <<'PY'
import json, sys
h, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, r in (("ferry", h), ("mosquitto", m)):
    print(f"  {name:10} {r['Connected']} connected, {r['PerSec']:>8,.0f} connects/s   {r['PerConnBytes']/1024:5.2f} KiB per idle connection")
print(f"  bars: ferry >= 5,000 SAS-verified connects/s, <= 8 KiB per idle connection")
PY
