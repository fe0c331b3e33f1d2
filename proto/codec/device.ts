import {
  AttestReply,
  AttestRequest,
  ChallengeReply,
  ChallengeRequest,
  Evidence,
  Heartbeat,
  ChunkReply,
  ChunkRequest,
  UpdateCheckReply,
  UpdateCheckRequest,
  UpdateReport,
  UpdateReportReply,
  AuthenticatedRequest,
  ErrorReportUpload,
  ErrorReportReply,
} from '../gen/sphere/device/v1/device.js';
import type { ErrorInfo } from '../gen/sphere/device/v1/device.js';
import { decodeStrict, encodeMessage } from './strict.js';
import type { MessageFns } from './strict.js';
import { parseDeploymentId, parseDeviceId } from './ids.js';
import type { DeploymentId, DeviceId } from './ids.js';
import { REJECT_CODES, asRejectCode } from './reject-codes.js';
import type { Rejection } from './reject-codes.js';

/** Size limits of the device protocol, in bytes (checked before decoding). */
export const DEVICE_LIMITS = {
  challengeRequest: 256,
  attestRequest: 8192,
  evidence: 6144,
  heartbeat: 256,
  updateReport: 512,
  updateCheckRequest: 4096,
  /** TUF metadata grows with a tenant's images; NATS' default max payload is 1 MiB. */
  updateCheckReply: 768 * 1024,
  chunkRequest: 512,
  /** Largest chunk a device may ask for (the reply adds a few bytes of framing). */
  maxChunk: 512 * 1024,
  maxInstalled: 32,
  maxOffers: 16,
  maxRoots: 16,
  reply: 16384,
  maxMeasurements: 40,
  maxStageName: 64,
  /** The session framing an authenticated request adds to its body. */
  authenticatedOverhead: 64,
  /** 1,000 events of at most ~300 bytes each. */
  errorReport: 320 * 1024,
  maxErrorEvents: 1000,
  maxErrorDetail: 200,
} as const;

export const NONCE_BYTES = 32;
export const BOOT_ID_BYTES = 16;
export const DIGEST_BYTES = 32;
export const PUBLIC_KEY_BYTES = 65;
export const SIGNATURE_BYTES = 64;

export interface ChallengeRequestMsg {
  readonly deviceId: DeviceId;
}

export interface ChallengeMsg {
  readonly nonce: Uint8Array;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

export interface MeasurementMsg {
  readonly stage: string;
  readonly digest: Uint8Array;
}

/** What the security core signs (see device.proto `Evidence`). */
export interface EvidenceMsg {
  readonly deviceId: DeviceId;
  readonly nonce: Uint8Array;
  readonly measurements: readonly MeasurementMsg[];
  readonly measurementChain: Uint8Array;
  readonly osVersion: string;
  readonly securityVersion: number;
  readonly deviceTimeMs: number;
  readonly bootId: Uint8Array;
  readonly bootCount: number;
  readonly attestationPublicKey: Uint8Array;
  readonly clientPublicKey: Uint8Array;
}

export interface AttestRequestMsg {
  /** Encoded EvidenceMsg: the exact bytes that were signed. */
  readonly evidence: Uint8Array;
  readonly signature: Uint8Array;
}

/** The session a successful attestation opens (see actors/crypto/session.ts). */
export interface SessionMsg {
  readonly sessionId: Uint8Array;
  readonly serverPublicKey: Uint8Array;
  readonly wrappedKey: Uint8Array;
  readonly expiresAtMs: number;
}

export interface CertificatesMsg {
  readonly updateCertificate: Uint8Array;
  readonly clientCertificate: Uint8Array;
  readonly tenantCa: Uint8Array;
  readonly notAfterMs: number;
  readonly session: SessionMsg;
}

/** A request bound to the device's session; `body` is the encoded inner request. */
export interface AuthenticatedRequestMsg {
  readonly body: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly counter: number;
  readonly mac: Uint8Array;
}

export const SESSION_ID_LENGTH = 16;
export const SESSION_KEY_LENGTH = 32;
export const REQUEST_MAC_LENGTH = 16;

export interface HeartbeatMsg {
  readonly deviceId: DeviceId;
  readonly bootId: Uint8Array;
  readonly deviceTimeMs: number;
}

/** Either the value or a typed rejection, as carried in a reply's `oneof result`. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: Rejection };

/** Result of decoding bytes from the wire; the rejection is what to answer the sender. */
export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: Rejection };

