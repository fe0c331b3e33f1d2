import { createHmac, timingSafeEqual } from 'node:crypto';
import type { DeviceId } from '../../proto/codec/index.js';
import { NONCE_BYTES } from '../../proto/codec/index.js';

/** Outcome of checking a nonce presented in evidence. */
export type NonceCheck = 'ok' | 'unknown' | 'stale' | 'reused';

const RANDOM_BYTES = 16;
const MAC_BYTES = 8;

/**
 * Single-use challenge nonces that need no per-challenge storage: a nonce is
 * issued-at (8 bytes) || random (16) || HMAC-SHA256(secret, deviceId || issued-at || random)[0..8].
 * The MAC binds it to the device it was issued to, so a forged or transplanted nonce reads as
 * `unknown`; one past its time to live as `stale`; one already consumed as `reused` (consumed
 * nonces are remembered only until they would be stale anyway, so memory is bounded by the
 * attestation rate × TTL).
 */
export class NonceBook {
  readonly #secret: Uint8Array;
  readonly #ttlMs: number;
  readonly #consumed = new Map<string, number>();
  #nextSweep = 0;

  constructor(secret: Uint8Array, ttlMs: number) {
    this.#secret = secret;
    this.#ttlMs = ttlMs;
  }

  /** A fresh nonce for `deviceId` issued at `nowMs`, using `random` (16 bytes) as its entropy. */
  issue(deviceId: DeviceId, nowMs: number, random: Uint8Array): { nonce: Uint8Array; expiresAtMs: number } {
    const nonce = new Uint8Array(NONCE_BYTES);
    new DataView(nonce.buffer).setBigInt64(0, BigInt(Math.floor(nowMs)));
    nonce.set(random.subarray(0, RANDOM_BYTES), 8);
    nonce.set(this.#mac(deviceId, nonce), 8 + RANDOM_BYTES);
    return { nonce, expiresAtMs: Math.floor(nowMs) + this.#ttlMs };
  }

  /** Checks without consuming (cheap, before the expensive signature check). */
  check(deviceId: DeviceId, nonce: Uint8Array, nowMs: number): NonceCheck {
    if (nonce.length !== NONCE_BYTES) return 'unknown';
    const expected = this.#mac(deviceId, nonce);
    if (!timingSafeEqual(expected, nonce.subarray(8 + RANDOM_BYTES))) return 'unknown';
    const issuedAt = Number(new DataView(nonce.buffer, nonce.byteOffset).getBigInt64(0));
    if (issuedAt > nowMs + 1000) return 'unknown';
    if (nowMs - issuedAt > this.#ttlMs) return 'stale';
    return this.#consumed.has(key(nonce)) ? 'reused' : 'ok';
  }

  /** Checks and, when `ok`, consumes: a nonce is accepted at most once. */
  consume(deviceId: DeviceId, nonce: Uint8Array, nowMs: number): NonceCheck {
    const verdict = this.check(deviceId, nonce, nowMs);
    if (verdict !== 'ok') return verdict;
    const issuedAt = Number(new DataView(nonce.buffer, nonce.byteOffset).getBigInt64(0));
    this.#consumed.set(key(nonce), issuedAt + this.#ttlMs);
    this.#sweep(nowMs);
    return 'ok';
  }

  /**
   * Records `nonce` as consumed without checking it: another shard accepted it (read back from the
   * journal), so this one must refuse its replay too.
   */
  remember(nonce: Uint8Array, nowMs: number): void {
    if (nonce.length !== NONCE_BYTES) return;
    const issuedAt = Number(new DataView(nonce.buffer, nonce.byteOffset).getBigInt64(0));
    if (issuedAt + this.#ttlMs < nowMs) return;
    this.#consumed.set(key(nonce), issuedAt + this.#ttlMs);
    this.#sweep(nowMs);
  }

  /** Consumed nonces currently remembered. */
  get remembered(): number {
    return this.#consumed.size;
  }

  #mac(deviceId: DeviceId, nonce: Uint8Array): Buffer {
    return createHmac('sha256', this.#secret)
      .update(deviceId)
      .update(nonce.subarray(0, 8 + RANDOM_BYTES))
      .digest()
      .subarray(0, MAC_BYTES);
  }

  #sweep(nowMs: number): void {
    if (nowMs < this.#nextSweep) return;
    this.#nextSweep = nowMs + this.#ttlMs / 4;
    for (const [k, expiresAt] of this.#consumed) if (expiresAt < nowMs) this.#consumed.delete(k);
  }
}

function key(nonce: Uint8Array): string {
  return Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length).toString('base64');
}
