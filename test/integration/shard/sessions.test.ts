/**
 * Device sessions against a real shard (real nats-server, shard in-process, crypto pool on the
 * compiled workers: run `npx tsc -p tsconfig.json` first). Every request after attestation
 * travels in an AuthenticatedRequest sealed with the session its attestation opened; each
 * refusal of the session layer is shown here one by one, with its typed code, its count in the
 * op's counter and in sphere_alerts_total, and a correct request that still works afterwards.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { DeviceSession } from '../../../actors/device/index.js';
import { sessionOpener } from '../../../actors/security-core/index.js';
import {
  MAX_ERROR_REPORT_SPAN_MS,
  decodeAuthenticatedRequest,
  decodeChunkReply,
  decodeErrorReportReply,
  decodeUpdateCheckReply,
  decodeUpdateReportReply,
  deviceSubject,
  encodeAuthenticatedRequest,
  encodeChunkRequest,
  encodeErrorReportUpload,
  encodeHeartbeat,
  encodeUpdateCheckRequest,
  encodeUpdateReport,
  parseDeploymentId,
} from '../../../proto/codec/index.js';
import type {
  DeploymentId,
  DeviceId,
  ErrorEventMsg,
  ErrorReportUploadMsg,
  RejectCode,
  Rejection,
  Reply,
} from '../../../proto/codec/index.js';
import { ALERT_SEVERITY } from '../../../services/registry/index.js';
import {
  PARTITIONS,
  attestRequestBytes,
  attestSession,
  bootedDevice,
  createTestTenant,
  endorseAndClaim,
  freshNonce,
  partitionOfDevice,
  requestRaw,
  sampleValue,
  sendAttest,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { ShardEnv, TestDevice, TestTenant } from '../../fixtures/shard.js';

type SealedOp = 'update-check' | 'update-chunk' | 'update-report' | 'error-report';

/** The counter each op's answers are counted in (result, reason). */
const OP_COUNTER: Record<SealedOp | 'heartbeat', string> = {
  heartbeat: 'sphere_heartbeats_total',
  'update-check': 'sphere_update_checks_total',
  'update-chunk': 'sphere_update_chunks_total',
  'update-report': 'sphere_update_reports_total',
  'error-report': 'sphere_error_report_uploads_total',
};

/** A deployment ID no deployment has: the update service answers UNKNOWN_DEPLOYMENT. */
const NO_DEPLOYMENT = parseDeploymentId('d-0123456789abcdef') as DeploymentId;

const checkBody = (deviceId: DeviceId): Uint8Array =>
  encodeUpdateCheckRequest({
    deviceId,
    trustedRootVersion: 1,
    installed: [
      { kind: 'os', name: 'azure-sphere-os', version: '25.10', securityVersion: 5 },
      { kind: 'app', name: 'blinky', version: '1.0.0', securityVersion: 1 },
    ],
    deviceTimeMs: Date.now(),
  });

const reportId = (): string => `er-${randomBytes(8).toString('hex')}`;

function errorEvent(atMs: number, i = 0): ErrorEventMsg {
  return {
    kind: 'app-crash',
    component: 'blinky',
    version: '1.0.0',
    exitCode: 11,
    atMs,
    detail: `segfault ${i}`,
  };
}

/** One day of a device's error log with `events` crashes in it. */
function errorReport(
  deviceId: DeviceId,
  o: Partial<Omit<ErrorReportUploadMsg, 'events'>> & { events?: number } = {},
): Uint8Array {
  const toMs = Date.now();
  const fromMs = o.fromMs ?? toMs - 86_400_000;
  const n = o.events ?? 2;
  return encodeErrorReportUpload({
    deviceId,
    reportId: o.reportId ?? reportId(),
    fromMs,
    toMs: o.toMs ?? toMs,
    events: Array.from({ length: n }, (_, i) => errorEvent(fromMs + i, i)),
    droppedEvents: 0,
    deviceTimeMs: toMs,
  });
}

