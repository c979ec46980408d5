'use strict';
// Direct methods through a ferry hub with Microsoft's SDKs on both sides,
// unchanged: azure-iot-device (Mqtt) registers a handler with onDeviceMethod,
// azure-iothub's Client.invokeDeviceMethod calls it over HTTPS. Also calls a
// device that is not connected, which must fail with DeviceNotOnline (404).
// Prints a JSON summary and exits non-zero on any unexpected result.
//
// Environment:
//   NODE_EXTRA_CA_CERTS  the hub's ca.pem
//   FERRY_OWNER_CS       owner connection string, HostName=localhost:<https port>
//   FERRY_DEVICE_CS      device connection string, HostName=localhost:<mqtts port>
//   FERRY_CA             path of the hub's ca.pem (for the device's TLS)

// Split "host:port" for azure-iothub's https.request (PROTOCOL.md §5.3).
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
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { Client: ServiceClient } = require('azure-iothub');

const summary = { ok: false, calls: [], failures: [] };
const fail = (what) => summary.failures.push(what);

async function main() {
  const device = DeviceClient.fromConnectionString(process.env.FERRY_DEVICE_CS, Mqtt);
  await device.setOptions({ ca: fs.readFileSync(process.env.FERRY_CA, 'utf8'), keepalive: 60 });
  await device.open();
  device.onDeviceMethod('reboot', (req, res) => {
    res.send(200, { rebooted: true, echo: req.payload }, (err) => err && fail(`send: ${err.message}`));
  });
  device.onDeviceMethod('refuse', (req, res) => {
    res.send(400, { reason: 'not now' }, (err) => err && fail(`send: ${err.message}`));
  });
  // onDeviceMethod subscribes lazily: give the SUBSCRIBE a moment to land.
  await new Promise((r) => setTimeout(r, 500));

  const service = ServiceClient.fromConnectionString(process.env.FERRY_OWNER_CS);
  const deviceId = /DeviceId=([^;]+)/.exec(process.env.FERRY_DEVICE_CS)[1];
  const ok = await service.invokeDeviceMethod(deviceId, { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 15 });
  summary.calls.push({ method: 'reboot', result: ok.result });
  if (ok.result.status !== 200 || !ok.result.payload.rebooted || ok.result.payload.echo.delay !== 1) fail(`reboot: ${JSON.stringify(ok.result)}`);

  const refused = await service.invokeDeviceMethod(deviceId, { methodName: 'refuse', payload: null, responseTimeoutInSeconds: 15 });
  summary.calls.push({ method: 'refuse', result: refused.result });
  if (refused.result.status !== 400 || refused.result.payload.reason !== 'not now') fail(`refuse: ${JSON.stringify(refused.result)}`);

  try {
    await service.invokeDeviceMethod('nobody-' + deviceId, { methodName: 'reboot', responseTimeoutInSeconds: 5 });
    fail('a call to an offline device succeeded');
  } catch (err) {
    const status = err.response && err.response.statusCode;
    summary.calls.push({ method: 'offline', errName: err.name, status });
    if (status !== 404) fail(`offline device: ${err.name} ${status}`);
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
