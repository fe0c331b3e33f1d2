/**
 * The bytes of the device-side attacks: genuine request bodies, sealed with the right session,
 * another device's, a made-up one or a guessed key; and messages the strict decoders must
 * refuse (garbage, cut short, a field of the wrong wire type, no session framing, oversize).
 * Pure: randomness comes from the caller's seeded {@link Rng}, the time from the caller.
 */
import { DeviceSession } from '../../actors/device/index.js';
import type { Rng } from '../../actors/runtime/index.js';
import {
  DEVICE_LIMITS,
  REQUEST_MAC_LENGTH,
  SESSION_ID_LENGTH,
  SESSION_KEY_LENGTH,
  encodeErrorReportUpload,
  encodeUpdateCheckRequest,
  encodeUpdateReport,
  parseDeploymentId,
} from '../../proto/codec/index.js';
import type { DeploymentId, DeviceId } from '../../proto/codec/index.js';
import type { AttackOp } from './plan.js';

/** The device operations whose requests are sealed with a session. */
export type SealedOp = Extract<AttackOp, 'update-check' | 'update-chunk' | 'update-report' | 'error-report'>;

/** True for operations whose requests travel in an AuthenticatedRequest. */
export function isSealedOp(op: AttackOp): op is SealedOp {
  return op === 'update-check' || op === 'update-chunk' || op === 'update-report' || op === 'error-report';
}

/** A deployment no tenant has: reports for it pass only if the session check let them through. */
export const NO_DEPLOYMENT = parseDeploymentId('d-0000000000000000') as DeploymentId;

/** What a device runs, as update checks state it. */
const INSTALLED = [
  { kind: 'os', name: 'azure-sphere-os', version: '25.10', securityVersion: 5 },
  { kind: 'app', name: 'blinky', version: '1.0.0', securityVersion: 1 },
] as const;

/**
 * A well-formed request body of `op` naming `deviceId` (what a genuine device would send), at
 * simulated time `nowMs`; `tag` makes report IDs unique.
 */
export function requestBody(op: SealedOp, deviceId: DeviceId, nowMs: number, tag: string): Uint8Array {
  const now = Math.max(0, Math.floor(nowMs));
  switch (op) {
    case 'update-check':
      return encodeUpdateCheckRequest({
        deviceId,
        trustedRootVersion: 1,
        installed: INSTALLED,
        deviceTimeMs: now,
      });
    case 'update-report':
      return encodeUpdateReport({
        deviceId,
        deploymentId: NO_DEPLOYMENT,
        reportId: `hostile-${tag}`,
        outcome: 'failed',
        code: 'INSTALL_FAILED',
        deviceTimeMs: now,
      });
    case 'error-report':
      return encodeErrorReportUpload({
        deviceId,
        reportId: `hostile-${tag}`,
        fromMs: Math.max(0, now - 3_600_000),
        toMs: now,
        events: [
          {
            kind: 'app-crash',
            component: 'blinky',
            version: '1.0.0',
            exitCode: 11,
            atMs: Math.max(0, now - 1_000),
            detail: 'planted by an attacker',
          },
        ],
        droppedEvents: 0,
        deviceTimeMs: now,
      });
    case 'update-chunk':
      throw new RangeError('hostile traffic sends no chunk requests');
    default:
      return op satisfies never;
  }
}

/** A session nobody issued: a random ID and key. */
export function madeUpSession(rng: Rng): DeviceSession {
  return new DeviceSession(rng.bytes(SESSION_ID_LENGTH), rng.bytes(SESSION_KEY_LENGTH), 0);
}

/** A real session ID under a guessed key (the attacker knows its ID, not the service's key for it). */
export function guessedKeySession(sessionId: Uint8Array, rng: Rng): DeviceSession {
  return new DeviceSession(sessionId, rng.bytes(SESSION_KEY_LENGTH), 0);
}

/** The malformed variants, each a message the strict decoders refuse. */
export type MalformedVariant = 'garbage' | 'truncated' | 'wrong-type' | 'unsealed' | 'oversize';

/** The most bytes a message on `op`'s subject may have. */
export function sizeLimit(op: AttackOp): number {
  switch (op) {
    case 'challenge':
      return DEVICE_LIMITS.challengeRequest;
    case 'attest':
      return DEVICE_LIMITS.attestRequest;
    case 'update-check':
      return DEVICE_LIMITS.updateCheckRequest + DEVICE_LIMITS.authenticatedOverhead;
    case 'update-chunk':
      return DEVICE_LIMITS.chunkRequest + DEVICE_LIMITS.authenticatedOverhead;
    case 'update-report':
      return DEVICE_LIMITS.updateReport + DEVICE_LIMITS.authenticatedOverhead;
    case 'error-report':
      return DEVICE_LIMITS.errorReport + DEVICE_LIMITS.authenticatedOverhead;
    default:
      return op satisfies never;
  }
}

/**
 * A message for `op`'s subject about `deviceId` that the service must refuse before any session
 * check: `garbage` (16 to 63 random bytes), `truncated` (a sealed request cut at a random point),
 * `wrong-type` (a sealed request whose body carries device_id as a varint), `unsealed` (a body
 * without its AuthenticatedRequest framing), `oversize` (random bytes 1 KiB over the limit).
 * Sealed variants use a made-up session: the bytes never get as far as its MAC.
 */
export function malformedMessage(
  variant: MalformedVariant,
  op: AttackOp,
  deviceId: DeviceId,
  nowMs: number,
  rng: Rng,
  tag: string,
): Uint8Array {
  const sealedOp: SealedOp = isSealedOp(op) ? op : 'update-check';
  switch (variant) {
    case 'garbage':
      return rng.bytes(16 + rng.int(48));
    case 'truncated': {
      const whole = madeUpSession(rng).seal(sealedOp, requestBody(sealedOp, deviceId, nowMs, tag));
      // Anywhere from the first byte to the last-but-one: at least the MAC is cut.
      const cut = 1 + rng.int(Math.max(1, whole.length - REQUEST_MAC_LENGTH - 1));
      return whole.slice(0, cut);
    }
    case 'wrong-type':
      return madeUpSession(rng).seal(
        sealedOp,
        withNumericDeviceId(requestBody(sealedOp, deviceId, nowMs, tag)),
      );
    case 'unsealed':
      return requestBody(sealedOp, deviceId, nowMs, tag);
    case 'oversize':
      return rng.bytes(sizeLimit(op) + 1024);
    default:
      return variant satisfies never;
  }
}

/**
 * `body` with its leading field 1 (device_id, a length-delimited string in every request) replaced
 * by a varint of the same field number: a field of the wrong wire type.
 */
export function withNumericDeviceId(body: Uint8Array): Uint8Array {
  if (body[0] !== 0x0a) throw new RangeError('the body does not start with field 1 (length-delimited)');
  let pos = 1;
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = body[pos++];
    if (byte === undefined) throw new RangeError('the body ends inside a length');
    length += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) break;
  }
  const rest = body.subarray(pos + length);
  const out = new Uint8Array(2 + rest.length);
  out.set([0x08, 0x2a]);
  out.set(rest, 2);
  return out;
}