/** Decodes `op`'s reply; the ok value is returned as `unknown` (callers that need it decode again). */
function replyOf(op: SealedOp, raw: Uint8Array): Reply<unknown> {
  const d =
    op === 'update-check'
      ? decodeUpdateCheckReply(raw)
      : op === 'update-chunk'
        ? decodeChunkReply(raw)
        : op === 'update-report'
          ? decodeUpdateReportReply(raw)
          : decodeErrorReportReply(raw);
  if (!d.ok) throw new Error(`undecodable ${op} reply: ${d.error.message}`);
  return d.value;
}

const codeOf = (r: Reply<unknown>): string => (r.ok ? 'OK' : r.error.code);

/** Changes one byte of a copy of `b`. */
function flipped(b: Uint8Array, i: number): Uint8Array {
  const out = Uint8Array.from(b);
  out[i] = (out[i] ?? 0) ^ 0x01;
  return out;
}

/** The session layer's answers, measured on `env`'s shard. */
function sessionHelpers(env: () => ShardEnv) {
  const send = async (
    op: SealedOp,
    deviceId: DeviceId,
    data: Uint8Array,
    partition = partitionOfDevice(deviceId),
  ): Promise<Reply<unknown>> => replyOf(op, await requestRaw(env().devices, op, deviceId, data, partition));

  /**
   * Sends `data` on `deviceId`'s `op` subject; it must be refused with `code`, counted once in the
   * op's counter and once in sphere_alerts_total. Returns the rejection.
   */
  async function refused(op: SealedOp, deviceId: DeviceId, data: Uint8Array, code: RejectCode) {
    const before = await env().shard.meter.metricsText();
    const r = await send(op, deviceId, data);
    const after = await env().shard.meter.metricsText();
    expect(codeOf(r), r.ok ? 'accepted' : r.error.message).toBe(code);
    if (r.ok) throw new Error('unreachable');
    expect(r.error.message.length).toBeGreaterThan(0);
    const counted = (text: string) => sampleValue(text, OP_COUNTER[op], { result: 'rejected', reason: code });
    const alerted = (text: string) =>
      sampleValue(text, 'sphere_alerts_total', { type: code, severity: ALERT_SEVERITY[code] });
    expect(counted(after) - counted(before), `${op} ${code} counted`).toBe(1);
    expect(alerted(after) - alerted(before), `${code} alerted`).toBe(1);
    return r.error;
  }

  /** An update check sealed with `session` for `dev` that must be answered (the session layer passed it). */
  async function checkOk(dev: TestDevice, session: DeviceSession): Promise<void> {
    const r = await send('update-check', dev.deviceId, session.seal('update-check', checkBody(dev.deviceId)));
    expect(codeOf(r), r.ok ? '' : r.error.message).toBe('OK');
  }

  return { send, refused, checkOk };
}

