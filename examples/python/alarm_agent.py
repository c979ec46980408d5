#!/usr/bin/python3
"""Seed 000's alarm agent as a plain MQTT device: Paho and protobuf, no Azure SDK.

It does what examples/alarm/alarm-agent does with the Go SDK: simulate a door
alarm and, whenever it changes, send a protobuf Parcel holding an AlarmStatus to
the hub, which routes it to alarm-monitor's ProcessMessage method (set the hub
up with examples/alarm/setup.sh, or the commands in README.md).

What a device needs to talk to Ferry (or Azure IoT Hub) over MQTT, all here:
  - TLS, trusting the hub's CA (ferry-data/pki/ca.pem),
  - client id = the device id, username = "{host}/{device}/?api-version=2021-04-12",
  - password = a SAS token signed with the device key from the connection string,
  - telemetry published at QoS 1 to devices/{device}/messages/events/{properties},
    with $.ct (content type), $.mid (message id) and application properties
    url-encoded in the topic.

Needs Debian's python3-paho-mqtt and python3-protobuf (run with /usr/bin/python3
when another python3 comes first on PATH). alarm_pb2.py is generated from
examples/alarm/alarmpb/alarm.proto (examples/alarm/generate.sh).

  /usr/bin/python3 alarm_agent.py \\
      --connection-string "$(ferry device connection-string alarm-agent)" \\
      --ca ferry-data/pki/ca.pem
"""

import argparse
import base64
import enum
import hashlib
import hmac
import logging
import os
import random
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alarm_pb2 import AlarmStatus, Parcel  # noqa: E402

API_VERSION = "2021-04-12"
TOKEN_TTL = 3600  # seconds; the agent reconnects with a new token before it expires


def parse_connection_string(cs):
    """HostName=...;DeviceId=...;SharedAccessKey=... as a dict."""
    parts = dict(p.split("=", 1) for p in cs.split(";") if "=" in p)
    for k in ("HostName", "DeviceId", "SharedAccessKey"):
        if k not in parts:
            raise ValueError("connection string lacks " + k)
    return parts


def sas_token(host, device_id, key_b64, ttl=TOKEN_TTL):
    """A device SAS token, as Azure's SDKs sign it: HMAC-SHA256 with the
    decoded key over the url-encoded resource, a newline and the expiry."""
    sr = urllib.parse.quote(host + "/devices/" + device_id, safe="")
    se = int(time.time()) + ttl
    mac = hmac.new(base64.b64decode(key_b64), ("%s\n%d" % (sr, se)).encode(), hashlib.sha256)
    sig = urllib.parse.quote(base64.b64encode(mac.digest()).decode(), safe="")
    return "SharedAccessSignature sr=%s&sig=%s&se=%d" % (sr, sig, se)


class State(enum.Enum):
    IDLE = 1
    NEW_EVENT_TO_PROCESS = 2
    PROCESSING_DEVICE_TO_CLOUD_STARTED = 3
    PROCESSING_DEVICE_TO_CLOUD_COMPLETED = 4


