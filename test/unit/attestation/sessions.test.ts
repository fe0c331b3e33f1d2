/**
 * Device sessions without a network: the session crypto (actors/crypto/session.ts: key wrapping
 * for the device's client key, request MACs), the device's sealing, and the service's SessionBook
 * (whose session, MAC, expiry, and the sliding replay window of request counters).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  REQUEST_MAC_BYTES,
  SESSION_ID_BYTES,
  deriveSessionKey,
  newSessionId,
  requestMac,
  sessionExpiry,
  unwrapSessionKey,
  wrapSessionKey,
} from '../../../actors/crypto/index.js';
import { InvalidPublicKeyError } from '../../../actors/crypto/index.js';
import { DeviceSession } from '../../../actors/device/index.js';
import { manufactureIdentity, sessionOpener } from '../../../actors/security-core/index.js';
import { createRng } from '../../../actors/runtime/index.js';
import {
  REJECT_CODES,
  decodeAuthenticatedRequest,
  encodeAuthenticatedRequest,
  parseDeviceId,
} from '../../../proto/codec/index.js';
import type { AuthenticatedRequestMsg, DeviceId } from '../../../proto/codec/index.js';
import { REPLAY_WINDOW, SessionBook } from '../../../services/attestation/index.js';
import type { SessionVerdict } from '../../../services/attestation/index.js';

const rng = createRng('session-tests');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const deviceId = (): DeviceId => parseDeviceId(hex(rng.bytes(64))) as DeviceId;
const A = deviceId();
const B = deviceId();
const NOW = 1_700_000_000_000;
const HOUR = 3_600_000;
const BODY = new TextEncoder().encode('an encoded update check');

/** The code of a verdict, 'OK' when accepted. */
const code = (v: SessionVerdict): string => (v.ok ? 'OK' : v.error.code);

/** A service's session book, and a session of `device` it issued and made current. */
function opened(device = A, expiresAtMs = NOW + HOUR, secret = rng.bytes(32)) {
  const book = new SessionBook(secret);
  const s = book.issue(device, expiresAtMs, rng.bytes(8));
  book.adopt(device, hex(s.sessionId));
  return { book, secret, ...s };
}

/** What a device sends as request `counter` of its session for `op`. */
function request(
  s: { sessionId: Uint8Array; key: Uint8Array },
  counter: number,
  op = 'update-check',
  body = BODY,
): AuthenticatedRequestMsg {
  return { body, sessionId: s.sessionId, counter, mac: requestMac(s.key, op, counter, body) };
}

