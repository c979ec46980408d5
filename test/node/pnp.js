'use strict';
// An IoT Plug and Play device with Microsoft's azure-iot-device (Mqtt),
// unchanged: it announces its model with the modelId option (model-id in
// the MQTT username), acknowledges the writable property
// thermostat1.targetTemperature the way Plug and Play asks (value, ac, av,
// ad inside the component object marked "__t": "c"), reports a component
// property, and sends telemetry from the thermostat1 component ($.sub),
// from the default component, and one message that does not fit the model.
// Prints a JSON summary and exits non-zero on failure.
//
// Environment:
//   FERRY_DEVICE_CS   device connection string, HostName=localhost:<mqtts port>
//   FERRY_CA          path of the hub's ca.pem
//   FERRY_MODEL_ID    the model id to announce
//   FERRY_RUN         a token that makes this run's message ids unique

const fs = require('fs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const run = process.env.FERRY_RUN || String(Date.now());
const summary = { ok: false, run, acked: null, sent: [], failures: [] };

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

function telemetry(body, component, id) {
  const m = new Message(JSON.stringify(body));
  m.messageId = `${id}-${run}`;
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  if (component) m.properties.add('$.sub', component); // PnP component telemetry
  return m;
}

async function main() {
  const client = Client.fromConnectionString(process.env.FERRY_DEVICE_CS, Mqtt);
  client.on('error', (err) => summary.failures.push(`client error ${err.name}: ${err.message}`));
  // setOptions replaces the whole options object: ca and modelId in ONE call.
  await client.setOptions({ ca: fs.readFileSync(process.env.FERRY_CA, 'utf8'), modelId: process.env.FERRY_MODEL_ID });
  await withTimeout(client.open(), 30000, 'Client.open');
  const twin = await withTimeout(client.getTwin(), 15000, 'getTwin');

  // The desired document arrives whole after getTwin; acknowledge the
  // component's writable property with the desired $version.
  const acked = new Promise((resolve, reject) => {
    twin.on('properties.desired', (delta) => {
      const t1 = delta.thermostat1;
      if (!t1 || t1.targetTemperature === undefined) return;
      const ack = { thermostat1: { __t: 'c', targetTemperature: {
        value: t1.targetTemperature, ac: 200, av: delta.$version, ad: 'Successfully updated target temperature' } } };
      twin.properties.reported.update(ack, (err) => {
        if (err) return reject(err);
        summary.acked = { value: t1.targetTemperature, av: delta.$version };
        resolve();
      });
    });
  });
  await withTimeout(acked, 15000, 'acknowledging targetTemperature');
  await new Promise((resolve, reject) => twin.properties.reported.update(
    { serialNumber: `node-${run}`, thermostat1: { __t: 'c', maxTempSinceLastReboot: 24.5 } },
    (err) => (err ? reject(err) : resolve())));

  const msgs = [
    [{ temperature: 22.25 }, 'thermostat1', 't1'],
    [{ workingSet: 4096 }, '', 'ws'],
    [{ temperature: 'hot' }, 'thermostat1', 'bad'],
  ];
  for (const [body, comp, id] of msgs) {
    await withTimeout(client.sendEvent(telemetry(body, comp, id)), 15000, 'sendEvent');
    summary.sent.push(`${id}-${run}`);
  }
  await client.close();
  summary.ok = summary.failures.length === 0;
}

main()
  .catch((err) => summary.failures.push(`${err.name}: ${err.message}`))
  .finally(() => {
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exit(summary.ok ? 0 : 1);
  });