class AlarmAgent:
    def __init__(self, cs, ca, destination, log):
        self.host = cs["HostName"]
        self.device_id = cs["DeviceId"]
        self.key = cs["SharedAccessKey"]
        self.destination = destination
        self.log = log
        self.state = State.IDLE
        self.current_alarm_status = False
        self.parcel_to_send = None
        self.sent = 0
        self.connected = threading.Event()
        self.client = mqtt.Client(client_id=self.device_id, protocol=mqtt.MQTTv311, clean_session=True)
        self.client.tls_set(ca_certs=ca)
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect

    def on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            self.log.info("Connected to %s as %s", self.host, self.device_id)
            self.connected.set()
        else:
            self.log.error("Connection refused: %s", mqtt.connack_string(rc))

    def on_disconnect(self, client, userdata, rc):
        self.connected.clear()
        if rc != 0:
            self.log.info("Disconnected (%s); Paho reconnects", mqtt.error_string(rc))

    def connect(self):
        host, _, port = self.host.partition(":")
        # Paho reconnects with the same credentials: sign a token that outlives the run
        # for this example; a long-running device signs a new one and reconnects.
        self.client.username_pw_set("%s/%s/?api-version=%s" % (self.host, self.device_id, API_VERSION),
                                    sas_token(self.host, self.device_id, self.key))
        self.client.connect(host, int(port or 8883), keepalive=60)
        self.client.loop_start()
        if not self.connected.wait(15):
            raise RuntimeError("could not connect to " + self.host)

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()

    def simulate_event(self):
        return bool(random.getrandbits(1))

    def pack_alarm_event(self):
        self.log.info("Packing event: %r", self.current_alarm_status)
        now = datetime.now(timezone.utc)
        status = AlarmStatus(alarm_active=self.current_alarm_status,
                             time_utc=now.strftime("%H:%M:%S.%f"), date_utc=now.strftime("%Y-%m-%d"))
        self.log.info("*" * 73)
        self.log.info("Packing event: Active: %r, time: %r, date: %r",
                      status.alarm_active, status.time_utc, status.date_utc)
        self.log.info("*" * 73)
        parcel = Parcel()
        parcel.source.name = "Door Alarm"
        parcel.source.local_id = "1"
        parcel.source.domain_agent = self.device_id
        parcel.source.domain = "Device Domain"
        parcel.destination.name = self.destination
        parcel.type = "pb_AlarmStatus"
        parcel.content = status.SerializeToString()  # bytes: no JSON or UTF-8 detour
        self.parcel_to_send = parcel.SerializeToString()

    def send_parcel(self, body):
        props = urllib.parse.urlencode({
            "$.ct": "application/x-protobuf",
            "$.mid": str(uuid.uuid4()),  # the hub drops a resend with the same id
            "proto-type": "pb_Parcel",   # the schema the hub decodes the body with
            "destination": self.destination,  # the device the route delivers to
        }, quote_via=urllib.parse.quote)
        topic = "devices/%s/messages/events/%s" % (self.device_id, props)
        while True:
            info = self.client.publish(topic, body, qos=1)
            try:
                info.wait_for_publish(timeout=10)
            except RuntimeError:  # not connected
                pass
            if info.is_published():  # the hub's PUBACK: stored, will be routed
                return
            # Sent again with the same $.mid: the hub stores it once.
            self.log.info("No PUBACK yet; sending the parcel again")
            self.connected.wait(30)

    def do_work(self):
        if self.state in (State.IDLE, State.PROCESSING_DEVICE_TO_CLOUD_COMPLETED):
            new = self.simulate_event()
            if new == self.current_alarm_status:
                self.state = State.IDLE
            else:
                self.current_alarm_status = new
                self.state = State.NEW_EVENT_TO_PROCESS
        elif self.state is State.NEW_EVENT_TO_PROCESS:
            self.pack_alarm_event()
            self.state = State.PROCESSING_DEVICE_TO_CLOUD_STARTED
        elif self.state is State.PROCESSING_DEVICE_TO_CLOUD_STARTED:
            self.send_parcel(self.parcel_to_send)
            self.sent += 1
            self.log.info("Parcel sent to %s (%d bytes, application/x-protobuf)",
                          self.destination, len(self.parcel_to_send))
            self.parcel_to_send = None
            self.state = State.PROCESSING_DEVICE_TO_CLOUD_COMPLETED


def main():
    p = argparse.ArgumentParser(description="Seed 000's alarm agent over plain MQTT (Paho) and protobuf.",
                                epilog="Set the hub up with examples/alarm/setup.sh; see README.md.")
    p.add_argument("--connection-string", default=os.getenv("FERRY_DEVICE_CONNECTION_STRING"),
                   help="the agent's connection string: ferry device connection-string alarm-agent "
                        "(default $FERRY_DEVICE_CONNECTION_STRING)")
    p.add_argument("--ca", default=os.getenv("FERRY_CA_FILE"),
                   help="PEM file of the hub's CA, e.g. ferry-data/pki/ca.pem (default $FERRY_CA_FILE)")
    p.add_argument("--to", default="alarm-monitor", help="the device the parcels are for (default alarm-monitor)")
    p.add_argument("--log", default="events.log", help="events log file, appended (default events.log)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds each state-machine step takes (default 0.5)")
    p.add_argument("--changes", type=int, default=0, help="stop after sending N parcels (default: run until Ctrl-C)")
    a = p.parse_args()
    if not a.connection_string or not a.ca:
        p.error("give --connection-string and --ca (or set FERRY_DEVICE_CONNECTION_STRING and FERRY_CA_FILE)")

    logging.basicConfig(filename=a.log, format="%(asctime)s %(message)s", level=logging.INFO)
    logging.Formatter.converter = time.gmtime  # UTC timestamps, as in the seed
    log = logging.getLogger("alarm-agent")

    agent = AlarmAgent(parse_connection_string(a.connection_string), a.ca, a.to, log)
    log.info("App Started... agent %s, parcels for %s", agent.device_id, a.to)
    agent.connect()
    try:
        while a.changes == 0 or agent.sent < a.changes:
            agent.do_work()
            time.sleep(a.interval)
    except KeyboardInterrupt:
        pass
    finally:
        agent.disconnect()
        log.info("App Stopped! %d parcels sent", agent.sent)


if __name__ == "__main__":
    main()