describe('session crypto', () => {
  const device = manufactureIdentity('session-crypto/device');
  const other = manufactureIdentity('session-crypto/other');

  function wrapped(key = rng.bytes(32), ephemeral = rng.bytes(32)) {
    const salt = rng.bytes(32);
    const sessionId = newSessionId(NOW + HOUR, rng.bytes(8));
    return {
      key,
      salt,
      sessionId,
      w: wrapSessionKey(key, device.clientPublicKey, ephemeral, salt, sessionId),
    };
  }

  it('session crypto - a key wrapped for the client key unwraps with the client private key', () => {
    const { key, salt, sessionId, w } = wrapped();
    expect(w.serverPublicKey.length).toBe(65);
    expect(w.serverPublicKey[0]).toBe(4);
    expect(w.wrappedKey.length).toBe(32);
    expect(hex(w.wrappedKey)).not.toBe(hex(key));
    expect(hex(unwrapSessionKey(device.clientScalar, w, salt, sessionId))).toBe(hex(key));
  });

  it('session crypto - another client key, salt (nonce) or session ID unwraps a different key', () => {
    const { key, salt, sessionId, w } = wrapped();
    const wrong = [
      unwrapSessionKey(other.clientScalar, w, salt, sessionId),
      unwrapSessionKey(rng.bytes(32), w, salt, sessionId),
      unwrapSessionKey(device.clientScalar, w, rng.bytes(32), sessionId),
      unwrapSessionKey(device.clientScalar, w, salt, newSessionId(NOW + HOUR, rng.bytes(8))),
    ];
    for (const k of wrong) expect(hex(k)).not.toBe(hex(key));
    expect(new Set(wrong.map(hex)).size).toBe(wrong.length);
  });

  it('session crypto - wrapping is reproducible from the ephemeral secret, and a fresh one changes it', () => {
    const key = rng.bytes(32);
    const eph = rng.bytes(32);
    const salt = rng.bytes(32);
    const sid = newSessionId(NOW, rng.bytes(8));
    const one = wrapSessionKey(key, device.clientPublicKey, eph, salt, sid);
    const again = wrapSessionKey(key, device.clientPublicKey, eph, salt, sid);
    const fresh = wrapSessionKey(key, device.clientPublicKey, rng.bytes(32), salt, sid);
    expect([hex(again.serverPublicKey), hex(again.wrappedKey)]).toEqual([
      hex(one.serverPublicKey),
      hex(one.wrappedKey),
    ]);
    expect(hex(fresh.serverPublicKey)).not.toBe(hex(one.serverPublicKey));
    expect(hex(fresh.wrappedKey)).not.toBe(hex(one.wrappedKey));
  });

  it('session crypto - a client key that is not a P-256 point is refused', () => {
    const offCurve = Uint8Array.from(device.clientPublicKey);
    offCurve[64] = (offCurve[64] ?? 0) ^ 0x01;
    expect(() =>
      wrapSessionKey(rng.bytes(32), offCurve, rng.bytes(32), rng.bytes(32), rng.bytes(16)),
    ).toThrow(InvalidPublicKeyError);
  });

  it("session crypto - the security core's opener unwraps the session of an attestation reply", () => {
    const { key, salt, sessionId, w } = wrapped();
    const session = sessionOpener(device)({ sessionId, ...w, expiresAtMs: NOW + HOUR }, salt);
    expect(hex(session.key)).toBe(hex(key));
    expect(hex(session.sessionId)).toBe(hex(sessionId));
    expect(session.expiresAtMs).toBe(NOW + HOUR);
    expect(hex(sessionOpener(other)({ sessionId, ...w, expiresAtMs: 0 }, salt).key)).not.toBe(hex(key));
  });

  it('session crypto - the request MAC binds the key, the op, the counter and every body byte', () => {
    const key = rng.bytes(32);
    const mac = requestMac(key, 'update-check', 7, BODY);
    expect(mac.length).toBe(REQUEST_MAC_BYTES);
    expect(hex(requestMac(key, 'update-check', 7, BODY))).toBe(hex(mac));
    const changedBody = Uint8Array.from(BODY);
    changedBody[BODY.length - 1] = (changedBody[BODY.length - 1] ?? 0) ^ 0x80;
    const variants = [
      requestMac(rng.bytes(32), 'update-check', 7, BODY),
      requestMac(key, 'update-report', 7, BODY),
      requestMac(key, 'update-check', 8, BODY),
      requestMac(key, 'update-check', 7 + 2 ** 32, BODY),
      requestMac(key, 'update-check', 7, changedBody),
      requestMac(key, 'update-check', 7, BODY.subarray(0, BODY.length - 1)),
    ];
    for (const v of variants) expect(hex(v)).not.toBe(hex(mac));
  });

  it('session crypto - a session ID carries its expiry; keys differ per device and per session', () => {
    const random8 = rng.bytes(8);
    const sid = newSessionId(NOW + 12.7, random8);
    expect(sid.length).toBe(SESSION_ID_BYTES);
    expect(sessionExpiry(sid)).toBe(NOW + 12);
    expect(hex(sid.subarray(8))).toBe(hex(random8));
    expect(sessionExpiry(new Uint8Array(15))).toBe(0);
    expect(() => newSessionId(NOW, rng.bytes(7))).toThrow(RangeError);
    const secret = rng.bytes(32);
    const k = deriveSessionKey(secret, A, sid);
    expect(hex(deriveSessionKey(secret, A, sid))).toBe(hex(k));
    expect(hex(deriveSessionKey(secret, B, sid))).not.toBe(hex(k));
    expect(hex(deriveSessionKey(secret, A, newSessionId(NOW + 12, rng.bytes(8))))).not.toBe(hex(k));
    expect(hex(deriveSessionKey(rng.bytes(32), A, sid))).not.toBe(hex(k));
  });

  it('session crypto - a device seals each request with the next counter, from 1', () => {
    const key = rng.bytes(32);
    const session = new DeviceSession(rng.bytes(16), key, NOW + HOUR);
    expect(session.counter).toBe(0);
    const sealed = [session.seal('heartbeat', BODY), session.seal('update-check', BODY)];
    expect(session.counter).toBe(2);
    sealed.forEach((bytes, i) => {
      const d = decodeAuthenticatedRequest(bytes, 256);
      if (!d.ok) throw new Error(d.error.message);
      expect(d.value.counter).toBe(i + 1);
      expect(hex(d.value.sessionId)).toBe(hex(session.sessionId));
      expect(hex(d.value.body)).toBe(hex(BODY));
      expect(hex(d.value.mac)).toBe(
        hex(requestMac(key, i === 0 ? 'heartbeat' : 'update-check', i + 1, BODY)),
      );
    });
  });
});