function decodeWith<G extends object, T>(
  fns: MessageFns<G>,
  bytes: Uint8Array,
  maxBytes: number,
  what: string,
  convert: (g: G) => T | string,
): DecodeResult<T> {
  const decoded = decodeStrict(fns, bytes, maxBytes, what);
  if (!decoded.ok) {
    const code =
      decoded.error.kind === 'too-large' ? REJECT_CODES.PAYLOAD_TOO_LARGE : REJECT_CODES.MALFORMED_INPUT;
    return { ok: false, error: { code, message: decoded.error.reason } };
  }
  const converted = convert(decoded.value);
  if (typeof converted === 'string') {
    return { ok: false, error: { code: REJECT_CODES.MALFORMED_INPUT, message: `${what}: ${converted}` } };
  }
  return { ok: true, value: converted };
}

function deviceIdProblem(s: string): string {
  return `device_id must be 128 lowercase hex characters, got ${s.length} characters`;
}

function bytesProblem(name: string, b: Uint8Array, length: number): string | undefined {
  return b.length === length ? undefined : `${name} must be ${length} bytes, got ${b.length}`;
}

function pointProblem(name: string, b: Uint8Array): string | undefined {
  return (
    bytesProblem(name, b, PUBLIC_KEY_BYTES) ??
    (b[0] === 4 ? undefined : `${name} must be an uncompressed SEC1 point (0x04 prefix)`)
  );
}

/** int64 fields carry whole milliseconds; simulated clocks return fractions. */
const ms = (n: number): number => Math.floor(n);

export function encodeChallengeRequest(m: ChallengeRequestMsg): Uint8Array {
  return encodeMessage(ChallengeRequest, { deviceId: m.deviceId });
}

export function decodeChallengeRequest(bytes: Uint8Array): DecodeResult<ChallengeRequestMsg> {
  return decodeWith(ChallengeRequest, bytes, DEVICE_LIMITS.challengeRequest, 'ChallengeRequest', (g) => {
    const id = parseDeviceId(g.deviceId);
    return id === null ? deviceIdProblem(g.deviceId) : { deviceId: id };
  });
}

function toErrorInfo(r: Rejection): ErrorInfo {
  return {
    code: r.code,
    message: r.message,
    retryAfterMs: ms(r.retryAfterMs ?? 0),
    serviceTimeMs: ms(r.serviceTimeMs ?? 0),
  };
}

function fromErrorInfo(e: ErrorInfo): Rejection {
  return {
    code: asRejectCode(e.code),
    message: e.message,
    ...(e.retryAfterMs > 0 ? { retryAfterMs: e.retryAfterMs } : {}),
    ...(e.serviceTimeMs > 0 ? { serviceTimeMs: e.serviceTimeMs } : {}),
  };
}

