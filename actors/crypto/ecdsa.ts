/**
 * ECDSA P-256 / SHA-256 sign and verify, native (OpenSSL via node:crypto) and
 * pure-JS (@noble/curves) variants that interoperate byte for byte.
 *
 * Verification functions never throw: any malformed input yields `false`.
 * Both implementations accept high-S signatures, because OpenSSL/Node produce them.
 */
import { sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';

/** Length of an IEEE P1363 (r || s) P-256 signature. */
export const P1363_SIGNATURE_LENGTH = 64;

/** Signs SHA-256(data) with a native key; 64-byte r||s (random k, S may be high). */
export function signP1363(key: KeyObject, data: Uint8Array): Uint8Array {
  return nodeSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
}

/** Verifies a 64-byte r||s signature over SHA-256(data); false (never throws) on any bad input. */
export function verifyP1363(key: KeyObject, data: Uint8Array, sig: Uint8Array): boolean {
  if (!(sig instanceof Uint8Array) || sig.length !== P1363_SIGNATURE_LENGTH) return false;
  try {
    return nodeVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}

/** Signs SHA-256(data) with a native key, returning a DER ECDSA-Sig-Value (as X.509 uses). */
export function signDer(key: KeyObject, data: Uint8Array): Uint8Array {
  return nodeSign('sha256', data, { key, dsaEncoding: 'der' });
}

/** Verifies a DER ECDSA-Sig-Value over SHA-256(data) (strict DER); never throws. */
export function verifyDer(key: KeyObject, data: Uint8Array, sig: Uint8Array): boolean {
  if (!(sig instanceof Uint8Array)) return false;
  try {
    return nodeVerify('sha256', data, { key, dsaEncoding: 'der' }, sig);
  } catch {
    return false;
  }
}

/**
 * Pure-JS signature: SHA-256(data) signed with scalar `d` (32 bytes), RFC 6979
 * deterministic k, low-S normalised; returns 64-byte r||s.
 * @throws if `d` is not a valid P-256 scalar.
 */
export function nobleSignP1363(d: Uint8Array, data: Uint8Array): Uint8Array {
  return p256.sign(data, d, { prehash: true, lowS: true, format: 'compact' });
}

/**
 * Pure-JS verification of a 64-byte r||s signature over SHA-256(data) against
 * a 65-byte uncompressed public key. High-S accepted (`lowS: false`). Never throws.
 */
export function nobleVerifyP1363(pub65: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean {
  if (!(sig instanceof Uint8Array) || sig.length !== P1363_SIGNATURE_LENGTH) return false;
  if (!(pub65 instanceof Uint8Array) || pub65.length !== 65 || pub65[0] !== 0x04) return false;
  try {
    return p256.verify(sig, data, pub65, { prehash: true, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}

/**
 * Pure-JS verification of a DER ECDSA-Sig-Value over SHA-256(data).
 * High-S accepted. Never throws. Besides noble's own parser, the signature is
 * required to be canonical DER: it must re-encode to exactly the same bytes
 * (rejects BER variants such as long-form lengths or superfluous zero padding).
 */
export function nobleVerifyDer(pub65: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean {
  if (!(sig instanceof Uint8Array)) return false;
  if (!(pub65 instanceof Uint8Array) || pub65.length !== 65 || pub65[0] !== 0x04) return false;
  try {
    const parsed = p256.Signature.fromBytes(sig, 'der');
    if (!bytesEqual(parsed.toBytes('der'), sig)) return false;
    return p256.verify(sig, data, pub65, { prehash: true, lowS: false, format: 'der' });
  } catch {
    return false;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
