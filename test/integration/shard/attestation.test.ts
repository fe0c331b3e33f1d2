/**
 * Device attestation against a real shard: real nats-server, shard in-process (crypto pool on
 * compiled workers: run `npx tsc -p tsconfig.json` first), devices built from manufactured
 * identities with measured boot and real P-256 signatures, raw protobuf over NATS.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawPublicKeyOf } from '../../../actors/crypto/index.js';
import { signP1363 } from '../../../actors/crypto/index.js';
import { tamperedKernelDigest } from '../../../actors/security-core/index.js';
import {
  decodeAttestReply,
  decodeChallengeReply,
  deviceSubject,
  encodeAttestRequest,
  encodeChallengeRequest,
  encodeEvidence,
  encodeHeartbeat,
} from '../../../proto/codec/index.js';
import type { CertificatesMsg, DeviceId, Reply } from '../../../proto/codec/index.js';
import { ALERT_SEVERITY } from '../../../services/registry/index.js';
import type { RejectCode } from '../../../proto/codec/index.js';
import {
  PARTITIONS,
  REQUEST_TIMEOUT_MS,
  attestOk,
  attestOnce,
  attestRequestBytes,
  attestSession,
  bootState,
  bootedDevice,
  createTestTenant,
  defaultImages,
  endorse,
  endorseAndClaim,
  freshNonce,
  partitionOfDevice,
  publishHeartbeat,
  requestChallenge,
  sampleValue,
  sendAttest,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { ShardEnv, TestDevice, TestTenant } from '../../fixtures/shard.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => Uint8Array.from([...a, ...b]);
/** Field 127, varint 1: a field no device message defines. */
const UNKNOWN_FIELD = bytes(0xf8, 0x07, 0x01);
/** Invalid wire type 7 / overlong varint: not protobuf at all. */
const GARBAGE = bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const OVERSIZED = new Uint8Array(100 * 1024).fill(0x41);

const flipByte = (i: number) => (sig: Uint8Array) => {
  sig[i] = (sig[i] ?? 0) ^ 0x01;
  return sig;
};

function rejectionOf<T>(r: Reply<T>): { code: string; message: string; serviceTimeMs?: number } {
  if (r.ok) throw new Error('expected a rejection, got success');
  return r.error;
}

/** Scrapes the shard's meter before and after `act`, returning both texts. */
async function measured<T>(
  env: ShardEnv,
  act: () => Promise<T>,
): Promise<{ result: T; before: string; after: string }> {
  const before = await env.shard.meter.metricsText();
  const result = await act();
  const after = await env.shard.meter.metricsText();
  return { result, before, after };
}

const attestCounter = (text: string, code: string): number =>
  sampleValue(text, 'sphere_attestations_total', { result: 'rejected', reason: code });
const alertCounter = (text: string, code: RejectCode): number =>
  sampleValue(text, 'sphere_alerts_total', { type: code, severity: ALERT_SEVERITY[code] });

/** A rejection that should have raised an alert in the device's tenant's log. */
interface RaisedAlert {
  readonly tenant: TestTenant;
  readonly deviceId: DeviceId;
  readonly code: RejectCode;
}
const tenantAlerts: RaisedAlert[] = [];

/**
 * Runs one attestation that must be rejected with `code`, and checks it was counted once in
 * sphere_attestations_total and once in sphere_alerts_total. When the device has no tenant
 * (`tenantSeesAlert` false) the tenant must not see it; otherwise the expected tenant alert is
 * recorded and checked by the alert-visibility test (see the source bug noted there).
 */
async function expectRejected(
  env: ShardEnv,
  tenant: TestTenant,
  deviceId: DeviceId,
  code: RejectCode,
  tenantSeesAlert: boolean,
  act: () => Promise<Reply<CertificatesMsg>>,
): Promise<{ code: string; message: string; serviceTimeMs?: number }> {
  const { result, before, after } = await measured(env, act);
  const error = rejectionOf(result);
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(0);
  expect(attestCounter(after, code)).toBe(attestCounter(before, code) + 1);
  expect(alertCounter(after, code)).toBe(alertCounter(before, code) + 1);
  if (tenantSeesAlert) {
    tenantAlerts.push({ tenant, deviceId, code });
  } else {
    expect((await tenant.client.listAlerts({ type: code, deviceId, limit: 1000 })).alerts).toEqual([]);
    expect((await tenant.client.listAlerts({ deviceId, limit: 1000 })).alerts).toEqual([]);
  }
  return error;
}

