import {
  AttestReply,
  AttestRequest,
  ChallengeReply,
  ChallengeRequest,
  Evidence,
  Heartbeat,
  UpdateReport,
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
  reply: 16384,
  maxMeasurements: 40,
  maxStageName: 64,
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

export interface CertificatesMsg {
  readonly updateCertificate: Uint8Array;
  readonly clientCertificate: Uint8Array;
  readonly tenantCa: Uint8Array;
  readonly notAfterMs: number;
}

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
      ? { $case: 'certificates', value: { ...r.value, notAfterMs: ms(r.value.notAfterMs) } }
      : { $case: 'error', value: toErrorInfo(r.error) },
  });
}

export function decodeAttestReply(bytes: Uint8Array): DecodeResult<Reply<CertificatesMsg>> {
  return decodeWith(AttestReply, bytes, DEVICE_LIMITS.reply, 'AttestReply', (g) => {
    const result = g.result;
    if (result === undefined) return 'result is missing';
    if (result.$case === 'error') return { ok: false, error: fromErrorInfo(result.value) };
    const c = result.value;
    return {
      ok: true,
      value: {
        updateCertificate: c.updateCertificate,
        clientCertificate: c.clientCertificate,
        tenantCa: c.tenantCa,
        notAfterMs: c.notAfterMs,
      },
    };
  });
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
    if (deploymentId === null) return 'deployment_id must look like "d-" + 16 hex characters';
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
