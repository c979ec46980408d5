'use strict';
// Sends telemetry to a ferry hub two ways and exits non-zero on failure:
//   1. Microsoft's azure-iot-device with the azure-iot-device-mqtt (Mqtt)
//      transport, unchanged, with "HostName=localhost:<tls port>" in the
//      connection string: one message with messageId, correlationId,
//      contentType, contentEncoding and application properties.
//   2. mqtt.js over MQTT 5 with the device's own SAS token: messages whose
//      MQTT 5 user properties must become application properties.
// Prints a JSON summary on stdout (what was sent, for the caller to find in
// the hub's streams).
//
// Environment:
//   FERRY_DEVICE_CS   device connection string, HostName=localhost:<mqtts port>
//   FERRY_CA          path of the hub's ca.pem
//   FERRY_RUN         a token that makes this run's message ids unique

const fs = require('fs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { SharedAccessSignature } = require('azure-iot-common');
const mqtt = require('mqtt');

const deviceCS = process.env.FERRY_DEVICE_CS;
const caFile = process.env.FERRY_CA;
const run = process.env.FERRY_RUN || String(Date.now());

const summary = { ok: false, run, sdk: null, mqtt5: null, failures: [] };

function parseCS(cs) {
  const out = {};
  for (const part of cs.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

// 1. The Azure device SDK.
async function viaSDK(ca) {
  const client = Client.fromConnectionString(deviceCS, Mqtt);
  const errors = [];
  client.on('error', (err) => errors.push(`${err.name}: ${err.message}`));
  // setOptions replaces the whole options object: everything in ONE call.
  await client.setOptions({ ca, keepalive: 60 });
  await withTimeout(client.open(), 30000, 'Client.open');
  const msg = new Message(JSON.stringify({ temperature: 21.5, run }));
  msg.messageId = `sdk-${run}`;
  msg.correlationId = `corr-${run}`;
  msg.contentType = 'application/json';
  msg.contentEncoding = 'utf-8';
  msg.properties.add('app-prop', 'value-1');
  msg.properties.add('a b/c', 'x&y=z');
  const res = await withTimeout(client.sendEvent(msg), 30000, 'Client.sendEvent');
  await withTimeout(client.close(), 30000, 'Client.close');
  if (errors.length) throw new Error(`client errors: ${errors.join('; ')}`);
  return {
    result: res && res.constructor && res.constructor.name,
    messageId: msg.messageId,
    correlationId: msg.correlationId,
    contentType: msg.contentType,
    contentEncoding: msg.contentEncoding,
    properties: { 'app-prop': 'value-1', 'a b/c': 'x&y=z' },
  };
}

// 2. mqtt.js over MQTT 5 as the same device.
async function viaMQTT5(ca) {
  const cs = parseCS(deviceCS);
  const host = cs.HostName;
  const m = /^(.+):(\d+)$/.exec(host);
  if (!m) throw new Error(`HostName ${host} carries no port`);
  const sr = encodeURIComponent(`${host}/devices/${cs.DeviceId}`);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const password = SharedAccessSignature.create(sr, '', cs.SharedAccessKey, se).toString();
  const client = await withTimeout(mqtt.connectAsync(`mqtts://${m[1]}:${m[2]}`, {
    protocolVersion: 5,
    clientId: cs.DeviceId,
    username: `${host}/${cs.DeviceId}/?api-version=2021-04-12`,
    password,
    ca,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 15000,
  }), 30000, 'mqtt.connectAsync');
  const sent = [];
  try {
    // On the bare telemetry topic: every application property comes from
    // MQTT 5 user properties.
    const topic1 = `devices/${cs.DeviceId}/messages/events/`;
    const user1 = { 'mqtt5-user': 'u1', run, 'spaced key': 'a value & more=1' };
    // mqtt.js rejects the promise when the PUBACK carries an error reason
    // code (and resolves with nothing otherwise).
    await withTimeout(client.publishAsync(topic1, JSON.stringify({ via: 'mqtt5', n: 1, run }), {
      qos: 1,
      properties: { userProperties: user1, contentType: 'application/json', correlationData: Buffer.from(`corr5-${run}`) },
    }), 30000, 'publish 1');
    sent.push({ topic: topic1, userProperties: user1 });

    // With a property bag too: bag and user properties are merged.
    const topic2 = `devices/${cs.DeviceId}/messages/events/%24.mid=mqtt5-${run}&bag-prop=b`;
    const user2 = { 'mqtt5-user': 'u2' };
    await withTimeout(client.publishAsync(topic2, JSON.stringify({ via: 'mqtt5', n: 2, run }), {
      qos: 1,
      properties: { userProperties: user2 },
    }), 30000, 'publish 2');
    sent.push({ topic: topic2, userProperties: user2 });
  } finally {
    await withTimeout(client.endAsync(), 10000, 'mqtt end').catch(() => client.end(true));
  }
  return { sent };
}

async function main() {
  if (!deviceCS) throw new Error('FERRY_DEVICE_CS is not set');
  if (!caFile) throw new Error('FERRY_CA is not set');
  const ca = fs.readFileSync(caFile, 'utf8');
  summary.sdk = await viaSDK(ca);
  summary.mqtt5 = await viaMQTT5(ca);
}

main()
  .catch((err) => {
    summary.failures.push(`${err && err.name}: ${err && err.message}`);
  })
  .finally(() => {
    summary.ok = summary.failures.length === 0;
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exitCode = summary.ok ? 0 : 1;
    // The SDK may keep timers alive after close; do not wait for them.
    setTimeout(() => process.exit(process.exitCode), 200).unref();
  });