describe('device sessions', () => {
  const env = useShard({ shardId: 'shard-sessions', seed: 'sessions' });
  const { send, refused, checkOk } = sessionHelpers(env);
  let tenant: TestTenant;

  beforeAll(async () => {
    tenant = await createTestTenant(env().admin, 'Contoso Sessions');
  });

  /** Fresh devices, endorsed and claimed by `tenant` (not attested). */
  async function enrolled(label: string, n = 1): Promise<TestDevice[]> {
    const devs = Array.from({ length: n }, () => bootedDevice(uniqueSeed(label)));
    await endorseAndClaim(env().admin, tenant.client, devs);
    return devs;
  }

  /** One enrolled, attested device and its session. */
  async function attested(label: string): Promise<{ dev: TestDevice; session: DeviceSession }> {
    const [dev] = await enrolled(label);
    if (dev === undefined) throw new Error('no device');
    return { dev, session: (await attestSession(env().devices, dev)).session };
  }

  it('sessions - the attestation reply opens a session that expires with the certificates', async () => {
    const [dev] = await enrolled('opens');
    if (dev === undefined) throw new Error('no device');
    const { certs, session } = await attestSession(env().devices, dev);
    expect(certs.session.sessionId.length).toBe(16);
    expect(certs.session.expiresAtMs).toBe(certs.notAfterMs);
    expect(session.expiresAtMs).toBe(certs.notAfterMs);
    // The expiry is written into the session ID (big-endian ms), which is how any shard reads it.
    expect(Number(Buffer.from(certs.session.sessionId.subarray(0, 8)).readBigUInt64BE())).toBe(
      certs.notAfterMs,
    );
    // The key travels wrapped: the wrapped bytes are not the key.
    expect(Buffer.from(certs.session.wrappedKey).equals(Buffer.from(session.key))).toBe(false);
    await checkOk(dev, session);
  });

  it('sessions - BAD_MAC for a request sealed with a session the service never issued (no session, garbage session ID)', async () => {
    const { dev, session } = await attested('no-session');
    const body = checkBody(dev.deviceId);
    // A client without the device's session makes one up: random ID, random key.
    const madeUp = new DeviceSession(Uint8Array.from(randomBytes(16)), Uint8Array.from(randomBytes(32)), 0);
    await refused('update-check', dev.deviceId, madeUp.seal('update-check', body), 'BAD_MAC');
    // An all-zero session ID (no session at all) with a MAC under an all-zero key.
    const none = new DeviceSession(new Uint8Array(16), new Uint8Array(32), 0);
    const e = await refused('update-check', dev.deviceId, none.seal('update-check', body), 'BAD_MAC');
    expect(e.message).toContain('attestation');
    // A device that never attested has no session to forge from either.
    const [fresh] = await enrolled('never-attested');
    if (fresh === undefined) throw new Error('no device');
    await refused(
      'update-check',
      fresh.deviceId,
      madeUp.seal('update-check', checkBody(fresh.deviceId)),
      'BAD_MAC',
    );
    // A bare request (no session framing at all), as devices sent before sessions, is malformed.
    await refused('update-check', dev.deviceId, body, 'MALFORMED_INPUT');

    await checkOk(dev, session);
  });

  it('sessions - BAD_MAC when the body (or the counter) is altered after sealing', async () => {
    const { dev, session } = await attested('altered');
    const sealed = session.seal('update-check', checkBody(dev.deviceId));
    const auth = decodeAuthenticatedRequest(sealed, 4096);
    if (!auth.ok) throw new Error(auth.error.message);
    // Another body under the same MAC: still a valid UpdateCheckRequest of this device.
    const otherBody = encodeUpdateCheckRequest({
      deviceId: dev.deviceId,
      trustedRootVersion: 1,
      installed: [{ kind: 'os', name: 'azure-sphere-os', version: '25.10', securityVersion: 5 }],
      deviceTimeMs: Date.now(),
    });
    await refused(
      'update-check',
      dev.deviceId,
      encodeAuthenticatedRequest({ ...auth.value, body: otherBody }),
      'BAD_MAC',
    );
    await refused(
      'update-check',
      dev.deviceId,
      encodeAuthenticatedRequest({ ...auth.value, counter: auth.value.counter + 1 }),
      'BAD_MAC',
    );
    await refused(
      'update-check',
      dev.deviceId,
      encodeAuthenticatedRequest({ ...auth.value, mac: flipped(auth.value.mac, 0) }),
      'BAD_MAC',
    );
    // The refused copies did not use up the counter: the request as sealed is still answered.
    const r = await send('update-check', dev.deviceId, sealed);
    expect(codeOf(r)).toBe('OK');
    await checkOk(dev, session);
  });

  it('sessions - IDENTITY_MISMATCH when device A uses its valid session for a request naming device B', async () => {
    const a = await attested('actor-a');
    const b = await attested('victim-b');
    const before = await env().shard.meter.metricsText();
    const e = await refused(
      'update-check',
      b.dev.deviceId,
      a.session.seal('update-check', checkBody(b.dev.deviceId)),
      'IDENTITY_MISMATCH',
    );
    // The message names the session's real owner (A), not the device in the request (B).
    expect(e.message).toContain(a.dev.deviceId.slice(0, 16));
    expect(e.message).not.toContain(b.dev.deviceId.slice(0, 16));
    await refused(
      'error-report',
      b.dev.deviceId,
      a.session.seal('error-report', errorReport(b.dev.deviceId)),
      'IDENTITY_MISMATCH',
    );
    // A's session ID with a MAC that does not verify under A's key proves nothing about A.
    const forged = a.session.seal('update-check', checkBody(b.dev.deviceId));
    const auth = decodeAuthenticatedRequest(forged, 4096);
    if (!auth.ok) throw new Error(auth.error.message);
    await refused(
      'update-check',
      b.dev.deviceId,
      encodeAuthenticatedRequest({ ...auth.value, mac: flipped(auth.value.mac, 3) }),
      'BAD_MAC',
    );
    // Heartbeats (no reply) are refused the same way and counted.
    env().devices.publish(
      deviceSubject('heartbeat', partitionOfDevice(b.dev.deviceId)),
      a.session.seal(
        'heartbeat',
        encodeHeartbeat({
          deviceId: b.dev.deviceId,
          bootId: b.dev.state.boot?.bootId ?? new Uint8Array(16),
          deviceTimeMs: Date.now(),
        }),
      ),
    );
    await env().devices.flush();
    const hbMismatch = (text: string) =>
      sampleValue(text, 'sphere_heartbeats_total', { result: 'rejected', reason: 'IDENTITY_MISMATCH' });
    await expect
      .poll(async () => hbMismatch(await env().shard.meter.metricsText()) - hbMismatch(before), {
        timeout: 10_000,
        interval: 50,
      })
      .toBe(1);
    // Both devices still act as themselves.
    await checkOk(b.dev, b.session);
    await checkOk(a.dev, a.session);
  });

  it('sessions - REPLAYED for the same sealed bytes twice; an out-of-order counter not seen yet is accepted', async () => {
    const { dev, session } = await attested('replay');
    const [r1, r2, r3] = [1, 2, 3].map(() => session.seal('update-check', checkBody(dev.deviceId)));
    if (r1 === undefined || r2 === undefined || r3 === undefined) throw new Error('unreachable');
    expect(codeOf(await send('update-check', dev.deviceId, r3))).toBe('OK');
    // Counter 1 arrives after 3 (concurrent requests reorder): within the window, never seen.
    expect(codeOf(await send('update-check', dev.deviceId, r1))).toBe('OK');
    const e = await refused('update-check', dev.deviceId, r1, 'REPLAYED');
    expect(e.message).toContain('counter 1');
    await refused('update-check', dev.deviceId, r3, 'REPLAYED');
    expect(codeOf(await send('update-check', dev.deviceId, r2))).toBe('OK');
    await refused('update-check', dev.deviceId, r2, 'REPLAYED');
    await checkOk(dev, session);
  });

  it('sessions - the op is inside the MAC: sealed bytes that decode on another subject are refused BAD_MAC there', async () => {
    const { dev, session } = await attested('op-confusion');
    // A chunk request whose bytes are also a valid ErrorReportUpload (device_id, report_id
    // "d-0123456789abcdef", from_ms 0, to_ms 100): sealed for update-chunk, sent as an error report.
    const chunk = encodeChunkRequest({
      deviceId: dev.deviceId,
      deploymentId: NO_DEPLOYMENT,
      offset: 0,
      length: 100,
    });
    const sealedChunk = session.seal('update-chunk', chunk);
    await refused('error-report', dev.deviceId, sealedChunk, 'BAD_MAC');
    // And the other way: an error report sealed as such, sent as a chunk request.
    const report = encodeErrorReportUpload({
      deviceId: dev.deviceId,
      reportId: 'd-0123456789abcdef',
      fromMs: 0,
      toMs: 100,
      events: [],
      droppedEvents: 0,
      deviceTimeMs: 0,
    });
    expect(Buffer.from(report).equals(Buffer.from(chunk))).toBe(true);
    await refused('update-chunk', dev.deviceId, session.seal('error-report', report), 'BAD_MAC');
    // A sealed update check sent as an update report does not even decode as one: the body is
    // decoded as the subject's message before its MAC is checked (the MAC key needs the device).
    await refused(
      'update-report',
      dev.deviceId,
      session.seal('update-check', checkBody(dev.deviceId)),
      'MALFORMED_INPUT',
    );
    // On its own subject the same sealed bytes pass the session layer: the update service
    // answers (there is no such deployment), not the session check.
    const r = await send('update-chunk', dev.deviceId, sealedChunk);
    expect(codeOf(r)).toBe('UNKNOWN_DEPLOYMENT');
    await checkOk(dev, session);
  });

  it('sessions - SESSION_EXPIRED for the session a newer attestation replaced; the new one works', async () => {
    const { dev, session: old } = await attested('superseded');
    await checkOk(dev, old);
    const { session: current } = await attestSession(env().devices, dev);
    expect(Buffer.from(current.sessionId).equals(Buffer.from(old.sessionId))).toBe(false);
    const e = await refused(
      'update-check',
      dev.deviceId,
      old.seal('update-check', checkBody(dev.deviceId)),
      'SESSION_EXPIRED',
    );
    expect(e.message).toContain('newer attestation');
    await checkOk(dev, current);
    // Still refused once the new session is in use.
    await refused(
      'update-report',
      dev.deviceId,
      old.seal(
        'update-report',
        encodeUpdateReport({
          deviceId: dev.deviceId,
          deploymentId: NO_DEPLOYMENT,
          reportId: 'r-1',
          outcome: 'downloading',
          code: '',
          deviceTimeMs: Date.now(),
        }),
      ),
      'SESSION_EXPIRED',
    );
    await checkOk(dev, current);
  });

  it('sessions - error reports: acknowledged once, a repeat is a duplicate, too many events or a span over 14 days is MALFORMED_INPUT', async () => {
    const { dev, session } = await attested('error-report');
    const id = reportId();
    const body = errorReport(dev.deviceId, { reportId: id, events: 3 });
    const upload = async (data: Uint8Array) => {
      const r = decodeErrorReportReply(await requestRaw(env().devices, 'error-report', dev.deviceId, data));
      if (!r.ok) throw new Error(r.error.message);
      return r.value;
    };
    const before = await env().shard.meter.metricsText();
    expect(await upload(session.seal('error-report', body))).toEqual({
      ok: true,
      value: { reportId: id, duplicate: false },
    });
    // The device repeats it (its acknowledgement was lost): a new counter, the same report.
    expect(await upload(session.seal('error-report', body))).toEqual({
      ok: true,
      value: { reportId: id, duplicate: true },
    });
    const after = await env().shard.meter.metricsText();
    const uploads = (text: string, result: string) =>
      sampleValue(text, 'sphere_error_report_uploads_total', { result, reason: 'OK' });
    expect(uploads(after, 'stored') - uploads(before, 'stored')).toBe(1);
    expect(uploads(after, 'duplicate') - uploads(before, 'duplicate')).toBe(1);
    const crashes = (text: string) => sampleValue(text, 'sphere_error_events_total', { kind: 'app-crash' });
    expect(crashes(after) - crashes(before)).toBe(3);

    const tooMany = await refused(
      'error-report',
      dev.deviceId,
      session.seal('error-report', errorReport(dev.deviceId, { events: 1001 })),
      'MALFORMED_INPUT',
    );
    expect(tooMany.message).toContain('at most 1000 events, got 1001');
    const now = Date.now();
    const tooLong = await refused(
      'error-report',
      dev.deviceId,
      session.seal(
        'error-report',
        errorReport(dev.deviceId, { fromMs: now - MAX_ERROR_REPORT_SPAN_MS - 1, toMs: now }),
      ),
      'MALFORMED_INPUT',
    );
    expect(tooLong.message).toContain('spans at most 14 days');
    // Exactly 1,000 events over exactly 14 days is accepted.
    expect(
      await upload(
        session.seal(
          'error-report',
          errorReport(dev.deviceId, { fromMs: now - MAX_ERROR_REPORT_SPAN_MS, toMs: now, events: 1000 }),
        ),
      ),
    ).toMatchObject({ ok: true, value: { duplicate: false } });
  });

  it('sessions - A client that can publish on any NATS subject still cannot check updates, upload reports or get certificates as another device', async () => {
    // The attacker is a genuine device of its own (it holds a valid session) with full NATS access.
    const attacker = await attested('attacker');
    const [victim] = await enrolled('victim');
    if (victim === undefined) throw new Error('no device');
    // It watches the victim attest: the attestation request and reply cross NATS in clear.
    const nonce = await freshNonce(env().devices, victim.deviceId);
    const { bytes: victimAttest } = attestRequestBytes(victim, nonce);
    const victimReply = await sendAttest(env().devices, victim.deviceId, victimAttest);
    if (!victimReply.ok) throw new Error(victimReply.error.message);
    const victimSession = sessionOpener(victim.identity)(victimReply.value.session, nonce);
    const v = victim.deviceId;

    // Update checks as the victim: with its own session, with a made-up one, and with the
    // session it saw go by (whose key it cannot unwrap without the victim's client key).
    await refused(
      'update-check',
      v,
      attacker.session.seal('update-check', checkBody(v)),
      'IDENTITY_MISMATCH',
    );
    const madeUp = new DeviceSession(Uint8Array.from(randomBytes(16)), Uint8Array.from(randomBytes(32)), 0);
    await refused('update-check', v, madeUp.seal('update-check', checkBody(v)), 'BAD_MAC');
    const sniffed = sessionOpener(attacker.dev.identity)(victimReply.value.session, nonce);
    expect(Buffer.from(sniffed.key).equals(Buffer.from(victimSession.key))).toBe(false);
    await refused('update-check', v, sniffed.seal('update-check', checkBody(v)), 'BAD_MAC');

    // Reports as the victim: error reports and update reports.
    const planted = reportId();
    await refused(
      'error-report',
      v,
      attacker.session.seal('error-report', errorReport(v, { reportId: planted })),
      'IDENTITY_MISMATCH',
    );
    await refused('error-report', v, sniffed.seal('error-report', errorReport(v)), 'BAD_MAC');
    await refused(
      'update-report',
      v,
      attacker.session.seal(
        'update-report',
        encodeUpdateReport({
          deviceId: v,
          deploymentId: NO_DEPLOYMENT,
          reportId: 'r-planted',
          outcome: 'failed',
          code: 'INSTALL_FAILED',
          deviceTimeMs: Date.now(),
        }),
      ),
      'IDENTITY_MISMATCH',
    );

    // Certificates as the victim: its captured attestation replayed, or evidence signed with
    // the attacker's key over a fresh nonce of the victim.
    const replayed = await sendAttest(env().devices, v, victimAttest);
    expect(replayed.ok ? 'OK' : replayed.error.code).toBe('NONCE_REUSED');
    const forged = await sendAttest(
      env().devices,
      v,
      attestRequestBytes(
        { ...victim, identity: { ...victim.identity, attestationKey: attacker.dev.identity.attestationKey } },
        await freshNonce(env().devices, v),
      ).bytes,
    );
    expect(forged.ok ? 'OK' : forged.error.code).toBe('BAD_SIGNATURE');

    // The victim is unaffected: its session works, and the report the attacker tried to plant
    // under the victim's name was never stored (the victim's own upload of that ID is new).
    await checkOk(victim, victimSession);
    const own = decodeErrorReportReply(
      await requestRaw(
        env().devices,
        'error-report',
        v,
        victimSession.seal('error-report', errorReport(v, { reportId: planted })),
      ),
    );
    expect(own).toEqual({ ok: true, value: { ok: true, value: { reportId: planted, duplicate: false } } });
    await checkOk(attacker.dev, attacker.session);
  });

  it('sessions - a request on another partition than the device is refused before its session is checked', async () => {
    const { dev, session } = await attested('misrouted');
    const wrong = (partitionOfDevice(dev.deviceId) + 1) % PARTITIONS;
    const r = await send(
      'update-check',
      dev.deviceId,
      session.seal('update-check', checkBody(dev.deviceId)),
      wrong,
    );
    expect(codeOf(r)).toBe('MALFORMED_INPUT');
    await checkOk(dev, session);
  });
});

