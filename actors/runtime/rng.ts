import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * Deterministic pseudo-random source. Not cryptographically secure: use it for
 * simulation choices and simulated key material only.
 */
export interface Rng {
  /** Uniform float in [0, 1) with 32 bits of resolution. */
  next(): number;
  /** Uniform integer in [0, maxExclusive); `maxExclusive` must be a positive safe integer. */
  int(maxExclusive: number): number;
  /** `n` uniform bytes. */
  bytes(n: number): Uint8Array;
  /** Uniform element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /**
   * Independent stream derived from (this stream's seed, label). Does not draw
   * from this stream, so forking never shifts this stream's outputs; forking the
   * same label twice yields two identical streams.
   */
  fork(label: string): Rng;
}

const TWO_POW_32 = 2 ** 32;
const TWO_POW_53 = 2 ** 53;
const FORK_SEPARATOR = utf8ToBytes('\u0000fork\u0000');

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator) over a 128-bit
 * state taken from a 32-byte key. The key (not the state) is what forks derive from.
 */
class Sfc32 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(private readonly key: Uint8Array) {
    const v = new DataView(key.buffer, key.byteOffset, key.byteLength);
    this.a = v.getUint32(0, true);
    this.b = v.getUint32(4, true);
    this.c = v.getUint32(8, true);
    this.d = v.getUint32(12, true);
    // Standard warm-up so similar keys decorrelate before first use.
    for (let i = 0; i < 15; i++) this.u32();
  }

  /** Next raw 32-bit output. */
  private u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.u32() / TWO_POW_32;
  }

  int(maxExclusive: number): number {
    if (!Number.isSafeInteger(maxExclusive) || maxExclusive <= 0) {
      throw new RangeError(`int(maxExclusive) needs a positive safe integer, got ${maxExclusive}`);
    }
    if (maxExclusive <= TWO_POW_32) {
      // Rejection sampling: unbiased.
      const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
      let u = this.u32();
      while (u >= limit) u = this.u32();
      return u % maxExclusive;
    }
    // 53-bit float; bias is below 2^-20 for any safe integer range.
    const hi = this.u32() >>> 5;
    const lo = this.u32() >>> 6;
    return Math.floor(((hi * 67108864 + lo) / TWO_POW_53) * maxExclusive);
  }

  bytes(n: number): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bytes(n) needs n >= 0, got ${n}`);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      let u = this.u32();
      for (let j = i; j < Math.min(n, i + 4); j++) {
        out[j] = u & 0xff;
        u >>>= 8;
      }
    }
    return out;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick() from an empty array');
    return items[this.int(items.length)] as T;
  }

  fork(label: string): Rng {
    const l = utf8ToBytes(label);
    const material = new Uint8Array(this.key.length + FORK_SEPARATOR.length + l.length);
    material.set(this.key, 0);
    material.set(FORK_SEPARATOR, this.key.length);
    material.set(l, this.key.length + FORK_SEPARATOR.length);
    return new Sfc32(sha256(material));
  }
}

/**
 * Seeded generator: the key is SHA-256 of the seed's string form, so `42` and
 * `'42'` are the same seed. Same seed gives the same sequence on every platform.
 */
export function createRng(seed: string | number): Rng {
  return new Sfc32(sha256(utf8ToBytes(`sphere-rng:v1:${String(seed)}`)));
}
