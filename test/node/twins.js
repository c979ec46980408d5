'use strict';
// Device twins and queries through a ferry hub with Microsoft's SDKs,
// unchanged: the device (azure-iot-device, Mqtt) gets its twin, reports
// properties and receives a desired change; the service (azure-iothub)
// reads the twin, updates tags and desired properties with the etag, and
// runs a query. Prints a JSON summary and exits non-zero on failure.
//
// Environment: NODE_EXTRA_CA_CERTS, FERRY_OWNER_CS, FERRY_DEVICE_CS, FERRY_CA.

const https = require('https');
const origRequest = https.request;
https.request = function (opts, cb) {
  if (opts && typeof opts === 'object' && typeof opts.host === 'string' && !opts.port) {
    const m = /^(.+):(\d+)$/.exec(opts.host);
    if (m) opts = { ...opts, host: m[1], port: Number(m[2]) };
  }
  return origRequest.call(this, opts, cb);
};

const fs = require('fs');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { Registry } = require('azure-iothub');
const { SharedAccessSignature, ConnectionString } = require('azure-iot-common');

// postC2D queues a cloud-to-device message through Ferry's HTTPS endpoint
// (azure-iothub's Client.send speaks AMQP, which Ferry does not).
function postC2D(ownerCS, deviceId, body, headers) {
  const cs = ConnectionString.parse(ownerCS);
  const [host, port] = cs.HostName.split(':');
  const sas = SharedAccessSignature.create(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey,
    Math.floor(Date.now() / 1000) + 3600).toString();
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: Number(port), method: 'POST',
      path: `/devices/${encodeURIComponent(deviceId)}/messages/deviceBound?api-version=2021-04-12`,
      headers: { Authorization: sas, 'Content-Type': 'text/plain', ...headers } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => (res.statusCode === 202 ? resolve(JSON.parse(data)) : reject(new Error(`${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const summary = { ok: false, steps: [], failures: [] };
const fail = (what) => summary.failures.push(what);
const step = (name, extra) => summary.steps.push({ step: name, ...extra });

function within(p, ms, what) {
  let timer;
  return Promise.race([p.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what} timed out`)), ms); })]);
}

async function main() {
  const deviceId = /DeviceId=([^;]+)/.exec(process.env.FERRY_DEVICE_CS)[1];
  const device = Client.fromConnectionString(process.env.FERRY_DEVICE_CS, Mqtt);
  await device.setOptions({ ca: fs.readFileSync(process.env.FERRY_CA, 'utf8'), keepalive: 60 });
  await device.open();
  const twin = await within(device.getTwin(), 15000, 'getTwin');
  step('device getTwin', { desiredVersion: twin.properties.desired.$version });

  const deltas = [];
  let gotSetpoint;
  const setpoint = new Promise((resolve) => { gotSetpoint = resolve; });
  twin.on('properties.desired', (delta) => {
    deltas.push(delta);
    if (delta.setpoint === 20) gotSetpoint(delta);
  });
  await within(new Promise((resolve, reject) => twin.properties.reported.update({ temp: 21.5, fw: { v: '1.2' } },
    (err) => (err ? reject(err) : resolve()))), 15000, 'reported update');
  step('device reported update');

  const registry = Registry.fromConnectionString(process.env.FERRY_OWNER_CS);
  const { responseBody: st } = await registry.getTwin(deviceId);
  step('service getTwin', { reported: st.properties.reported, etag: st.etag });
  if (st.properties.reported.temp !== 21.5 || st.properties.reported.fw.v !== '1.2') fail(`reported as the service sees it: ${JSON.stringify(st.properties.reported)}`);

  const { responseBody: updated } = await registry.updateTwin(deviceId, { tags: { site: 'node-A' }, properties: { desired: { setpoint: 20 } } }, st.etag);
  step('service updateTwin', { etag: updated.etag, desired: updated.properties.desired });
  if (updated.tags.site !== 'node-A' || updated.properties.desired.setpoint !== 20) fail(`updated twin: ${JSON.stringify(updated)}`);

  const delta = await within(setpoint, 15000, 'desired delta on the device');
  step('device desired delta', { delta });
  if (typeof delta.$version !== 'number') fail(`delta without $version: ${JSON.stringify(delta)}`);

  try {
    await registry.updateTwin(deviceId, { properties: { desired: { setpoint: 1 } } }, '"stale-etag"');
    fail('an update with a stale etag succeeded');
  } catch (err) {
    step('stale etag', { errName: err.name, status: err.response && err.response.statusCode });
    if (!err.response || err.response.statusCode !== 412) fail(`stale etag: ${err.name}`);
  }

  const q = registry.createQuery("SELECT * FROM devices WHERE tags.site = 'node-A'", 10);
  const { result } = await q.nextAsTwin();
  step('query', { count: result.length, ids: result.map((t) => t.deviceId), hasMore: q.hasMoreResults });
  if (result.length !== 1 || result[0].deviceId !== deviceId) fail(`query result: ${JSON.stringify(result)}`);

  // A cloud-to-device message reaches the SDK's 'message' event with its properties.
  const received = new Promise((resolve) => {
    device.on('message', (msg) => {
      device.complete(msg, () => {});
      resolve(msg);
    });
  });
  const accepted = await postC2D(process.env.FERRY_OWNER_CS, deviceId, 'hello device',
    { 'iothub-messageid': 'c2d-node-1', 'iothub-app-kind': 'greeting' });
  const msg = await within(received, 15000, 'cloud-to-device message');
  const props = {};
  msg.properties.propertyList.forEach((p) => { props[p.key] = p.value; });
  step('c2d', { accepted: accepted.messageId, messageId: msg.messageId, data: msg.data.toString(), props });
  if (msg.data.toString() !== 'hello device' || msg.messageId !== 'c2d-node-1' || props.kind !== 'greeting') {
    fail(`c2d message: ${JSON.stringify({ messageId: msg.messageId, data: msg.data.toString(), props })}`);
  }

  await device.close();
  summary.ok = summary.failures.length === 0;
}

main()
  .catch((err) => fail(`${err.name}: ${err.message}`))
  .finally(() => {
    console.log(JSON.stringify(summary));
    process.exit(summary.ok ? 0 : 1);
  });