/** Certificates (and so sessions) that last 3 s of the shard's time (time scale 1). */
const SHORT_LIFETIME_MS = 3_000;

describe('device sessions with short-lived certificates', () => {
  const env = useShard({
    shardId: 'shard-sessions-expiry',
    seed: 'sessions-expiry',
    policy: { certificateLifetimeMs: SHORT_LIFETIME_MS },
  });
  const { send, refused, checkOk } = sessionHelpers(env);

  it('sessions - SESSION_EXPIRED once the session outlived its certificates; attesting again opens a working one', async () => {
    const tenant = await createTestTenant(env().admin, 'Expiry Tenant');
    const dev = bootedDevice(uniqueSeed('expiring'));
    await endorseAndClaim(env().admin, tenant.client, [dev]);
    const { certs, session } = await attestSession(env().devices, dev);
    expect(session.expiresAtMs).toBe(certs.notAfterMs);
    await checkOk(dev, session);
    // Past the expiry the attestation reply stated (the shard's clock runs at wall time here).
    await new Promise((r) => setTimeout(r, Math.max(0, session.expiresAtMs - Date.now()) + 50));
    // The service's own clock decides: ask until it has passed the expiry too.
    const seen: { refusal?: Rejection } = {};
    await expect
      .poll(
        async () => {
          const r = await send(
            'update-check',
            dev.deviceId,
            session.seal('update-check', checkBody(dev.deviceId)),
          );
          if (!r.ok) seen.refusal = r.error;
          return codeOf(r);
        },
        { timeout: 10_000, interval: 50 },
      )
      .not.toBe('OK');
    expect(seen.refusal?.code).toBe('SESSION_EXPIRED');
    expect(seen.refusal?.serviceTimeMs ?? 0).toBeGreaterThanOrEqual(session.expiresAtMs);
    // Counted and alerted like every other refusal.
    await refused(
      'error-report',
      dev.deviceId,
      session.seal('error-report', errorReport(dev.deviceId)),
      'SESSION_EXPIRED',
    );
    const fresh = await attestSession(env().devices, dev);
    expect(fresh.session.expiresAtMs).toBeGreaterThan(session.expiresAtMs);
    await checkOk(dev, fresh.session);
  });
});

