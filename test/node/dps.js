'use strict';
// Provisions a device through the hub's DPS endpoint with Microsoft's
// azure-iot-provisioning-device + azure-iot-provisioning-device-mqtt,
// unchanged, from a symmetric-key enrollment group (the device key derived
// here as Microsoft's sample computeDerivedSymmetricKey does), with a modelId
// payload; then connects to the assigned hub with azure-iot-device and sends
// one message. Also registers with a tampered key and with a disabled group,
// which must fail. Prints a JSON summary on stdout; exits non-zero on failure.
//
// Environment:
//   FERRY_DPS_HOST        provisioning host with port, e.g. localhost:8883
//   FERRY_ID_SCOPE        the hub's ID scope
//   FERRY_GROUP_KEY       the enrollment group's primary key (base64)
//   FERRY_REGISTRATION_ID the registration id to provision
//   FERRY_MODEL_ID        the modelId sent in the registration payload
//   FERRY_DISABLED_KEY    the primary key of a disabled group (base64)
//   FERRY_CA              path of the hub's ca.pem (NODE_EXTRA_CA_CERTS too)
//   FERRY_RUN             a token that makes this run's message id unique

const crypto = require('crypto');
const fs = require('fs');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: ProvisioningMqtt } = require('azure-iot-provisioning-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const env = process.env;
const run = env.FERRY_RUN || String(Date.now());
const summary = { ok: false, run, registration: null, sent: null, refusals: [], failures: [] };

// As in Microsoft's register_symkeygroup.js sample.
function computeDerivedSymmetricKey(masterKey, regId) {
  return crypto.createHmac('SHA256', Buffer.from(masterKey, 'base64'))
    .update(regId, 'utf8')
    .digest('base64');
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

async function register(regId, key, payload) {
  const security = new SymmetricKeySecurityClient(regId, key);
  const client = ProvisioningDeviceClient.create(env.FERRY_DPS_HOST, env.FERRY_ID_SCOPE, new ProvisioningMqtt(), security);
  if (payload) client.setProvisioningPayload(payload);
  return withTimeout(client.register(), 30000, `register ${regId}`);
}

async function refused(what, regId, key) {
  try {
    const res = await register(regId, key);
    summary.failures.push(`${what}: registered anyway: ${JSON.stringify(res)}`);
  } catch (err) {
    summary.refusals.push({ what, errName: err && err.name, errMessage: err && err.message,
      result: err && err.result });
  }
}

async function main() {
  for (const k of ['FERRY_DPS_HOST', 'FERRY_ID_SCOPE', 'FERRY_GROUP_KEY', 'FERRY_REGISTRATION_ID', 'FERRY_CA']) {
    if (!env[k]) throw new Error(`${k} is not set`);
  }
  const regId = env.FERRY_REGISTRATION_ID;
  const deviceKey = computeDerivedSymmetricKey(env.FERRY_GROUP_KEY, regId);
  const res = await register(regId, deviceKey, { modelId: env.FERRY_MODEL_ID });
  summary.registration = res;
  if (!res.assignedHub || !res.deviceId) throw new Error(`no assignment in ${JSON.stringify(res)}`);

  // Connect where DPS assigned the device, as the samples do.
  const cs = `HostName=${res.assignedHub};DeviceId=${res.deviceId};SharedAccessKey=${deviceKey}`;
  const client = Client.fromConnectionString(cs, Mqtt);
  await client.setOptions({ ca: fs.readFileSync(env.FERRY_CA, 'utf8'), modelId: env.FERRY_MODEL_ID });
  await withTimeout(client.open(), 30000, 'Client.open');
  const msg = new Message(JSON.stringify({ provisionedBy: 'dps', run }));
  msg.messageId = `dps-${run}`;
  msg.contentType = 'application/json';
  msg.contentEncoding = 'utf-8';
  const sent = await withTimeout(client.sendEvent(msg), 30000, 'Client.sendEvent');
  summary.sent = { messageId: msg.messageId, result: sent && sent.constructor && sent.constructor.name };
  await withTimeout(client.close(), 30000, 'Client.close');

  // Refusals: a tampered derived key, and a group that is disabled.
  const tampered = Buffer.from(deviceKey, 'base64');
  tampered[0] ^= 1;
  await refused('tampered key', regId, tampered.toString('base64'));
  if (env.FERRY_DISABLED_KEY) {
    await refused('disabled group', `${regId}-off`, computeDerivedSymmetricKey(env.FERRY_DISABLED_KEY, `${regId}-off`));
  }
}

main()
  .catch((err) => {
    summary.failures.push(`${err && err.name}: ${err && err.message}`);
  })
  .finally(() => {
    summary.ok = summary.failures.length === 0;
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exitCode = summary.ok ? 0 : 1;
    setTimeout(() => process.exit(process.exitCode), 200).unref();
  });
