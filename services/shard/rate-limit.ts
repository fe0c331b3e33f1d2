import type { DeviceId } from '../../proto/codec/index.js';

interface Bucket {
  tokens: number;
  atMs: number;
}

/** Buckets kept at most; the least recently used are dropped (a dropped device starts full). */
const MAX_BUCKETS = 200_000;

/**
 * Token buckets per device, in simulated time: `burst` tokens, refilled at `perHour` per hour.
 * Bounded: past MAX_BUCKETS the oldest device is forgotten, which can only be lenient.
 */
export class DeviceRateLimiter {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #buckets = new Map<DeviceId, Bucket>();

  constructor(limit: { readonly burst: number; readonly perHour: number }) {
    this.#burst = Math.max(1, limit.burst);
    // At least one per hour: a bucket that never refills would have no retry time to give.
    this.#perMs = Math.max(1, limit.perHour) / 3_600_000;
  }

  /** Takes one token for `deviceId`: 0 when allowed, else the simulated ms until one is free. */
  take(deviceId: DeviceId, nowMs: number): number {
    let b = this.#buckets.get(deviceId);
    if (b === undefined) {
      b = { tokens: this.#burst, atMs: nowMs };
      if (this.#buckets.size >= MAX_BUCKETS) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    } else {
      this.#buckets.delete(deviceId); // re-inserted below: Map order is recency order
      b.tokens = Math.min(this.#burst, b.tokens + Math.max(0, nowMs - b.atMs) * this.#perMs);
      b.atMs = Math.max(b.atMs, nowMs);
    }
    this.#buckets.set(deviceId, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / this.#perMs;
  }
}
