import type { KeyObject } from 'node:crypto';
import type { WrappedSessionKey } from '../../actors/crypto/index.js';
import type { ActorDefinition } from '../../actors/runtime/index.js';
import { REJECT_CODES } from '../../proto/codec/index.js';
import type {
  DeviceGroupId,
  AttestRequestMsg,
  CertificatesMsg,
  ChallengeMsg,
  DeviceId,
  EvidenceMsg,
  HeartbeatMsg,
  Rejection,
  Reply,
  TenantId,
} from '../../proto/codec/index.js';
import { appraise, isDuplicateIdentity, unknownMeasurements } from '../attestation/index.js';
import { assembleCertificate, buildDeviceTbs, randomSerial } from '../certificates/index.js';
import { DeviceRegistry } from '../registry/index.js';
import type { AttestationOutcome, DeviceRecord, Tenant } from '../registry/index.js';
import type { ShardContext } from './context.js';
import { b64, unb64 } from '../journal/index.js';
import type { DeviceSnapshot } from '../journal/index.js';

/** Result of claiming one device. */
export type ClaimOutcome = 'claimed' | 'already-yours' | 'claimed-by-another' | 'not-endorsed';

/** An attestation waiting for the crypto pool; only valid between `attest` and `verified`. */
interface AttestJob {
  readonly request: AttestRequestMsg;
  readonly evidence: EvidenceMsg;
  readonly receivedAtWall: number;
  readonly respond: (reply: Reply<CertificatesMsg>) => void;
  /** The rejection decided before the signature check; reported only if the signature is valid. */
  readonly pending: Rejection | null;
  readonly tenant: Tenant;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly tbs: Uint8Array[];
  /** The session opened if the attestation succeeds. */
  readonly sessionId: Uint8Array | null;
}

/** Messages a partition actor handles. `respond`/`reply` callbacks run inside the actor's turn. */
export type PartitionMessage =
  | {
      readonly type: 'partition.challenge';
      readonly deviceId: DeviceId;
      readonly respond: (reply: Reply<ChallengeMsg>) => void;
    }
  | {
      readonly type: 'partition.attest';
      readonly request: AttestRequestMsg;
      readonly evidence: EvidenceMsg;
      readonly receivedAtWall: number;
      readonly respond: (reply: Reply<CertificatesMsg>) => void;
    }
  | {
      readonly type: 'partition.verified';
      readonly job: AttestJob;
      readonly result:
        | {
            readonly signatureValid: boolean;
            readonly signatures: Uint8Array[];
            readonly session?: WrappedSessionKey;
          }
        | { readonly error: string };
    }
  | { readonly type: 'partition.heartbeat'; readonly heartbeat: HeartbeatMsg }
  | {
      readonly type: 'partition.endorse';
      readonly devices: ReadonlyArray<{
        readonly deviceId: DeviceId;
        readonly publicKey: Uint8Array;
        readonly key: KeyObject;
      }>;
      readonly reply: (registered: number, alreadyKnown: number) => void;
    }
  | {
      readonly type: 'partition.claim';
      readonly tenantId: TenantId;
      readonly deviceIds: readonly DeviceId[];
      readonly reply: (outcomes: ClaimOutcome[]) => void;
    }
  | {
      readonly type: 'partition.assign';
      readonly tenantId: TenantId;
      readonly deviceGroupId: DeviceGroupId;
      readonly deviceIds: readonly DeviceId[];
      /** Per device: assigned, or not found in the tenant (unknown or another tenant's). */
      readonly reply: (assigned: boolean[]) => void;
    }
  | { readonly type: 'partition.visit'; readonly visit: (devices: DeviceRegistry) => void }
  /** Device snapshots another shard stored for this partition (read back from the journal). */
  | {
      readonly type: 'partition.replicate';
      readonly devices: readonly DeviceSnapshot[];
      readonly reply: () => void;
    };

