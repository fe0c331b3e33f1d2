import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_POLICY, NonceBook } from '../../../services/attestation/index.js';
import { createManualClock, createRng } from '../../../actors/runtime/index.js';
import { parseDeviceId } from '../../../proto/codec/index.js';
import type { DeviceId } from '../../../proto/codec/index.js';

const rng = createRng('nonce-tests');
const deviceId = (): DeviceId => parseDeviceId(Buffer.from(rng.bytes(64)).toString('hex')) as DeviceId;
const A = deviceId();
const B = deviceId();
const TTL = 60_000;

function book(secret = rng.bytes(32)): NonceBook {
  return new NonceBook(secret, TTL);
}

describe('attestation nonces', () => {
  it('nonces - issue, check ok, consume ok, consume again is reused', () => {
    const clock = createManualClock(1_700_000_000_000);
    const b = book();
    const { nonce, expiresAtMs } = b.issue(A, clock.now(), rng.bytes(16));
    expect(nonce.length).toBe(32);
    expect(expiresAtMs).toBe(clock.now() + TTL);
    clock.advance(1_000);
    expect(b.check(A, nonce, clock.now())).toBe('ok');
    expect(b.check(A, nonce, clock.now())).toBe('ok'); // check does not consume
    expect(b.consume(A, nonce, clock.now())).toBe('ok');
    expect(b.check(A, nonce, clock.now())).toBe('reused');
    expect(b.consume(A, nonce, clock.now())).toBe('reused');
  });

  it('nonces - a nonce issued for device A is unknown for device B', () => {
    const b = book();
    const { nonce } = b.issue(A, 0, rng.bytes(16));
    expect(b.check(B, nonce, 10)).toBe('unknown');
    expect(b.consume(B, nonce, 10)).toBe('unknown');
    // and B's failed attempt did not burn it for A
    expect(b.consume(A, nonce, 10)).toBe('ok');
  });

  it('nonces - a nonce from another book (different secret) is unknown', () => {
    const { nonce } = book().issue(A, 0, rng.bytes(16));
    expect(book().check(A, nonce, 10)).toBe('unknown');
  });

  it('nonces - flipping any single byte makes the nonce unknown', () => {
    const b = book();
    const now = 5_000_000;
    const { nonce } = b.issue(A, now, rng.bytes(16));
    for (let i = 0; i < nonce.length; i++) {
      const forged = Uint8Array.from(nonce);
      forged[i]! ^= 0x01;
      expect(b.check(A, forged, now), `byte ${i}`).toBe('unknown');
    }
    expect(b.check(A, nonce, now)).toBe('ok');
  });

  it('nonces - a nonce of the wrong length is unknown', () => {
    const b = book();
    const { nonce } = b.issue(A, 0, rng.bytes(16));
    expect(b.check(A, nonce.subarray(0, 31), 0)).toBe('unknown');
    expect(b.check(A, new Uint8Array(0), 0)).toBe('unknown');
    expect(b.check(A, new Uint8Array([...nonce, 0]), 0)).toBe('unknown');
  });

  it('nonces - a nonce is ok up to its ttl and stale after it', () => {
    const clock = createManualClock(1_000_000);
    const b = book();
    const { nonce } = b.issue(A, clock.now(), rng.bytes(16));
    clock.advance(TTL);
    expect(b.check(A, nonce, clock.now())).toBe('ok');
    clock.advance(1);
    expect(b.check(A, nonce, clock.now())).toBe('stale');
    expect(b.consume(A, nonce, clock.now())).toBe('stale');
  });

  it('nonces - a consumed nonce reads stale (not reused) once past its ttl', () => {
    const b = book();
    const { nonce } = b.issue(A, 0, rng.bytes(16));
    expect(b.consume(A, nonce, 10)).toBe('ok');
    expect(b.check(A, nonce, TTL + 1)).toBe('stale');
  });

  it('nonces - a nonce claiming to be issued in the future is unknown', () => {
    const b = book();
    const { nonce } = b.issue(A, 100_000, rng.bytes(16));
    expect(b.check(A, nonce, 100_000 - 1_000)).toBe('ok'); // within 1 s grace
    expect(b.check(A, nonce, 100_000 - 1_001)).toBe('unknown');
  });

  it('nonces - nonces issued with the same time but different randomness differ and are independent', () => {
    const b = book();
    const n1 = b.issue(A, 0, rng.bytes(16)).nonce;
    const n2 = b.issue(A, 0, rng.bytes(16)).nonce;
    expect(Buffer.from(n1).equals(Buffer.from(n2))).toBe(false);
    expect(b.consume(A, n1, 1)).toBe('ok');
    expect(b.check(A, n2, 1)).toBe('ok');
  });

  it('nonces - a nonce embedded at an offset in a larger buffer checks and consumes the same', () => {
    const b = book();
    const { nonce } = b.issue(A, 0, rng.bytes(16));
    const carrier = new Uint8Array(64);
    carrier.set(nonce, 13);
    const view = carrier.subarray(13, 45);
    expect(b.check(A, view, 5)).toBe('ok');
    expect(b.consume(A, view, 5)).toBe('ok');
    expect(b.consume(A, nonce, 5)).toBe('reused');
  });

  it('nonces - fractional issue times are floored', () => {
    const b = book();
    const { nonce, expiresAtMs } = b.issue(A, 1000.9, rng.bytes(16));
    expect(expiresAtMs).toBe(1000 + TTL);
    expect(Number(new DataView(nonce.buffer, nonce.byteOffset).getBigInt64(0))).toBe(1000);
  });

  it('nonces - consumed nonces are forgotten once stale, keeping memory bounded', () => {
    const clock = createManualClock(0);
    const b = book();
    for (let i = 0; i < 5; i++) {
      const { nonce } = b.issue(A, clock.now(), rng.bytes(16));
      expect(b.consume(A, nonce, clock.now())).toBe('ok');
      clock.advance(100);
    }
    expect(b.remembered).toBe(5);
    clock.advance(TTL + 1_000);
    const { nonce } = b.issue(A, clock.now(), rng.bytes(16));
    expect(b.consume(A, nonce, clock.now())).toBe('ok');
    expect(b.remembered).toBe(1);
  });

  it('nonces - at a steady attestation rate memory stays near rate × ttl', () => {
    const clock = createManualClock(0);
    const b = book();
    const stepMs = 1_000;
    let peak = 0;
    for (let i = 0; i < 500; i++) {
      const { nonce } = b.issue(A, clock.now(), rng.bytes(16));
      expect(b.consume(A, nonce, clock.now())).toBe('ok');
      peak = Math.max(peak, b.remembered);
      clock.advance(stepMs);
    }
    // ttl/step live nonces plus at most one sweep interval (ttl/4) of stale ones
    expect(peak).toBeLessThanOrEqual(Math.ceil((TTL * 1.25) / stepMs) + 2);
    expect(peak).toBeGreaterThanOrEqual(TTL / stepMs);
  });

  it('nonces - any random input gives a nonce that checks ok exactly once', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 2 ** 42 }),
        (r, t) => {
          const b = new NonceBook(new Uint8Array(32).fill(1), DEFAULT_POLICY.nonceTtlMs);
          const { nonce } = b.issue(A, t, r);
          expect(b.consume(A, nonce, t)).toBe('ok');
          expect(b.consume(A, nonce, t)).toBe('reused');
          expect(b.check(B, nonce, t)).toBe('unknown');
        },
      ),
      { numRuns: 200 },
    );
  });
});