describe('device sessions with a small request budget', () => {
  /** 3 requests at once, then one every 2 s of the shard's time (time scale 1). */
  const LIMIT = { burst: 3, perHour: 1_800 };
  const env = useShard({
    shardId: 'shard-sessions-rate',
    seed: 'sessions-rate',
    policy: { deviceRateLimit: LIMIT },
  });
  const { send, refused, checkOk } = sessionHelpers(env);

  it('sessions - RATE_LIMITED past the burst, with retry_after_ms after the service time; honouring it succeeds', async () => {
    const tenant = await createTestTenant(env().admin, 'Rate Tenant');
    const [dev, other] = [bootedDevice(uniqueSeed('chatty')), bootedDevice(uniqueSeed('quiet'))];
    await endorseAndClaim(env().admin, tenant.client, [dev, other]);
    const { session } = await attestSession(env().devices, dev);
    for (let i = 0; i < LIMIT.burst; i++) await checkOk(dev, session);
    const e = await refused(
      'update-check',
      dev.deviceId,
      session.seal('update-check', checkBody(dev.deviceId)),
      'RATE_LIMITED',
    );
    const serviceTimeMs = e.serviceTimeMs ?? 0;
    const retryAfterMs = e.retryAfterMs ?? 0;
    expect(serviceTimeMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeGreaterThan(serviceTimeMs);
    // At most one token's refill away (3,600,000 / 1,800 ms), rounded up to whole ms.
    expect(retryAfterMs - serviceTimeMs).toBeLessThanOrEqual(3_600_000 / LIMIT.perHour + 1);
    // Refused requests cost nothing and the budget is per device: another device is served.
    const quiet = await attestSession(env().devices, other);
    await checkOk(other, quiet.session);
    // A device that waits as told is served (if it woke a little early, it is told again).
    let last: Reply<unknown> = { ok: false, error: e };
    for (let attempt = 0; attempt < 5 && !last.ok && last.error.code === 'RATE_LIMITED'; attempt++) {
      const until = last.error.retryAfterMs ?? 0;
      await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now()) + 10));
      last = await send('update-check', dev.deviceId, session.seal('update-check', checkBody(dev.deviceId)));
    }
    expect(codeOf(last)).toBe('OK');
  });
});
