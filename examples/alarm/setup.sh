#!/usr/bin/env bash
# Seed 000's alarm scenario on Ferry, end to end, with the CLI:
#   1. build ferry, alarm-agent and alarm-monitor,
#   2. start a hub (unless one is already reachable),
#   3. create the devices alarm-agent and alarm-monitor,
#   4. register the Parcel schema, so the hub can read parcels' bodies,
#   5. add the route "parcels of type pb_AlarmStatus -> alarm-monitor's
#      ProcessMessage",
#   6. run both devices and follow events.log.
#
# Usage: examples/alarm/setup.sh [SECONDS]     (default: run until Ctrl-C)
#        ALARM_AGENT=python examples/alarm/setup.sh   (examples/python's agent)
#
# Everything goes to $ALARM_DIR (default ./alarm-run): bin/, ferry-data/ of the
# hub it starts, the devices' stores and events.log. To use a hub that already
# runs, set FERRY_HUB (its owner connection string) and FERRY_CA (its CA file),
# or FERRY_DATA (its data directory). Run it again at will: what exists is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-0}
work=${ALARM_DIR:-$PWD/alarm-run}
mkdir -p "$work/bin"
work=$(cd "$work" && pwd)
export FERRY_DATA=${FERRY_DATA:-$work/ferry-data}

echo "== building into $work/bin"
(cd "$root" && go build -o "$work/bin/" ./cmd/ferry ./examples/alarm/alarm-agent ./examples/alarm/alarm-monitor)
ferry() { "$work/bin/ferry" "$@"; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! ferry route list >/dev/null 2>&1; then
  if [ -n "${FERRY_HUB:-}" ]; then
    echo "the hub in FERRY_HUB does not answer" >&2; exit 1
  fi
  echo "== starting a hub: ferry serve --data $FERRY_DATA (log: $work/hub.log)"
  ferry serve --data "$FERRY_DATA" >"$work/hub.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do ferry route list >/dev/null 2>&1 && break; sleep 0.1; done
  ferry route list >/dev/null
fi

# ok_if_exists runs a command that fails with exit code 5 when its object
# exists already (a second run of this script).
ok_if_exists() { "$@" || { rc=$?; [ "$rc" -eq 5 ] && echo "  (exists already)"; [ "$rc" -eq 5 ]; }; }

echo "== devices"
ok_if_exists ferry device create alarm-agent >/dev/null
ok_if_exists ferry device create alarm-monitor >/dev/null

echo "== the schema of the parcels' bodies (proto-type=pb_Parcel)"
ferry schema add pb_Parcel --descriptor-set "$here/alarmpb/alarm.pb" --message ferry.examples.alarm.Parcel

echo "== the route: parcels of type pb_AlarmStatus -> the destination's ProcessMessage"
ok_if_exists ferry route add parcels \
  --condition "proto-type = 'pb_Parcel' AND \$body.type = 'pb_AlarmStatus'" \
  --endpoint method:ProcessMessage --target-from property:destination \
  --allow-source alarm-agent --allow-target alarm-monitor
ferry route show parcels

ca=${FERRY_CA:-$FERRY_DATA/pki/ca.pem}
log=$work/events.log
echo "== running alarm-monitor and alarm-agent; events in $log"
"$work/bin/alarm-monitor" --connection-string "$(ferry device connection-string alarm-monitor)" \
  --ca "$ca" --store "$work/alarm-monitor.db" --log "$log" &
pids+=($!)
if [ "${ALARM_AGENT:-go}" = python ]; then
  /usr/bin/python3 "$root/examples/python/alarm_agent.py" \
    --connection-string "$(ferry device connection-string alarm-agent)" --ca "$ca" --log "$log" --to alarm-monitor &
else
  "$work/bin/alarm-agent" --connection-string "$(ferry device connection-string alarm-agent)" \
    --ca "$ca" --store "$work/alarm-agent.db" --log "$log" --to alarm-monitor &
fi
pids+=($!)

touch "$log"
tail -n 0 -f "$log" &
pids+=($!)
if [ "$seconds" -gt 0 ]; then
  sleep "$seconds"
else
  wait "${pids[@]}"
fi