export function encodeChallengeReply(r: Reply<ChallengeMsg>): Uint8Array {
  return encodeMessage(ChallengeReply, {
    result: r.ok
      ? {
          $case: 'challenge',
          value: {
            nonce: r.value.nonce,
            issuedAtMs: ms(r.value.issuedAtMs),
            expiresAtMs: ms(r.value.expiresAtMs),
          },
        }
      : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeChallengeReply(bytes: Uint8Array): DecodeResult<Reply<ChallengeMsg>> {
  return decodeWith(ChallengeReply, bytes, DEVICE_LIMITS.reply, 'ChallengeReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    const c = result.value;
    const problem = bytesProblem('nonce', c.nonce, NONCE_BYTES);
    if (problem !== undefined) return problem;
    return { ok: true, value: { nonce: c.nonce, issuedAtMs: c.issuedAtMs, expiresAtMs: c.expiresAtMs } };
  });
}

export function encodeEvidence(e: EvidenceMsg): Uint8Array {
  return encodeMessage(Evidence, {
    deviceId: e.deviceId,
    nonce: e.nonce,
    measurements: e.measurements.map((m) => ({ stage: m.stage, digest: m.digest })),
    measurementChain: e.measurementChain,
    osVersion: e.osVersion,
    securityVersion: e.securityVersion,
    deviceTimeMs: ms(e.deviceTimeMs),
    bootId: e.bootId,
    bootCount: e.bootCount,
    attestationPublicKey: e.attestationPublicKey,
    clientPublicKey: e.clientPublicKey,
  });
}

export function decodeEvidence(bytes: Uint8Array): DecodeResult<EvidenceMsg> {
  return decodeWith(Evidence, bytes, DEVICE_LIMITS.evidence, 'Evidence', (g) => {
    const id = parseDeviceId(g.deviceId);
    if (id === null) return deviceIdProblem(g.deviceId);
    if (g.measurements.length === 0 || g.measurements.length > DEVICE_LIMITS.maxMeasurements) {
      return `measurements must hold 1 to ${DEVICE_LIMITS.maxMeasurements} entries, got ${g.measurements.length}`;
    }
    for (const [i, m] of g.measurements.entries()) {
      if (m.stage.length === 0 || m.stage.length > DEVICE_LIMITS.maxStageName) {
        return `measurements[${i}].stage must be 1 to ${DEVICE_LIMITS.maxStageName} characters`;
      }
      const p = bytesProblem(`measurements[${i}].digest`, m.digest, DIGEST_BYTES);
      if (p !== undefined) return p;
    }
    const problem =
      bytesProblem('nonce', g.nonce, NONCE_BYTES) ??
      bytesProblem('measurement_chain', g.measurementChain, DIGEST_BYTES) ??
      bytesProblem('boot_id', g.bootId, BOOT_ID_BYTES) ??
      pointProblem('attestation_public_key', g.attestationPublicKey) ??
      pointProblem('client_public_key', g.clientPublicKey) ??
      (/^\d{1,3}\.\d{1,3}$/.test(g.osVersion)
        ? undefined
        : `os_version must look like "25.10", got "${g.osVersion.slice(0, 20)}"`);
    if (problem !== undefined) return problem;
    return {
      deviceId: id,
      nonce: g.nonce,
      measurements: g.measurements.map((m) => ({ stage: m.stage, digest: m.digest })),
      measurementChain: g.measurementChain,
      osVersion: g.osVersion,
      securityVersion: g.securityVersion,
      deviceTimeMs: g.deviceTimeMs,
      bootId: g.bootId,
      bootCount: g.bootCount,
      attestationPublicKey: g.attestationPublicKey,
      clientPublicKey: g.clientPublicKey,
    };
  });
}

export function encodeAttestRequest(m: AttestRequestMsg): Uint8Array {
  return encodeMessage(AttestRequest, { evidence: m.evidence, signature: m.signature });
}

/** Decodes the envelope and the evidence inside it, returning both (the raw bytes are what was signed). */
export function decodeAttestRequest(
  bytes: Uint8Array,
): DecodeResult<{ request: AttestRequestMsg; evidence: EvidenceMsg }> {
  const outer = decodeWith(AttestRequest, bytes, DEVICE_LIMITS.attestRequest, 'AttestRequest', (g) => {
    const p = bytesProblem('signature', g.signature, SIGNATURE_BYTES);
    return p ?? { evidence: g.evidence, signature: g.signature };
  });
  if (!outer.ok) return outer;
  const evidence = decodeEvidence(outer.value.evidence);
  if (!evidence.ok) return evidence;
  return { ok: true, value: { request: outer.value, evidence: evidence.value } };
}

export function encodeAttestReply(r: Reply<CertificatesMsg>): Uint8Array {
  return encodeMessage(AttestReply, {
    result: r.ok
      ? {
          $case: 'certificates',
          value: {
            ...r.value,
            notAfterMs: ms(r.value.notAfterMs),
            session: { ...r.value.session, expiresAtMs: ms(r.value.session.expiresAtMs) },
          },
        }
      : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeAttestReply(bytes: Uint8Array): DecodeResult<Reply<CertificatesMsg>> {
  return decodeWith(AttestReply, bytes, DEVICE_LIMITS.reply, 'AttestReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    const c = result.value;
    const session = c.session;
    if (session === undefined) return 'session is missing';
    const problem =
      bytesProblem('session.session_id', session.sessionId, SESSION_ID_LENGTH) ??
      pointProblem('session.server_public_key', session.serverPublicKey) ??
      bytesProblem('session.wrapped_key', session.wrappedKey, SESSION_KEY_LENGTH);
    if (problem !== undefined) return problem;
    return {
      ok: true,
      value: {
        updateCertificate: c.updateCertificate,
        clientCertificate: c.clientCertificate,
        tenantCa: c.tenantCa,
        notAfterMs: c.notAfterMs,
        // Field by field: a spread would carry the generated object's internals (`_unknownFields`).
        session: {
          sessionId: session.sessionId,
          serverPublicKey: session.serverPublicKey,
          wrappedKey: session.wrappedKey,
          expiresAtMs: session.expiresAtMs,
        },
      },
    };
  });
}

export function encodeAuthenticatedRequest(m: AuthenticatedRequestMsg): Uint8Array {
  return encodeMessage(AuthenticatedRequest, { ...m });
}

/**
 * Decodes the session framing of a request whose body may be at most `maxBody` bytes. The body
 * is returned undecoded: its MAC is checked first, then the caller decodes it.
 */
export function decodeAuthenticatedRequest(
  bytes: Uint8Array,
  maxBody: number,
): DecodeResult<AuthenticatedRequestMsg> {
  return decodeWith(
    AuthenticatedRequest,
    bytes,
    maxBody + DEVICE_LIMITS.authenticatedOverhead,
    'AuthenticatedRequest',
    (g) => {
      const problem =
        bytesProblem('session_id', g.sessionId, SESSION_ID_LENGTH) ??
        bytesProblem('mac', g.mac, REQUEST_MAC_LENGTH) ??
        (g.body.length === 0 ? 'body is empty' : undefined) ??
        (g.body.length > maxBody
          ? `body must be at most ${maxBody} bytes, got ${g.body.length}`
          : undefined) ??
        (Number.isSafeInteger(g.counter) && g.counter > 0 ? undefined : 'counter must be a positive integer');
      return problem ?? { body: g.body, sessionId: g.sessionId, counter: g.counter, mac: g.mac };
    },
  );
}

export function encodeHeartbeat(m: HeartbeatMsg): Uint8Array {
  return encodeMessage(Heartbeat, {
    deviceId: m.deviceId,
    bootId: m.bootId,
    deviceTimeMs: ms(m.deviceTimeMs),
  });
}

export function decodeHeartbeat(bytes: Uint8Array): DecodeResult<HeartbeatMsg> {
  return decodeWith(Heartbeat, bytes, DEVICE_LIMITS.heartbeat, 'Heartbeat', (g) => {
    const id = parseDeviceId(g.deviceId);
    if (id === null) return deviceIdProblem(g.deviceId);
    const p = bytesProblem('boot_id', g.bootId, BOOT_ID_BYTES);
    return p ?? { deviceId: id, bootId: g.bootId, deviceTimeMs: g.deviceTimeMs };
  });
}

/** Outcomes a device reports about an update (the rollout engine's vocabulary). */
export const UPDATE_REPORT_OUTCOMES = [
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled-back',
] as const;
export type UpdateReportOutcome = (typeof UPDATE_REPORT_OUTCOMES)[number];

export interface UpdateReportMsg {
  readonly deviceId: DeviceId;
  readonly deploymentId: DeploymentId;
  /** Stable per (offer, attempt, outcome): a repeated ID is a duplicate delivery. */
  readonly reportId: string;
  readonly outcome: UpdateReportOutcome;
  /** Why a failed or rolled-back outcome happened; empty otherwise. */
  readonly code: string;
  readonly deviceTimeMs: number;
}

export function encodeUpdateReport(m: UpdateReportMsg): Uint8Array {
  return encodeMessage(UpdateReport, { ...m, deviceTimeMs: ms(m.deviceTimeMs) });
}

export function decodeUpdateReport(bytes: Uint8Array): DecodeResult<UpdateReportMsg> {
  return decodeWith(UpdateReport, bytes, DEVICE_LIMITS.updateReport, 'UpdateReport', (g) => {
    const deviceId = parseDeviceId(g.deviceId);
    if (deviceId === null) return deviceIdProblem(g.deviceId);
    const deploymentId = parseDeploymentId(g.deploymentId);
    if (deploymentId === null) return deploymentIdProblem(g.deploymentId);
    if (g.reportId.length === 0 || g.reportId.length > 128) return 'report_id must be 1 to 128 characters';
    const outcome = UPDATE_REPORT_OUTCOMES.find((o) => o === g.outcome);
    if (outcome === undefined) return `outcome must be one of ${UPDATE_REPORT_OUTCOMES.join(', ')}`;
    if (g.code.length > 64) return 'code must be at most 64 characters';
    return {
      deviceId,
      deploymentId,
      reportId: g.reportId,
      outcome,
      code: g.code,
      deviceTimeMs: g.deviceTimeMs,
    };
  });
}

/** One component a device runs; `kind` is `os` or `app`. */
export interface InstalledComponentMsg {
  readonly kind: 'os' | 'app';
  readonly name: string;
  readonly version: string;
  readonly securityVersion: number;
}

export interface UpdateCheckRequestMsg {
  readonly deviceId: DeviceId;
  readonly trustedRootVersion: number;
  readonly installed: readonly InstalledComponentMsg[];
  readonly deviceTimeMs: number;
}

export interface UpdateOfferMsg extends InstalledComponentMsg {
  readonly deploymentId: DeploymentId;
  readonly targetName: string;
  readonly length: number;
  readonly chunkSize: number;
}

/** Exact TUF JSON bytes, as signed. */
export interface TufMetadataMsg {
  readonly roots: readonly Uint8Array[];
  readonly timestamp: Uint8Array;
  readonly snapshot: Uint8Array;
  readonly targets: Uint8Array;
}

export interface UpdateCheckMsg {
  readonly offers: readonly UpdateOfferMsg[];
  readonly rollbacks: readonly DeploymentId[];
  readonly metadata: TufMetadataMsg;
}

export interface ChunkRequestMsg {
  readonly deviceId: DeviceId;
  readonly deploymentId: DeploymentId;
  readonly offset: number;
  readonly length: number;
}

export interface ChunkMsg {
  readonly offset: number;
  readonly data: Uint8Array;
}

const COMPONENT_KINDS = ['os', 'app'] as const;
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/;

function componentProblem(
  where: string,
  c: { kind: string; name: string; version: string },
): string | undefined {
  if (!COMPONENT_KINDS.some((k) => k === c.kind)) return `${where}.kind must be "os" or "app"`;
  if (!NAME.test(c.name)) return `${where}.name must be 1 to 64 characters of a-z, 0-9, ".", "_" and "-"`;
  if (!VERSION.test(c.version)) return `${where}.version must be 1 to 32 characters like "1.2.0"`;
  return undefined;
}

function deploymentIdProblem(s: string): string {
  return `deployment_id must look like "d-" + 16 hex characters, got "${s.slice(0, 24)}"`;
}

export function encodeUpdateCheckRequest(m: UpdateCheckRequestMsg): Uint8Array {
  return encodeMessage(UpdateCheckRequest, {
    deviceId: m.deviceId,
    trustedRootVersion: m.trustedRootVersion,
    installed: m.installed.map((c) => ({ ...c })),
    deviceTimeMs: ms(m.deviceTimeMs),
  });
}

export function decodeUpdateCheckRequest(bytes: Uint8Array): DecodeResult<UpdateCheckRequestMsg> {
  return decodeWith(
    UpdateCheckRequest,
    bytes,
    DEVICE_LIMITS.updateCheckRequest,
    'UpdateCheckRequest',
    (g) => {
      const deviceId = parseDeviceId(g.deviceId);
      if (deviceId === null) return deviceIdProblem(g.deviceId);
      if (g.installed.length > DEVICE_LIMITS.maxInstalled)
        return `installed must hold at most ${DEVICE_LIMITS.maxInstalled} components, got ${g.installed.length}`;
      const installed: InstalledComponentMsg[] = [];
      for (const [i, c] of g.installed.entries()) {
        const p = componentProblem(`installed[${i}]`, c);
        if (p !== undefined) return p;
        installed.push({
          kind: c.kind === 'os' ? 'os' : 'app',
          name: c.name,
          version: c.version,
          securityVersion: c.securityVersion,
        });
      }
      return { deviceId, trustedRootVersion: g.trustedRootVersion, installed, deviceTimeMs: g.deviceTimeMs };
    },
  );
}

export function encodeUpdateCheckReply(r: Reply<UpdateCheckMsg>): Uint8Array {
  return encodeMessage(UpdateCheckReply, {
    result: r.ok
      ? {
          $case: 'check',
          value: {
            offers: r.value.offers.map((o) => ({ ...o })),
            rollbacks: [...r.value.rollbacks],
            metadata: { ...r.value.metadata, roots: [...r.value.metadata.roots] },
          },
        }
      : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeUpdateCheckReply(bytes: Uint8Array): DecodeResult<Reply<UpdateCheckMsg>> {
  return decodeWith(UpdateCheckReply, bytes, DEVICE_LIMITS.updateCheckReply, 'UpdateCheckReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    const c = result.value;
    if (c.offers.length > DEVICE_LIMITS.maxOffers)
      return `offers must hold at most ${DEVICE_LIMITS.maxOffers}`;
    const offers: UpdateOfferMsg[] = [];
    for (const [i, o] of c.offers.entries()) {
      const p = componentProblem(`offers[${i}]`, o);
      if (p !== undefined) return p;
      const deploymentId = parseDeploymentId(o.deploymentId);
      if (deploymentId === null) return `offers[${i}].${deploymentIdProblem(o.deploymentId)}`;
      if (o.chunkSize === 0 || o.chunkSize > DEVICE_LIMITS.maxChunk)
        return `offers[${i}].chunk_size must be 1 to ${DEVICE_LIMITS.maxChunk}`;
      offers.push({
        kind: o.kind === 'os' ? 'os' : 'app',
        name: o.name,
        version: o.version,
        securityVersion: o.securityVersion,
        deploymentId,
        targetName: o.targetName,
        length: o.length,
        chunkSize: o.chunkSize,
      });
    }
    const rollbacks: DeploymentId[] = [];
    for (const [i, s] of c.rollbacks.entries()) {
      const id = parseDeploymentId(s);
      if (id === null) return `rollbacks[${i}]: ${deploymentIdProblem(s)}`;
      rollbacks.push(id);
    }
    const md = c.metadata;
    if (md === undefined) return 'metadata is missing';
    if (md.roots.length > DEVICE_LIMITS.maxRoots)
      return `metadata.roots must hold at most ${DEVICE_LIMITS.maxRoots}`;
    return {
      ok: true,
      value: {
        offers,
        rollbacks,
        metadata: { roots: md.roots, timestamp: md.timestamp, snapshot: md.snapshot, targets: md.targets },
      },
    };
  });
}

export function encodeChunkRequest(m: ChunkRequestMsg): Uint8Array {
  return encodeMessage(ChunkRequest, { ...m });
}

export function decodeChunkRequest(bytes: Uint8Array): DecodeResult<ChunkRequestMsg> {
  return decodeWith(ChunkRequest, bytes, DEVICE_LIMITS.chunkRequest, 'ChunkRequest', (g) => {
    const deviceId = parseDeviceId(g.deviceId);
    if (deviceId === null) return deviceIdProblem(g.deviceId);
    const deploymentId = parseDeploymentId(g.deploymentId);
    if (deploymentId === null) return deploymentIdProblem(g.deploymentId);
    if (g.length === 0 || g.length > DEVICE_LIMITS.maxChunk)
      return `length must be 1 to ${DEVICE_LIMITS.maxChunk} bytes, got ${g.length}`;
    if (!Number.isSafeInteger(g.offset)) return 'offset is out of range';
    return { deviceId, deploymentId, offset: g.offset, length: g.length };
  });
}

export function encodeChunkReply(r: Reply<ChunkMsg>): Uint8Array {
  return encodeMessage(ChunkReply, {
    result: r.ok
      ? { $case: 'chunk', value: { ...r.value } }
      : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeChunkReply(bytes: Uint8Array): DecodeResult<Reply<ChunkMsg>> {
  return decodeWith(ChunkReply, bytes, DEVICE_LIMITS.maxChunk + 1024, 'ChunkReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    return { ok: true, value: { offset: result.value.offset, data: result.value.data } };
  });
}

export function encodeUpdateReportReply(r: Reply<{ reportId: string }>): Uint8Array {
  return encodeMessage(UpdateReportReply, {
    result: r.ok
      ? { $case: 'ack', value: { reportId: r.value.reportId } }
      : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeUpdateReportReply(bytes: Uint8Array): DecodeResult<Reply<{ reportId: string }>> {
  return decodeWith(UpdateReportReply, bytes, DEVICE_LIMITS.reply, 'UpdateReportReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    return { ok: true, value: { reportId: result.value.reportId } };
  });
}

/** Kinds of events in an error report. */
export const ERROR_EVENT_KINDS = [
  'app-crash',
  'app-exit',
  'os-crash',
  'update-failed',
  'attestation-failed',
] as const;
export type ErrorEventKind = (typeof ERROR_EVENT_KINDS)[number];

export interface ErrorEventMsg {
  readonly kind: ErrorEventKind;
  /** `os` or the app's name. */
  readonly component: string;
  readonly version: string;
  /** 0-255; 0 when the kind has none. */
  readonly exitCode: number;
  readonly atMs: number;
  readonly detail: string;
}

export interface ErrorReportUploadMsg {
  readonly deviceId: DeviceId;
  readonly reportId: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly events: readonly ErrorEventMsg[];
  readonly droppedEvents: number;
  readonly deviceTimeMs: number;
}

/** The most a report may span (Azure Sphere's limit: 14 days). */
export const MAX_ERROR_REPORT_SPAN_MS = 14 * 24 * 3600 * 1000;
const REPORT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function encodeErrorReportUpload(m: ErrorReportUploadMsg): Uint8Array {
  return encodeMessage(ErrorReportUpload, {
    deviceId: m.deviceId,
    reportId: m.reportId,
    fromMs: ms(m.fromMs),
    toMs: ms(m.toMs),
    events: m.events.map((e) => ({ ...e, atMs: ms(e.atMs) })),
    droppedEvents: m.droppedEvents,
    deviceTimeMs: ms(m.deviceTimeMs),
  });
}

export function decodeErrorReportUpload(bytes: Uint8Array): DecodeResult<ErrorReportUploadMsg> {
  return decodeWith(ErrorReportUpload, bytes, DEVICE_LIMITS.errorReport, 'ErrorReportUpload', (g) => {
    const deviceId = parseDeviceId(g.deviceId);
    if (deviceId === null) return deviceIdProblem(g.deviceId);
    if (!REPORT_ID.test(g.reportId))
      return 'report_id must be 1 to 128 characters of A-Z, a-z, 0-9, ".", "_", ":" and "-"';
    if (g.toMs < g.fromMs) return 'to_ms must not be before from_ms';
    if (g.toMs - g.fromMs > MAX_ERROR_REPORT_SPAN_MS) return 'a report spans at most 14 days; split it';
    if (g.events.length > DEVICE_LIMITS.maxErrorEvents)
      return `a report holds at most ${DEVICE_LIMITS.maxErrorEvents} events, got ${g.events.length}; split it`;
    const events: ErrorEventMsg[] = [];
    for (const [i, e] of g.events.entries()) {
      const kind = ERROR_EVENT_KINDS.find((k) => k === e.kind);
      if (kind === undefined) return `events[${i}].kind must be one of ${ERROR_EVENT_KINDS.join(', ')}`;
      if (e.component !== 'os' && !NAME.test(e.component))
        return `events[${i}].component must be "os" or an app name (a-z, 0-9, ".", "_", "-")`;
      if (!VERSION.test(e.version)) return `events[${i}].version must be 1 to 32 characters like "1.2.0"`;
      if (e.exitCode > 255) return `events[${i}].exit_code must be 0 to 255, got ${e.exitCode}`;
      if (e.atMs < g.fromMs || e.atMs > g.toMs) return `events[${i}].at_ms must lie within from_ms..to_ms`;
      if (e.detail.length > DEVICE_LIMITS.maxErrorDetail)
        return `events[${i}].detail must be at most ${DEVICE_LIMITS.maxErrorDetail} characters`;
      events.push({
        kind,
        component: e.component,
        version: e.version,
        exitCode: e.exitCode,
        atMs: e.atMs,
        detail: e.detail,
      });
    }
    return {
      deviceId,
      reportId: g.reportId,
      fromMs: g.fromMs,
      toMs: g.toMs,
      events,
      droppedEvents: g.droppedEvents,
      deviceTimeMs: g.deviceTimeMs,
    };
  });
}

export interface ErrorReportAckMsg {
  readonly reportId: string;
  readonly duplicate: boolean;
}

export function encodeErrorReportReply(r: Reply<ErrorReportAckMsg>): Uint8Array {
  return encodeMessage(ErrorReportReply, {
    result: r.ok ? { $case: 'ack', value: { ...r.value } } : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeErrorReportReply(bytes: Uint8Array): DecodeResult<Reply<ErrorReportAckMsg>> {
  return decodeWith(ErrorReportReply, bytes, DEVICE_LIMITS.reply, 'ErrorReportReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    return { ok: true, value: { reportId: result.value.reportId, duplicate: result.value.duplicate } };
  });
}