describe('session book', () => {
  it('sessions - counter 0 never reaches the book: the decoder refuses it', () => {
    const s = opened();
    const d = decodeAuthenticatedRequest(encodeAuthenticatedRequest(request(s, 0)), 256);
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.error.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(d.error.message).toContain('counter must be a positive integer');
  });

  it('sessions - each counter is accepted once; a repeat is REPLAYED', () => {
    const { book, ...s } = opened();
    expect(code(book.verify(A, 'update-check', request(s, 1), NOW))).toBe('OK');
    expect(code(book.verify(A, 'update-check', request(s, 2), NOW))).toBe('OK');
    const again = book.verify(A, 'update-check', request(s, 2), NOW);
    expect(code(again)).toBe('REPLAYED');
    expect(again.ok ? '' : again.error.message).toContain('counter 2');
    expect(code(book.verify(A, 'update-check', request(s, 1), NOW))).toBe('REPLAYED');
    // The op is inside the MAC, not the counter space: the same counter for another op is a replay too.
    expect(code(book.verify(A, 'heartbeat', request(s, 2, 'heartbeat'), NOW))).toBe('REPLAYED');
  });

  it(`sessions - out of order within the window (${REPLAY_WINDOW - 1} behind) is accepted once; ${REPLAY_WINDOW} behind is REPLAYED`, () => {
    const { book, ...s } = opened();
    expect(code(book.verify(A, 'update-check', request(s, 100), NOW))).toBe('OK');
    expect(code(book.verify(A, 'update-check', request(s, 100 - (REPLAY_WINDOW - 1)), NOW))).toBe('OK');
    expect(code(book.verify(A, 'update-check', request(s, 100 - (REPLAY_WINDOW - 1)), NOW))).toBe('REPLAYED');
    // Never seen, but too old to tell: refused.
    expect(code(book.verify(A, 'update-check', request(s, 100 - REPLAY_WINDOW), NOW))).toBe('REPLAYED');
    expect(code(book.verify(A, 'update-check', request(s, 1), NOW))).toBe('REPLAYED');
    expect(code(book.verify(A, 'update-check', request(s, 99), NOW))).toBe('OK');
  });

  it('sessions - the window slides by exactly the jump: 63 keeps the oldest bit, 64 drops it', () => {
    const { book, ...s } = opened();
    const ok = (c: number) => code(book.verify(A, 'update-check', request(s, c), NOW));
    expect(ok(1)).toBe('OK');
    expect(ok(64)).toBe('OK'); // shift 63: 1 is the oldest counter still in the window
    expect(ok(1)).toBe('REPLAYED');
    expect(ok(2)).toBe('OK');
    expect(ok(128)).toBe('OK'); // shift 64: the whole window is new
    expect(ok(64)).toBe('REPLAYED'); // 64 behind
    expect(ok(65)).toBe('OK'); // 63 behind, never seen
    expect(ok(128)).toBe('REPLAYED');
  });

  it('sessions - a far jump forward is accepted and leaves everything before its window behind', () => {
    const { book, ...s } = opened();
    const ok = (c: number) => code(book.verify(A, 'update-check', request(s, c), NOW));
    for (let c = 1; c <= 5; c++) expect(ok(c)).toBe('OK');
    expect(ok(1_000_000)).toBe('OK');
    expect(ok(5)).toBe('REPLAYED');
    expect(ok(6)).toBe('REPLAYED'); // never seen, far outside the window
    expect(ok(1_000_000 - (REPLAY_WINDOW - 1))).toBe('OK');
    expect(ok(1_000_000 - REPLAY_WINDOW)).toBe('REPLAYED');
    expect(ok(1_000_000)).toBe('REPLAYED');
    expect(ok(1_000_001)).toBe('OK');
    // Counters as large as a safe integer still work (the MAC encodes 8 bytes).
    expect(ok(Number.MAX_SAFE_INTEGER)).toBe('OK');
    expect(ok(Number.MAX_SAFE_INTEGER)).toBe('REPLAYED');
  });

  it('sessions - the window matches its model for any arrival order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 200 }), (counters) => {
        const { book, ...s } = opened();
        const seen = new Set<number>();
        let highest = 0;
        for (const c of counters) {
          const expected = !seen.has(c) && (c > highest || highest - c < REPLAY_WINDOW);
          expect(code(book.verify(A, 'update-check', request(s, c), NOW))).toBe(expected ? 'OK' : 'REPLAYED');
          if (expected) {
            seen.add(c);
            highest = Math.max(highest, c);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('sessions - BAD_MAC for an altered body, another op, a session never issued, or another service secret; a refusal does not use the counter', () => {
    const { book, ...s } = opened();
    const genuine = request(s, 1);
    const altered = Uint8Array.from(BODY);
    altered[0] = (altered[0] ?? 0) ^ 1;
    expect(code(book.verify(A, 'update-check', { ...genuine, body: altered }, NOW))).toBe('BAD_MAC');
    expect(code(book.verify(A, 'update-report', genuine, NOW))).toBe('BAD_MAC');
    expect(code(book.verify(A, 'update-check', { ...genuine, counter: 2 }, NOW))).toBe('BAD_MAC');
    const madeUp = { sessionId: newSessionId(NOW + HOUR, rng.bytes(8)), key: rng.bytes(32) };
    expect(code(book.verify(A, 'update-check', request(madeUp, 1), NOW))).toBe('BAD_MAC');
    const elsewhere = new SessionBook(rng.bytes(32)).issue(A, NOW + HOUR, rng.bytes(8));
    expect(code(book.verify(A, 'update-check', request(elsewhere, 1), NOW))).toBe('BAD_MAC');
    expect(code(book.verify(A, 'update-check', genuine, NOW))).toBe('OK');
  });

  it("sessions - IDENTITY_MISMATCH names the session's owner when its valid session is used for another device", () => {
    const { book, ...a } = opened(A);
    const b = book.issue(B, NOW + HOUR, rng.bytes(8));
    book.adopt(B, hex(b.sessionId));
    const v = book.verify(B, 'update-check', request(a, 1), NOW);
    expect(v).toMatchObject({ ok: false, actor: A, error: { code: 'IDENTITY_MISMATCH' } });
    // Both still act as themselves, and A's counter 1 was not used by the refusal.
    expect(code(book.verify(A, 'update-check', request(a, 1), NOW))).toBe('OK');
    expect(code(book.verify(B, 'update-check', request(b, 1), NOW))).toBe('OK');
    // A's session ID with a MAC that does not check under A's key: just a bad MAC for B.
    expect(code(book.verify(B, 'update-check', { ...request(a, 2), mac: rng.bytes(16) }, NOW))).toBe(
      'BAD_MAC',
    );
  });

  it('sessions - SESSION_EXPIRED from the expiry in the session ID on, with the service time', () => {
    const { book, ...s } = opened(A, NOW + 1_000);
    expect(code(book.verify(A, 'update-check', request(s, 1), NOW + 999))).toBe('OK');
    const v = book.verify(A, 'update-check', request(s, 2), NOW + 1_000);
    expect(v).toMatchObject({ ok: false, error: { code: 'SESSION_EXPIRED', serviceTimeMs: NOW + 1_000 } });
  });

  it('sessions - a newer attestation supersedes the session (SESSION_EXPIRED); a newer one issued elsewhere is adopted', () => {
    const secret = rng.bytes(32);
    const { book, ...old } = opened(A, NOW + HOUR, secret);
    const newer = book.issue(A, NOW + HOUR + 1, rng.bytes(8));
    book.adopt(A, hex(newer.sessionId));
    const v = book.verify(A, 'update-check', request(old, 1), NOW);
    expect(code(v)).toBe('SESSION_EXPIRED');
    expect(v.ok ? '' : v.error.message).toContain('newer attestation');
    expect(code(book.verify(A, 'update-check', request(newer, 1), NOW))).toBe('OK');
    // Another shard (same service secret) issued a still newer session before the partition
    // moved here: its MAC checks, so it becomes current, and the one this shard knew is replaced.
    const other = new SessionBook(secret);
    const newest = other.issue(A, NOW + HOUR + 2, rng.bytes(8));
    expect(code(book.verify(A, 'update-check', request(newest, 1), NOW))).toBe('OK');
    expect(book.current(A)).toBe(hex(newest.sessionId));
    expect(code(book.verify(A, 'update-check', request(newer, 2), NOW))).toBe('SESSION_EXPIRED');
  });

  it('sessions - a device with no session in this book is served by any session the service issued it (stateless keys)', () => {
    const secret = rng.bytes(32);
    const issued = new SessionBook(secret).issue(B, NOW + HOUR, rng.bytes(8));
    const book = new SessionBook(secret);
    expect(book.current(B)).toBeNull();
    expect(code(book.verify(B, 'update-check', request(issued, 5), NOW))).toBe('OK');
    expect(book.current(B)).toBe(hex(issued.sessionId));
    expect(code(book.verify(B, 'update-check', request(issued, 5), NOW))).toBe('REPLAYED');
  });

  it('sessions - a quarantined identity (revoked) is refused with every session issued so far, stateless or not', () => {
    const secret = rng.bytes(32);
    const { book, ...s } = opened(A, NOW + HOUR, secret);
    expect(code(book.verify(A, 'update-check', request(s, 1), NOW))).toBe('OK');
    book.revoke(A);
    const v = book.verify(A, 'update-check', request(s, 2), NOW);
    expect(code(v)).toBe('SESSION_EXPIRED');
    expect(v.ok ? '' : v.error.message).toContain('quarantined');
    // A session issued by another shard before the quarantine does not bring the identity back.
    const elsewhere = new SessionBook(secret).issue(A, NOW + 2 * HOUR, rng.bytes(8));
    expect(code(book.verify(A, 'update-check', request(elsewhere, 1), NOW))).toBe('SESSION_EXPIRED');
  });
});