/** The tenant's alerts of `code` about `deviceId` (must be at least one, all well-formed). */
async function expectTenantSeesAlert(a: RaisedAlert): Promise<void> {
  const seen = await a.tenant.client.listAlerts({ type: a.code, deviceId: a.deviceId, limit: 1000 });
  expect(seen.alerts.length, `${a.code} alert for ${a.deviceId.slice(0, 12)}`).toBeGreaterThan(0);
  for (const alert of seen.alerts) {
    expect(alert.type).toBe(a.code);
    expect(alert.deviceId).toBe(a.deviceId);
    expect(alert.severity).toBe(ALERT_SEVERITY[a.code]);
    expect(Number.isInteger(alert.atMs)).toBe(true);
  }
}

describe('shard attestation', () => {
  const env = useShard({ shardId: 'shard-attest' });
  let tenant: TestTenant;
  let other: TestTenant;
  const dir = mkdtempSync(join(tmpdir(), 'sphere-attest-'));

  beforeAll(async () => {
    tenant = await createTestTenant(env().admin, 'Contoso Attest');
    other = await createTestTenant(env().admin, 'Fabrikam Attest');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Fresh enrolled (endorsed + claimed by `tenant`) devices. */
  async function enrolled(
    label: string,
    n = 1,
    o: Parameters<typeof bootedDevice>[1] = {},
  ): Promise<TestDevice[]> {
    const devs = Array.from({ length: n }, () => bootedDevice(uniqueSeed(label), o));
    await endorseAndClaim(env().admin, tenant.client, devs);
    return devs;
  }

  it('attestation - happy path issues update and client certificates that chain to the root via the tenant CA', async () => {
    const [dev] = await enrolled('happy');
    if (dev === undefined) throw new Error('no device');
    const before = await env().shard.meter.metricsText();
    const certs = await attestOk(env().devices, dev);
    const after = await env().shard.meter.metricsText();

    const update = new X509Certificate(certs.updateCertificate);
    const client = new X509Certificate(certs.clientCertificate);
    const tenantCa = new X509Certificate(tenant.tenantCaPem);
    expect(Buffer.from(certs.tenantCa).equals(tenantCa.raw)).toBe(true);
    expect(tenant.rootCaPem).toBe(env().shard.rootCaPem);

    const files = {
      root: join(dir, 'root.pem'),
      tenant: join(dir, 'tenant.pem'),
      otherTenant: join(dir, 'other-tenant.pem'),
      update: join(dir, 'update.pem'),
      client: join(dir, 'client.pem'),
    };
    writeFileSync(files.root, tenant.rootCaPem);
    writeFileSync(files.tenant, tenant.tenantCaPem);
    writeFileSync(files.otherTenant, other.tenantCaPem);
    writeFileSync(files.update, update.toString());
    writeFileSync(files.client, client.toString());
    const now = String(Math.floor(Date.now() / 1000));
    for (const leaf of [files.update, files.client]) {
      const out = execFileSync(
        'openssl',
        ['verify', '-attime', now, '-CAfile', files.root, '-untrusted', files.tenant, leaf],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      expect(out.trim()).toBe(`${leaf}: OK`);
      // Negative control: the same leaf does not verify through another tenant's CA.
      expect(() =>
        execFileSync(
          'openssl',
          ['verify', '-attime', now, '-CAfile', files.root, '-untrusted', files.otherTenant, leaf],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        ),
      ).toThrow();
    }

    for (const cert of [update, client]) {
      expect(cert.subject).toContain(dev.deviceId);
      expect(cert.checkIssued(tenantCa)).toBe(true);
      expect(cert.verify(tenantCa.publicKey)).toBe(true);
      expect(Date.parse(cert.validTo)).toBe(Math.floor(certs.notAfterMs / 1000) * 1000);
    }
    expect(Buffer.from(rawPublicKeyOf(update.publicKey)).equals(dev.identity.attestationPublicKey)).toBe(
      true,
    );
    expect(Buffer.from(rawPublicKeyOf(client.publicKey)).equals(dev.identity.clientPublicKey)).toBe(true);
    expect(update.serialNumber).not.toBe(client.serialNumber);

    const ok = (t: string) => sampleValue(t, 'sphere_attestations_total', { result: 'ok', reason: 'OK' });
    expect(ok(after)).toBe(ok(before) + 1);
    for (const kind of ['update', 'client']) {
      expect(sampleValue(after, 'sphere_certificates_issued_total', { kind })).toBe(
        sampleValue(before, 'sphere_certificates_issued_total', { kind }) + 1,
      );
    }
  });

  it('attestation - BAD_SIGNATURE when one signature byte is flipped', async () => {
    const [dev] = await enrolled('bad-sig');
    if (dev === undefined) throw new Error('no device');
    await expectRejected(env(), tenant, dev.deviceId, 'BAD_SIGNATURE', true, async () => {
      const nonce = await freshNonce(env().devices, dev.deviceId);
      return sendAttest(
        env().devices,
        dev.deviceId,
        attestRequestBytes(dev, nonce, { mutateSignature: flipByte(17) }).bytes,
      );
    });
    // The nonce was not burnt by the forgery: the genuine device still attests.
    await attestOk(env().devices, dev);
  });

  it('attestation - BAD_SIGNATURE when the evidence is signed by a different key', async () => {
    const [dev] = await enrolled('wrong-key');
    if (dev === undefined) throw new Error('no device');
    const impostor = bootedDevice(uniqueSeed('impostor'));
    await expectRejected(env(), tenant, dev.deviceId, 'BAD_SIGNATURE', true, async () => {
      const nonce = await freshNonce(env().devices, dev.deviceId);
      const evidence = encodeEvidence(attestRequestBytes(dev, nonce).evidence);
      const signature = signP1363(impostor.identity.attestationKey, evidence);
      return sendAttest(env().devices, dev.deviceId, encodeAttestRequest({ evidence, signature }));
    });
  });

  it('attestation - UNKNOWN_DEVICE for an unendorsed identity, alerted to no tenant', async () => {
    const dev = bootedDevice(uniqueSeed('unendorsed'));
    const ch = await requestChallenge(env().devices, dev.deviceId);
    expect(rejectionOf(ch).code).toBe('UNKNOWN_DEVICE');
    await expectRejected(env(), tenant, dev.deviceId, 'UNKNOWN_DEVICE', false, () =>
      sendAttest(
        env().devices,
        dev.deviceId,
        attestRequestBytes(dev, Uint8Array.from(randomBytes(32))).bytes,
      ),
    );
    const other_ = await other.client.listAlerts({ deviceId: dev.deviceId });
    expect(other_.alerts).toEqual([]);
  });

  it('attestation - DEVICE_NOT_CLAIMED for an endorsed but unclaimed device', async () => {
    const dev = bootedDevice(uniqueSeed('unclaimed'));
    await endorse(env().admin, [dev]);
    await expectRejected(env(), tenant, dev.deviceId, 'DEVICE_NOT_CLAIMED', false, () =>
      attestOnce(env().devices, dev),
    );
  });

  it('attestation - NONCE_REUSED when the same successful request is submitted twice', async () => {
    const [dev] = await enrolled('reuse');
    if (dev === undefined) throw new Error('no device');
    const nonce = await freshNonce(env().devices, dev.deviceId);
    const { bytes: req } = attestRequestBytes(dev, nonce);
    const first = await sendAttest(env().devices, dev.deviceId, req);
    expect(first.ok).toBe(true);
    await expectRejected(env(), tenant, dev.deviceId, 'NONCE_REUSED', true, () =>
      sendAttest(env().devices, dev.deviceId, req),
    );
  });

  it('attestation - NONCE_UNKNOWN for a random nonce the service never issued', async () => {
    const [dev] = await enrolled('random-nonce');
    if (dev === undefined) throw new Error('no device');
    await expectRejected(env(), tenant, dev.deviceId, 'NONCE_UNKNOWN', true, () =>
      sendAttest(
        env().devices,
        dev.deviceId,
        attestRequestBytes(dev, Uint8Array.from(randomBytes(32))).bytes,
      ),
    );
  });

  it('attestation - NONCE_UNKNOWN when device B replays a nonce issued to device A', async () => {
    const [a, b] = await enrolled('replay', 2);
    if (a === undefined || b === undefined) throw new Error('no device');
    const nonceOfA = await freshNonce(env().devices, a.deviceId);
    await expectRejected(env(), tenant, b.deviceId, 'NONCE_UNKNOWN', true, () =>
      sendAttest(env().devices, b.deviceId, attestRequestBytes(b, nonceOfA).bytes),
    );
    // A's nonce stays usable by A.
    const r = await sendAttest(env().devices, a.deviceId, attestRequestBytes(a, nonceOfA).bytes);
    expect(r.ok).toBe(true);
  });

  it('attestation - MEASUREMENT_MISMATCH for a tampered kernel', async () => {
    const images = defaultImages('25.10').map((m) =>
      m.stage === 'kernel' ? { stage: 'kernel', digest: tamperedKernelDigest('25.10') } : m,
    );
    const [dev] = await enrolled('tampered', 1, { images });
    if (dev === undefined) throw new Error('no device');
    const e = await expectRejected(env(), tenant, dev.deviceId, 'MEASUREMENT_MISMATCH', true, () =>
      attestOnce(env().devices, dev),
    );
    expect(e.message).toContain('kernel');
  });

  it('attestation - BELOW_MIN_VERSION for OS 23.05 (security version 1)', async () => {
    const [dev] = await enrolled('old-os', 1, { osVersion: '23.05', securityVersion: 1 });
    if (dev === undefined) throw new Error('no device');
    await expectRejected(env(), tenant, dev.deviceId, 'BELOW_MIN_VERSION', true, () =>
      attestOnce(env().devices, dev),
    );
  });

  it('attestation - CLOCK_SKEW carries serviceTimeMs, and a device resynchronised to it attests', async () => {
    const [dev] = await enrolled('skew');
    if (dev === undefined) throw new Error('no device');
    const e = await expectRejected(env(), tenant, dev.deviceId, 'CLOCK_SKEW', true, () =>
      attestOnce(env().devices, dev, { deviceTimeMs: Date.now() + 7 * 86_400_000 }),
    );
    expect(e.serviceTimeMs).toBeTypeOf('number');
    const r = await attestOnce(env().devices, dev, { deviceTimeMs: e.serviceTimeMs ?? 0 });
    expect(r.ok).toBe(true);
  });

  it('attestation - DUPLICATE_IDENTITY for a clone (same boot count, other boot ID) and the identity stays quarantined', async () => {
    const seed = uniqueSeed('cloned');
    const original = bootedDevice(seed);
    const clone = bootedDevice(seed);
    expect(clone.deviceId).toBe(original.deviceId);
    expect(clone.state.bootCount).toBe(original.state.bootCount);
    await endorseAndClaim(env().admin, tenant.client, [original]);
    await attestOk(env().devices, original);

    await expectRejected(env(), tenant, clone.deviceId, 'DUPLICATE_IDENTITY', true, () =>
      attestOnce(env().devices, clone),
    );
    // Quarantined: the first device, with its genuine accepted boot, is refused too...
    await expectRejected(env(), tenant, original.deviceId, 'DUPLICATE_IDENTITY', true, () =>
      attestOnce(env().devices, original),
    );
    // ...and so is a later, otherwise legitimate boot.
    const rebooted: TestDevice = { ...original, state: bootState(original.state) };
    await expectRejected(env(), tenant, original.deviceId, 'DUPLICATE_IDENTITY', true, () =>
      attestOnce(env().devices, rebooted),
    );
  });

  it('attestation - the same request submitted twice concurrently is accepted once (NONCE_REUSED for the other)', async () => {
    const [dev] = await enrolled('race-reuse');
    if (dev === undefined) throw new Error('no device');
    const nonce = await freshNonce(env().devices, dev.deviceId);
    const { bytes: req } = attestRequestBytes(dev, nonce);
    const replies = await Promise.all([0, 1, 2].map(() => sendAttest(env().devices, dev.deviceId, req)));
    expect(replies.map((r) => (r.ok ? 'OK' : r.error.code)).sort()).toEqual([
      'NONCE_REUSED',
      'NONCE_REUSED',
      'OK',
    ]);
  });

  it('attestation - two clones attesting their first boot concurrently: one is accepted, the other is DUPLICATE_IDENTITY', async () => {
    const seed = uniqueSeed('race-clone');
    const a = bootedDevice(seed);
    const b = bootedDevice(seed);
    await endorseAndClaim(env().admin, tenant.client, [a]);
    const replies = await Promise.all([attestOnce(env().devices, a), attestOnce(env().devices, b)]);
    expect(replies.map((r) => (r.ok ? 'OK' : r.error.code)).sort()).toEqual(['DUPLICATE_IDENTITY', 'OK']);
  });

  // Regression, fixed (services/shard/partition-actor.ts, handleAttest -> precheck -> duplicate): precheck() runs BEFORE the
  // signature is verified and calls duplicate(), which sets `record.compromised = true` as a side
  // effect. Everything in forged evidence is public (device ID, public keys, reference
  // measurements) and a valid nonce is one unauthenticated challenge away, so anyone can
  // quarantine any attested device: the forgery is answered BAD_SIGNATURE (and the quarantine is
  // never alerted), but the genuine device is refused DUPLICATE_IDENTITY from then on.
  // The quarantine now happens only after the signature verified (handleVerified).
  it('attestation - a forged (badly signed) clone evidence does not quarantine the genuine device', async () => {
    const [dev] = await enrolled('forged-clone');
    if (dev === undefined) throw new Error('no device');
    await attestOk(env().devices, dev);
    const attacker = bootedDevice(uniqueSeed('attacker'));
    // Public data only: the victim's identity with a fresh boot ID at the same boot count.
    const forged: TestDevice = {
      ...dev,
      identity: { ...dev.identity, attestationKey: attacker.identity.attestationKey },
      state: {
        ...dev.state,
        boot: { ...(dev.state.boot ?? attacker.state.boot!), bootId: Uint8Array.from(randomBytes(16)) },
      },
    };
    const nonce = await freshNonce(env().devices, dev.deviceId);
    const r = await sendAttest(env().devices, dev.deviceId, attestRequestBytes(forged, nonce).bytes);
    expect(rejectionOf(r).code).toBe('BAD_SIGNATURE');
    const genuine = await attestOnce(env().devices, dev);
    expect(genuine.ok ? 'OK' : genuine.error.code).toBe('OK');
  });

  it('attestation - a later boot of a genuine device is not a duplicate identity', async () => {
    const [dev] = await enrolled('reboot');
    if (dev === undefined) throw new Error('no device');
    await attestOk(env().devices, dev);
    await attestOk(env().devices, dev); // re-attestation of the same boot
    await attestOk(env().devices, { ...dev, state: bootState(dev.state) });
  });

  it('attestation - malformed input on every device subject gets typed rejections and the service keeps serving', async () => {
    const [dev] = await enrolled('malformed-target');
    if (dev === undefined) throw new Error('no device');
    const t = env().devices;
    const p = partitionOfDevice(dev.deviceId);
    const wrongP = (p + 1) % PARTITIONS;
    const before = await env().shard.meter.metricsText();

    // challenge
    const challenge = async (data: Uint8Array, partition = p) => {
      const d = decodeChallengeReply(
        await t.request(deviceSubject('challenge', partition), data, { timeoutMs: REQUEST_TIMEOUT_MS }),
      );
      if (!d.ok) throw new Error(d.error.message);
      return rejectionOf(d.value);
    };
    const validChallenge = encodeChallengeRequest({ deviceId: dev.deviceId });
    expect((await challenge(GARBAGE)).code).toBe('MALFORMED_INPUT');
    expect((await challenge(validChallenge.subarray(0, validChallenge.length - 7))).code).toBe(
      'MALFORMED_INPUT',
    );
    expect((await challenge(concat(validChallenge, UNKNOWN_FIELD))).code).toBe('MALFORMED_INPUT');
    expect((await challenge(OVERSIZED)).code).toBe('PAYLOAD_TOO_LARGE');
    const misrouted = await challenge(validChallenge, wrongP);
    expect(misrouted.code).toBe('MALFORMED_INPUT');
    expect(misrouted.message).toContain(String(p));

    // attest
    const attest = async (data: Uint8Array, partition = p) =>
      rejectionOf(await sendAttest(t, dev.deviceId, data, partition));
    const nonce = await freshNonce(t, dev.deviceId);
    const { bytes: validAttest, evidence } = attestRequestBytes(dev, nonce);
    const evidenceWithUnknown = concat(encodeEvidence(evidence), UNKNOWN_FIELD);
    const innerUnknown = encodeAttestRequest({
      evidence: evidenceWithUnknown,
      signature: signP1363(dev.identity.attestationKey, evidenceWithUnknown),
    });
    expect((await attest(GARBAGE)).code).toBe('MALFORMED_INPUT');
    expect((await attest(validAttest.subarray(0, validAttest.length - 10))).code).toBe('MALFORMED_INPUT');
    expect((await attest(concat(validAttest, UNKNOWN_FIELD))).code).toBe('MALFORMED_INPUT');
    expect((await attest(innerUnknown)).code).toBe('MALFORMED_INPUT');
    expect((await attest(OVERSIZED)).code).toBe('PAYLOAD_TOO_LARGE');
    expect((await attest(validAttest, wrongP)).code).toBe('MALFORMED_INPUT');

    // heartbeat (no reply: counted). Heartbeats travel sealed with the session of the device's
    // attestation; the framing and the body inside it are each decoded strictly, and a bare
    // (unsealed) heartbeat, which was valid before sessions, is now malformed framing.
    const { session } = await attestSession(t, dev);
    const hb = encodeHeartbeat({
      deviceId: dev.deviceId,
      bootId: dev.state.boot?.bootId ?? new Uint8Array(16),
      deviceTimeMs: Date.now(),
    });
    for (const data of [
      GARBAGE,
      session.seal('heartbeat', hb.subarray(0, hb.length - 5)),
      session.seal('heartbeat', concat(hb, UNKNOWN_FIELD)),
      hb,
      OVERSIZED,
    ]) {
      t.publish(deviceSubject('heartbeat', p), data);
    }
    t.publish(deviceSubject('heartbeat', wrongP), session.seal('heartbeat', hb));
    await t.flush();

    const hbCount = (text: string, result: string, reason: string) =>
      sampleValue(text, 'sphere_heartbeats_total', { result, reason });
    const hbRejected = (text: string, reason: string) => hbCount(text, 'rejected', reason);
    await expect
      .poll(
        async () => {
          const now = await env().shard.meter.metricsText();
          return [
            hbRejected(now, 'MALFORMED_INPUT') - hbRejected(before, 'MALFORMED_INPUT'),
            hbRejected(now, 'PAYLOAD_TOO_LARGE') - hbRejected(before, 'PAYLOAD_TOO_LARGE'),
          ];
        },
        { timeout: 10_000, interval: 50 },
      )
      .toEqual([5, 1]);

    const after = await env().shard.meter.metricsText();
    const delta = (name: string, labels: Record<string, string>) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(delta('sphere_challenges_total', { result: 'rejected', reason: 'MALFORMED_INPUT' })).toBe(4);
    expect(delta('sphere_challenges_total', { result: 'rejected', reason: 'PAYLOAD_TOO_LARGE' })).toBe(1);
    expect(delta('sphere_attestations_total', { result: 'rejected', reason: 'MALFORMED_INPUT' })).toBe(5);
    expect(delta('sphere_attestations_total', { result: 'rejected', reason: 'PAYLOAD_TOO_LARGE' })).toBe(1);
    expect(
      delta('sphere_alerts_total', { type: 'MALFORMED_INPUT', severity: ALERT_SEVERITY.MALFORMED_INPUT }),
    ).toBe(14);
    expect(
      delta('sphere_alerts_total', { type: 'PAYLOAD_TOO_LARGE', severity: ALERT_SEVERITY.PAYLOAD_TOO_LARGE }),
    ).toBe(3);
    // Unauthenticated garbage is not pinned on the tenant whose device ID it names.
    expect((await tenant.client.listAlerts({ deviceId: dev.deviceId })).alerts).toEqual([]);

    // Still serving: the misrouted attempt did not burn the nonce, and a full exchange works...
    expect((await sendAttest(t, dev.deviceId, validAttest)).ok).toBe(true);
    const again = await attestSession(t, dev);
    // ...and a well-formed heartbeat sealed with the newest session is counted ok.
    const okBefore = hbCount(await env().shard.meter.metricsText(), 'ok', 'OK');
    publishHeartbeat(t, dev, again.session);
    await t.flush();
    await expect
      .poll(async () => hbCount(await env().shard.meter.metricsText(), 'ok', 'OK') - okBefore, {
        timeout: 10_000,
        interval: 50,
      })
      .toBe(1);
  });

  it('attestation - 20 healthy devices all succeed while hostile requests are interleaved', async () => {
    const healthy = await enrolled('healthy', 20);
    const [victim] = await enrolled('victim');
    if (victim === undefined) throw new Error('no device');
    const t = env().devices;
    const stranger = bootedDevice(uniqueSeed('stranger'));
    const hostile: Promise<string>[] = [];
    for (let i = 0; i < 20; i++) {
      const p = i % PARTITIONS;
      hostile.push(
        t.request(deviceSubject('attest', p), GARBAGE, { timeoutMs: REQUEST_TIMEOUT_MS }).then((raw) => {
          const d = decodeAttestReply(raw);
          return d.ok ? rejectionOf(d.value).code : 'UNDECODABLE';
        }),
        t.request(deviceSubject('challenge', p), OVERSIZED, { timeoutMs: REQUEST_TIMEOUT_MS }).then((raw) => {
          const d = decodeChallengeReply(raw);
          return d.ok ? rejectionOf(d.value).code : 'UNDECODABLE';
        }),
        sendAttest(
          t,
          victim.deviceId,
          attestRequestBytes(victim, Uint8Array.from(randomBytes(32))).bytes,
        ).then((r) => rejectionOf(r).code),
        sendAttest(
          t,
          stranger.deviceId,
          attestRequestBytes(stranger, Uint8Array.from(randomBytes(32))).bytes,
        ).then((r) => rejectionOf(r).code),
        freshNonce(t, victim.deviceId)
          .then((n) =>
            sendAttest(
              t,
              victim.deviceId,
              attestRequestBytes(victim, n, { mutateSignature: flipByte(40) }).bytes,
            ),
          )
          .then((r) => rejectionOf(r).code),
      );
      t.publish(deviceSubject('heartbeat', p), GARBAGE);
    }
    const [results, hostileCodes] = await Promise.all([
      Promise.all(healthy.map((d) => attestOnce(t, d))),
      Promise.all(hostile),
    ]);
    const failures = results.flatMap((r, i) => (r.ok ? [] : [`${i}: ${r.error.code} ${r.error.message}`]));
    expect(failures).toEqual([]);
    for (const [i, r] of results.entries()) {
      if (!r.ok) continue;
      const cert = new X509Certificate(r.value.clientCertificate);
      expect(cert.subject).toContain(healthy[i]?.deviceId);
    }
    const tally: Record<string, number> = {};
    for (const c of hostileCodes) tally[c] = (tally[c] ?? 0) + 1;
    expect(tally).toEqual({
      MALFORMED_INPUT: 20,
      PAYLOAD_TOO_LARGE: 20,
      NONCE_UNKNOWN: 20,
      UNKNOWN_DEVICE: 20,
      BAD_SIGNATURE: 20,
    });
  });

  it('attestation - heartbeat with the accepted boot ID is counted ok, another boot ID is not', async () => {
    const [dev] = await enrolled('heartbeat');
    if (dev === undefined) throw new Error('no device');
    const { session } = await attestSession(env().devices, dev);
    const before = await env().shard.meter.metricsText();
    publishHeartbeat(env().devices, dev, session);
    publishHeartbeat(env().devices, dev, session, Uint8Array.from(randomBytes(16)));
    await env().devices.flush();
    const count = (text: string, result: string, reason: string) =>
      sampleValue(text, 'sphere_heartbeats_total', { result, reason });
    await expect
      .poll(
        async () => {
          const now = await env().shard.meter.metricsText();
          return [
            count(now, 'ok', 'OK') - count(before, 'ok', 'OK'),
            count(now, 'rejected', 'UNKNOWN_BOOT') - count(before, 'rejected', 'UNKNOWN_BOOT'),
          ];
        },
        { timeout: 10_000, interval: 50 },
      )
      .toEqual([1, 1]);
  });

  // Regression, fixed (services/shard/host.ts, backend.listAlerts maps `atMs: a.atMs` unrounded): alerts are
  // raised with the fractional simulated clock (partition-actor.ts alert(), device-gateway.ts refuse()),
  // and ts-proto's int64 writer throws on non-integers, so any ListAlerts page that contains an
  // alert fails with gRPC INTERNAL "Error serializing response".
  it('attestation - every security rejection raises an alert visible to the device tenant', async () => {
    const [dev] = await enrolled('alert-visible');
    if (dev === undefined) throw new Error('no device');
    await expectRejected(env(), tenant, dev.deviceId, 'BAD_SIGNATURE', true, async () => {
      const nonce = await freshNonce(env().devices, dev.deviceId);
      return sendAttest(
        env().devices,
        dev.deviceId,
        attestRequestBytes(dev, nonce, { mutateSignature: flipByte(3) }).bytes,
      );
    });
    for (const a of tenantAlerts) await expectTenantSeesAlert(a);
    // Another tenant sees none of them.
    for (const a of tenantAlerts) {
      expect((await other.client.listAlerts({ deviceId: a.deviceId })).alerts).toEqual([]);
    }
  });
});

describe('shard attestation with a short nonce TTL', () => {
  const env = useShard({ shardId: 'shard-stale', policy: { nonceTtlMs: 200 } });
  let staleAlert: RaisedAlert | undefined;

  it('attestation - NONCE_STALE once the nonce outlived its time to live', async () => {
    const tenant = await createTestTenant(env().admin, 'Stale Tenant');
    const dev = bootedDevice(uniqueSeed('stale'));
    await endorseAndClaim(env().admin, tenant.client, [dev]);
    const ch = await requestChallenge(env().devices, dev.deviceId);
    if (!ch.ok) throw new Error(ch.error.code);
    expect(ch.value.expiresAtMs - ch.value.issuedAtMs).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    await expectRejected(env(), tenant, dev.deviceId, 'NONCE_STALE', true, () =>
      sendAttest(env().devices, dev.deviceId, attestRequestBytes(dev, ch.value.nonce).bytes),
    );
    staleAlert = { tenant, deviceId: dev.deviceId, code: 'NONCE_STALE' };
  });

  // Same source bug as above (host.ts backend.listAlerts: fractional alert atMs breaks ListAlerts serialisation).
  it('attestation - the NONCE_STALE alert is visible to the device tenant', async () => {
    if (staleAlert === undefined) throw new Error('the NONCE_STALE test did not run');
    await expectTenantSeesAlert(staleAlert);
  });
});
