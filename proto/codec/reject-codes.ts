/**
 * Machine-readable rejection codes shared by the device protocol, the operator API, metrics and
 * alerts. Each value is stable: dashboards and alert rules match on it.
 */
export const REJECT_CODES = {
  MALFORMED_INPUT: 'MALFORMED_INPUT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNKNOWN_DEVICE: 'UNKNOWN_DEVICE',
  DEVICE_NOT_CLAIMED: 'DEVICE_NOT_CLAIMED',
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  NONCE_UNKNOWN: 'NONCE_UNKNOWN',
  NONCE_STALE: 'NONCE_STALE',
  NONCE_REUSED: 'NONCE_REUSED',
  MEASUREMENT_MISMATCH: 'MEASUREMENT_MISMATCH',
  BELOW_MIN_VERSION: 'BELOW_MIN_VERSION',
  DUPLICATE_IDENTITY: 'DUPLICATE_IDENTITY',
  CLOCK_SKEW: 'CLOCK_SKEW',
  UNKNOWN_DEPLOYMENT: 'UNKNOWN_DEPLOYMENT',
  /** A chunk of a deployment's image asked by a device the deployment did not offer it to. */
  NOT_OFFERED: 'NOT_OFFERED',
  /** A chunk request outside the image (offset or length past its end). */
  OUT_OF_RANGE: 'OUT_OF_RANGE',
  /** Alerts only: a device refused an update's metadata or image (the alert's evidence.code says why). */
  UPDATE_VERIFICATION_FAILED: 'UPDATE_VERIFICATION_FAILED',
  /** The session's time is up, or a newer attestation replaced it: attest again. */
  SESSION_EXPIRED: 'SESSION_EXPIRED',
  /** The request's MAC does not match its session key: forged, altered, or another device's. */
  BAD_MAC: 'BAD_MAC',
  /** A request counter the service already saw in this session: a replay. */
  REPLAYED: 'REPLAYED',
  /** A session of one device used for another device's request: an impersonation attempt. */
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  /** The device sent more requests than its rate allows; retry after `retry_after_ms`. */
  RATE_LIMITED: 'RATE_LIMITED',
  OVERLOADED: 'OVERLOADED',
  INTERNAL: 'INTERNAL',
} as const;
export type RejectCode = (typeof REJECT_CODES)[keyof typeof REJECT_CODES];

const ALL = new Set<string>(Object.values(REJECT_CODES));

/** Narrows a decoded string to a known code; unknown codes read as INTERNAL. */
export function asRejectCode(s: string): RejectCode {
  return ALL.has(s) ? (s as RejectCode) : REJECT_CODES.INTERNAL;
}

/** A typed rejection as it crosses a process boundary. */
export interface Rejection {
  readonly code: RejectCode;
  readonly message: string;
  /** Earliest simulated time a retry can succeed, when the service knows one. */
  readonly retryAfterMs?: number;
  /** Service clock at rejection (lets a device with a wrong clock resynchronise). */
  readonly serviceTimeMs?: number;
}