export interface PartitionState {
  readonly devices: DeviceRegistry;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * One partition of the device space. It owns the records of the devices that hash to it and
 * decides their challenges, attestations and heartbeats one message at a time; signature checks
 * and certificate signing go to the crypto pool and come back as `partition.verified`, so many
 * attestations are in flight (and batched) while decisions stay serialized.
 */
export function partitionDefinition(
  partition: number,
  ctx: ShardContext,
): ActorDefinition<PartitionState, PartitionMessage> {
  const { clock, policy, metrics, alerts, nonces } = ctx;

  function alert(
    record: Pick<DeviceRecord, 'tenantId'> | null,
    deviceId: string,
    r: Rejection,
    step: string,
    extra: Record<string, string> = {},
  ): void {
    alerts.refusal({
      tenantId: record?.tenantId ?? null,
      type: r.code,
      deviceId,
      atMs: clock.now(),
      message: r.message,
      evidence: { step, partition: String(partition), shard: ctx.shardId, ...extra },
    });
  }

  /**
   * Replies, counts and alerts. `record` is passed only for outcomes of evidence whose signature
   * verified: a forgery must not change what the service says about a device.
   */
  function finishAttest(
    job: AttestJob,
    record: DeviceRecord | null,
    reply: Reply<CertificatesMsg>,
    consumedNonce: Uint8Array | null = null,
  ): void {
    const now = clock.now();
    const reason = reply.ok ? 'OK' : reply.error.code;
    const result = reply.ok ? 'ok' : 'rejected';
    metrics.attestations.inc({ result, reason });
    metrics.attestationLatency.observe({ result }, (ctx.wallNow() - job.receivedAtWall) / 1000);
    if (record !== null) {
      record.lastSeenMs = now;
      record.lastAttestation = reply.ok
        ? { atMs: now, ok: true, code: 'OK', message: '' }
        : { atMs: now, ok: false, code: reply.error.code, message: reply.error.message };
      if (reply.ok) record.attestationsOk++;
      else record.attestationsFailed++;
    }
    if (record !== null) {
      // Only outcomes of evidence whose signature verified: forged evidence says nothing of a device.
      const e = job.evidence;
      alerts.observe({
        kind: 'attestation',
        atMs: now,
        deviceId: e.deviceId,
        tenantId: record.tenantId,
        productId: null,
        ok: reply.ok,
        code: reply.ok ? null : reply.error.code,
        bootIdHex: hex(e.bootId),
        bootCount: e.bootCount,
        osVersion: e.osVersion,
        unknownMeasurements: reply.ok ? [] : unknownMeasurements(e, ctx.references),
      });
    }
    if (!reply.ok) {
      alert(record ?? { tenantId: job.tenant.id }, job.evidence.deviceId, reply.error, 'attest', {
        os_version: job.evidence.osVersion,
        security_version: String(job.evidence.securityVersion),
        boot_count: String(job.evidence.bootCount),
      });
    }
    if (record === null) {
      job.respond(reply);
      return;
    }
    // What the device is told is stored first: a new owner of the partition must know it.
    ctx.persist(partition, snapshotOf(record, consumedNonce)).then(
      (stored) => job.respond(stored ? reply : { ok: false, error: moved(partition) }),
      () => job.respond({ ok: false, error: moved(partition) }),
    );
  }

  function rejectEarly(
    evidence: EvidenceMsg,
    receivedAtWall: number,
    respond: (r: Reply<CertificatesMsg>) => void,
    record: DeviceRecord | null,
    rejection: Rejection,
  ): void {
    metrics.attestations.inc({ result: 'rejected', reason: rejection.code });
    metrics.attestationLatency.observe({ result: 'rejected' }, (ctx.wallNow() - receivedAtWall) / 1000);
    if (rejection.code !== REJECT_CODES.OVERLOADED) alert(record, evidence.deviceId, rejection, 'attest');
    respond({ ok: false, error: rejection });
  }

  /** OVERLOADED with a time to come back that spreads refused devices over the shard's capacity. */
  function overloaded(): Rejection {
    const now = clock.now();
    const waitMs = ctx.admission.retryWallMs(ctx.wallNow(), ctx.rng.next()) * ctx.timeScale;
    return {
      code: REJECT_CODES.OVERLOADED,
      message: `shard is at capacity (${ctx.admission.inFlight} attestations in flight); retry after the given time`,
      retryAfterMs: now + Math.round(waitMs),
      serviceTimeMs: now,
    };
  }

  /**
   * Decisions that need no signature. Pure: the result is acted on (reported, and a duplicate
   * identity quarantined) only once the signature verifies, so forged evidence changes nothing.
   */
  function precheck(record: DeviceRecord, evidence: EvidenceMsg, now: number): Rejection | null {
    if (record.compromised) {
      return {
        code: REJECT_CODES.DUPLICATE_IDENTITY,
        message:
          'this identity was seen on two devices at once and is quarantined: it gets no certificates (re-admission by an operator is not implemented yet)',
      };
    }
    const nonce = nonces.check(evidence.deviceId, evidence.nonce, now);
    if (nonce !== 'ok') return nonceRejection(nonce);
    if (Math.abs(evidence.deviceTimeMs - now) > policy.maxClockSkewMs) {
      return {
        code: REJECT_CODES.CLOCK_SKEW,
        message: `device clock is ${Math.round((evidence.deviceTimeMs - now) / 1000)} s off the service clock (limit ${policy.maxClockSkewMs / 1000} s); resynchronise and retry`,
        serviceTimeMs: now,
      };
    }
    const appraisal = appraise(evidence, ctx.references, policy.minSecurityVersion);
    if (appraisal !== null) return appraisal;
    if (isDuplicateIdentity(record, evidence, hex(evidence.bootId))) return duplicate(record, evidence);
    return null;
  }

  function handleAttest(
    state: PartitionState,
    msg: Extract<PartitionMessage, { type: 'partition.attest' }>,
  ): void {
    const { evidence } = msg;
    const record = state.devices.get(evidence.deviceId);
    if (record === undefined || !sameBytes(record.attestationPublicKey, evidence.attestationPublicKey)) {
      rejectEarly(evidence, msg.receivedAtWall, msg.respond, null, {
        code: REJECT_CODES.UNKNOWN_DEVICE,
        message:
          'no endorsement for this device identity; only devices endorsed by the silicon vendor can attest',
      });
      return;
    }
    const tenant = record.tenantId === null ? undefined : ctx.tenants.get(record.tenantId);
    if (tenant === undefined) {
      rejectEarly(evidence, msg.receivedAtWall, msg.respond, record, {
        code: REJECT_CODES.DEVICE_NOT_CLAIMED,
        message: 'device is endorsed but not claimed by any tenant; claim it with ClaimDevices first',
      });
      return;
    }
    const now = clock.now();
    if (!ctx.admission.tryAdmit()) {
      rejectEarly(evidence, msg.receivedAtWall, msg.respond, null, overloaded());
      return;
    }
    const pending = precheck(record, evidence, now);
    const notBeforeMs = now - 60_000;
    const notAfterMs = now + policy.certificateLifetimeMs;
    const tbs =
      pending === null
        ? (['update', 'client'] as const).map((kind) =>
            buildDeviceTbs({
              issuer: tenant.ca,
              subjectPublicKey: kind === 'update' ? evidence.attestationPublicKey : evidence.clientPublicKey,
              deviceId: evidence.deviceId,
              tenantId: tenant.id,
              kind,
              serial: randomSerial((n) => ctx.rng.bytes(n)),
              notBeforeMs,
              notAfterMs,
            }),
          )
        : [];
    // The session lasts as long as the certificates; its key is wrapped for the device's client key.
    const session =
      pending === null ? ctx.sessions.issue(evidence.deviceId, notAfterMs, ctx.rng.bytes(8)) : null;
    const job: AttestJob = {
      ...msg,
      pending,
      tenant,
      notBeforeMs,
      notAfterMs,
      tbs,
      sessionId: session?.sessionId ?? null,
    };
    metrics.inflight.inc();
    ctx.crypto
      .verifyAndIssue({
        publicKey: record.attestationKey,
        data: msg.request.evidence,
        signature: msg.request.signature,
        tbs,
        caKeyId: tenant.ca.keyId,
        ...(session === null
          ? {}
          : {
              session: {
                key: session.key,
                clientPublicKey: evidence.clientPublicKey,
                ephemeralSecret: ctx.rng.bytes(32),
                salt: evidence.nonce,
                sessionId: session.sessionId,
              },
            }),
      })
      .then(
        (result) => self.tell({ type: 'partition.verified', job, result }),
        (e: unknown) => self.tell({ type: 'partition.verified', job, result: { error: String(e) } }),
      );
  }

  function handleVerified(
    state: PartitionState,
    msg: Extract<PartitionMessage, { type: 'partition.verified' }>,
  ): void {
    metrics.inflight.dec();
    ctx.admission.release(ctx.wallNow());
    const { job, result } = msg;
    const { evidence } = job;
    const record = state.devices.get(evidence.deviceId) ?? null;
    if ('error' in result) {
      // The service failed, not the device: nothing is recorded against it.
      finishAttest(job, null, {
        ok: false,
        error: { code: REJECT_CODES.INTERNAL, message: `crypto pool failed: ${result.error}; retry later` },
      });
      return;
    }
    if (!result.signatureValid) {
      finishAttest(job, null, {
        ok: false,
        error: {
          code: REJECT_CODES.BAD_SIGNATURE,
          message: 'evidence signature does not verify with the endorsed attestation key',
        },
      });
      return;
    }
    if (job.pending !== null || record === null) {
      // Signed evidence of a second live instance: quarantine the identity.
      if (job.pending?.code === REJECT_CODES.DUPLICATE_IDENTITY && record !== null) quarantine(record);
      finishAttest(job, record, {
        ok: false,
        error: job.pending ?? { code: REJECT_CODES.UNKNOWN_DEVICE, message: 'device disappeared' },
      });
      return;
    }
    // Authoritative checks, serialized with every other attestation of this partition.
    const now = clock.now();
    const nonce = nonces.consume(evidence.deviceId, evidence.nonce, now);
    if (nonce !== 'ok') {
      finishAttest(job, record, { ok: false, error: nonceRejection(nonce) });
      return;
    }
    const bootId = hex(evidence.bootId);
    if (isDuplicateIdentity(record, evidence, bootId)) {
      quarantine(record);
      finishAttest(job, record, { ok: false, error: duplicate(record, evidence) }, evidence.nonce);
      return;
    }
    const [updateSig, clientSig] = result.signatures;
    const [updateTbs, clientTbs] = job.tbs;
    const wrapped = result.session;
    if (
      updateSig === undefined ||
      clientSig === undefined ||
      updateTbs === undefined ||
      clientTbs === undefined ||
      wrapped === undefined ||
      job.sessionId === null
    ) {
      finishAttest(
        job,
        record,
        {
          ok: false,
          error: {
            code: REJECT_CODES.INTERNAL,
            message: 'crypto pool returned no certificate signatures; retry',
          },
        },
        evidence.nonce,
      );
      return;
    }
    const certificates = {
      update: assembleCertificate(updateTbs, updateSig),
      client: assembleCertificate(clientTbs, clientSig),
      notAfterMs: job.notAfterMs,
    };
    record.bootId = bootId;
    record.bootCount = evidence.bootCount;
    record.osVersion = evidence.osVersion;
    record.securityVersion = evidence.securityVersion;
    record.certificates = certificates;
    record.session = hex(job.sessionId);
    ctx.sessions.adopt(record.deviceId, record.session);
    metrics.certificatesIssued.inc({ kind: 'update' });
    metrics.certificatesIssued.inc({ kind: 'client' });
    finishAttest(
      job,
      record,
      {
        ok: true,
        value: {
          updateCertificate: certificates.update,
          clientCertificate: certificates.client,
          tenantCa: job.tenant.ca.certificateDer,
          notAfterMs: job.notAfterMs,
          session: { sessionId: job.sessionId, ...wrapped, expiresAtMs: job.notAfterMs },
        },
      },
      evidence.nonce,
    );
  }

  function duplicate(record: DeviceRecord, evidence: EvidenceMsg): Rejection {
    return {
      code: REJECT_CODES.DUPLICATE_IDENTITY,
      message: `boot ${evidence.bootCount} does not follow the accepted boot ${record.bootCount} of this identity: two devices share one key; the identity is quarantined`,
    };
  }

  /** Two live instances of one identity: no more certificates, and its session ends. */
  function quarantine(record: DeviceRecord): void {
    record.compromised = true;
    record.session = null;
    ctx.sessions.revoke(record.deviceId);
  }

  let self: { tell(msg: PartitionMessage): boolean };
  // The partition's records outlive a restart of its actor: they stand for durable state (in
  // memory until partitions move to JetStream), while everything else the actor holds is scratch.
  const devices = new DeviceRegistry();

  return {
    name: `partition:${partition}`,
    mailbox: { capacity: 20_000, overflow: 'reject' },
    init: (actorCtx) => {
      self = actorCtx.self;
      return { devices };
    },
    receive(state, msg) {
      switch (msg.type) {
        case 'partition.challenge': {
          if (!ctx.admission.hasRoom()) {
            const busy = overloaded();
            metrics.challenges.inc({ result: 'rejected', reason: busy.code });
            msg.respond({ ok: false, error: busy });
            return state;
          }
          const record = state.devices.get(msg.deviceId);
          const now = clock.now();
          if (record === undefined) {
            const r: Rejection = {
              code: REJECT_CODES.UNKNOWN_DEVICE,
              message: 'no endorsement for this device identity',
            };
            metrics.challenges.inc({ result: 'rejected', reason: r.code });
            alert(null, msg.deviceId, r, 'challenge');
            msg.respond({ ok: false, error: r });
            return state;
          }
          const issued = nonces.issue(msg.deviceId, now, ctx.rng.bytes(16));
          metrics.challenges.inc({ result: 'ok', reason: 'OK' });
          msg.respond({
            ok: true,
            value: { nonce: issued.nonce, issuedAtMs: Math.floor(now), expiresAtMs: issued.expiresAtMs },
          });
          return state;
        }
        case 'partition.attest':
          handleAttest(state, msg);
          return state;
        case 'partition.verified':
          handleVerified(state, msg);
          return state;
        case 'partition.heartbeat': {
          const record = state.devices.get(msg.heartbeat.deviceId);
          if (record === undefined || record.bootId !== hex(msg.heartbeat.bootId)) {
            metrics.heartbeats.inc({
              result: 'rejected',
              reason: record === undefined ? REJECT_CODES.UNKNOWN_DEVICE : 'UNKNOWN_BOOT',
            });
            return state;
          }
          record.lastSeenMs = clock.now();
          metrics.heartbeats.inc({ result: 'ok', reason: 'OK' });
          return state;
        }
        case 'partition.endorse': {
          let registered = 0;
          for (const d of msg.devices)
            if (state.devices.endorse(d.deviceId, d.publicKey, d.key)) registered++;
          msg.reply(registered, msg.devices.length - registered);
          return state;
        }
        case 'partition.claim': {
          const outcomes = msg.deviceIds.map((id): ClaimOutcome => {
            const record = state.devices.get(id);
            if (record === undefined) return 'not-endorsed';
            if (record.tenantId === msg.tenantId) return 'already-yours';
            if (record.tenantId !== null) return 'claimed-by-another';
            record.tenantId = msg.tenantId;
            ctx.deviceTenants.set(id, msg.tenantId);
            return 'claimed';
          });
          msg.reply(outcomes);
          return state;
        }
        case 'partition.assign':
          msg.reply(
            msg.deviceIds.map((id) => {
              const record = state.devices.get(id);
              if (record === undefined || record.tenantId !== msg.tenantId) return false;
              record.deviceGroupId = msg.deviceGroupId;
              return true;
            }),
          );
          return state;
        case 'partition.visit':
          msg.visit(state.devices);
          return state;
        case 'partition.replicate': {
          const now = clock.now();
          for (const snapshot of msg.devices) {
            const record = state.devices.get(snapshot.d as DeviceId);
            if (record === undefined) continue;
            applySnapshot(record, snapshot);
            if (record.compromised) ctx.sessions.revoke(record.deviceId);
            else ctx.sessions.adopt(record.deviceId, record.session);
            if (snapshot.nonce !== null) nonces.remember(unb64(snapshot.nonce), now);
          }
          msg.reply();
          return state;
        }
        default:
          return msg satisfies never;
      }
    },
  };
}

/** What a device is told when its partition moved to another shard while it was being served. */
function moved(partition: number): Rejection {
  return {
    code: REJECT_CODES.OVERLOADED,
    message: `partition ${partition} moved to another shard while this request was in flight; retry`,
  };
}

/** The part of a device record its partition's owner journals (see {@link DeviceSnapshot}). */
export function snapshotOf(r: DeviceRecord, consumedNonce: Uint8Array | null): DeviceSnapshot {
  return {
    d: r.deviceId,
    bootId: r.bootId ?? '',
    bootCount: r.bootCount,
    os: r.osVersion,
    sv: r.securityVersion,
    compromised: r.compromised,
    ok: r.attestationsOk,
    failed: r.attestationsFailed,
    seenMs: r.lastSeenMs,
    last: r.lastAttestation === null ? null : { ...r.lastAttestation },
    certs:
      r.certificates === null
        ? null
        : {
            update: b64(r.certificates.update),
            client: b64(r.certificates.client),
            notAfterMs: r.certificates.notAfterMs,
          },
    apps: r.apps,
    nonce: consumedNonce === null ? null : b64(consumedNonce),
    session: r.session,
  };
}

/** Sets a replica's record to what its owner journaled. */
export function applySnapshot(r: DeviceRecord, s: DeviceSnapshot): void {
  r.bootId = s.bootId === '' ? null : s.bootId;
  r.bootCount = s.bootCount;
  r.osVersion = s.os;
  r.securityVersion = s.sv;
  r.compromised = s.compromised;
  r.attestationsOk = s.ok;
  r.attestationsFailed = s.failed;
  r.lastSeenMs = s.seenMs;
  r.lastAttestation = s.last === null ? null : { ...s.last, code: s.last.code as AttestationOutcome['code'] };
  r.certificates =
    s.certs === null
      ? null
      : { update: unb64(s.certs.update), client: unb64(s.certs.client), notAfterMs: s.certs.notAfterMs };
  r.apps = { ...s.apps };
  r.session = s.compromised ? null : (s.session ?? null);
}

function nonceRejection(verdict: 'unknown' | 'stale' | 'reused'): Rejection {
  switch (verdict) {
    case 'unknown':
      return {
        code: REJECT_CODES.NONCE_UNKNOWN,
        message: 'nonce was not issued to this device by this service; request a new challenge',
      };
    case 'stale':
      return {
        code: REJECT_CODES.NONCE_STALE,
        message: 'nonce has expired; request a new challenge and submit within its time to live',
      };
    case 'reused':
      return {
        code: REJECT_CODES.NONCE_REUSED,
        message: 'nonce was already used: evidence is single-use; request a new challenge',
      };
  }
}
