/** Device identifiers, Azure Sphere style. */
import { createHash } from 'node:crypto';

const DEVICE_ID_RE = /^[0-9a-f]{128}$/;

/**
 * Device ID for a 65-byte uncompressed SEC1 P-256 public key:
 * lowercase hex of SHA-512(pub65), 128 characters. Curve membership is not checked here.
 * @throws RangeError when `pub65` is not 65 bytes starting with 0x04.
 */
export function deviceIdFromPublicKey(pub65: Uint8Array): string {
  if (pub65.length !== 65 || pub65[0] !== 0x04) {
    throw new RangeError('device public key must be 65-byte uncompressed SEC1 (0x04 prefix)');
  }
  return createHash('sha512').update(pub65).digest('hex');
}

/** True iff `s` is a well-formed device ID: exactly 128 lowercase hex characters. */
export function isDeviceId(s: unknown): s is string {
  return typeof s === 'string' && DEVICE_ID_RE.test(s);
}
