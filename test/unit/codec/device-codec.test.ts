import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import {
  BOOT_ID_BYTES,
  DEVICE_LIMITS,
  NONCE_BYTES,
  REJECT_CODES,
  decodeAttestReply,
  decodeAttestRequest,
  decodeChallengeReply,
  decodeChallengeRequest,
  decodeEvidence,
  decodeHeartbeat,
  encodeAttestReply,
  encodeAttestRequest,
  encodeChallengeReply,
  encodeChallengeRequest,
  encodeEvidence,
  encodeHeartbeat,
  parseDeviceId,
} from '../../../proto/codec/index.js';
import type {
  DecodeResult,
  DeviceId,
  EvidenceMsg,
  MeasurementMsg,
  SessionMsg,
} from '../../../proto/codec/index.js';
import { Evidence, Heartbeat, Measurement } from '../../../proto/gen/sphere/device/v1/device.js';
import { createRng } from '../../../actors/runtime/index.js';

const rng = createRng('codec-tests');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const DEVICE_ID = parseDeviceId(hex(rng.bytes(64))) as DeviceId;

function point(): Uint8Array {
  const p = rng.bytes(65);
  p[0] = 4;
  return p;
}

/** The session an attestation reply carries (random bytes of the right sizes). */
function session(expiresAtMs: number): SessionMsg {
  return { sessionId: rng.bytes(16), serverPublicKey: point(), wrappedKey: rng.bytes(32), expiresAtMs };
}

function measurements(n: number): MeasurementMsg[] {
  return Array.from({ length: n }, (_, i) => ({ stage: `stage-${i}`, digest: rng.bytes(32) }));
}

function evidence(patch: Partial<EvidenceMsg> = {}): EvidenceMsg {
  return {
    deviceId: DEVICE_ID,
    nonce: rng.bytes(NONCE_BYTES),
    measurements: measurements(5),
    measurementChain: rng.bytes(32),
    osVersion: '25.10',
    securityVersion: 5,
    deviceTimeMs: 1_700_000_000_123,
    bootId: rng.bytes(BOOT_ID_BYTES),
    bootCount: 7,
    attestationPublicKey: point(),
    clientPublicKey: point(),
    ...patch,
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The rejection of a failed decode; fails the test if decoding succeeded. */
function rejection<T>(r: DecodeResult<T>): { code: string; message: string } {
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('expected a rejection');
  return r.error;
}

function value<T>(r: DecodeResult<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${r.error.code}: ${r.error.message}`);
  return r.value;
}

const ALL_DECODERS: ReadonlyArray<[string, (b: Uint8Array) => DecodeResult<unknown>]> = [
  ['ChallengeRequest', decodeChallengeRequest],
  ['ChallengeReply', decodeChallengeReply],
  ['Evidence', decodeEvidence],
  ['AttestRequest', decodeAttestRequest],
  ['AttestReply', decodeAttestReply],
  ['Heartbeat', decodeHeartbeat],
];

const CODE_VALUES = new Set<string>(Object.values(REJECT_CODES));

describe('codec round trips', () => {
  it('codec - ChallengeRequest round trips', () => {
    const got = value(decodeChallengeRequest(encodeChallengeRequest({ deviceId: DEVICE_ID })));
    expect(got).toEqual({ deviceId: DEVICE_ID });
  });

  it('codec - ChallengeReply with a challenge round trips', () => {
    const nonce = rng.bytes(NONCE_BYTES);
    const got = value(
      decodeChallengeReply(
        encodeChallengeReply({ ok: true, value: { nonce, issuedAtMs: 1000, expiresAtMs: 301_000 } }),
      ),
    );
    expect(got.ok).toBe(true);
    if (!got.ok) return;
    expect(hex(got.value.nonce)).toBe(hex(nonce));
    expect(got.value.issuedAtMs).toBe(1000);
    expect(got.value.expiresAtMs).toBe(301_000);
  });

  it('codec - ChallengeReply with an error round trips code, message, retryAfterMs and serviceTimeMs', () => {
    const got = value(
      decodeChallengeReply(
        encodeChallengeReply({
          ok: false,
          error: {
            code: 'CLOCK_SKEW',
            message: 'clock is off',
            retryAfterMs: 250,
            serviceTimeMs: 1_700_000_000_000,
          },
        }),
      ),
    );
    expect(got).toEqual({
      ok: false,
      error: {
        code: 'CLOCK_SKEW',
        message: 'clock is off',
        retryAfterMs: 250,
        serviceTimeMs: 1_700_000_000_000,
      },
    });
  });

  it('codec - an error reply without retryAfterMs or serviceTimeMs decodes without those keys', () => {
    const got = value(
      decodeAttestReply(encodeAttestReply({ ok: false, error: { code: 'OVERLOADED', message: 'busy' } })),
    );
    expect(got).toEqual({ ok: false, error: { code: 'OVERLOADED', message: 'busy' } });
  });

  it('codec - Evidence round trips every field', () => {
    const e = evidence();
    const got = value(decodeEvidence(encodeEvidence(e)));
    expect(got.deviceId).toBe(e.deviceId);
    expect(hex(got.nonce)).toBe(hex(e.nonce));
    expect(got.measurements.map((m) => [m.stage, hex(m.digest)])).toEqual(
      e.measurements.map((m) => [m.stage, hex(m.digest)]),
    );
    expect(hex(got.measurementChain)).toBe(hex(e.measurementChain));
    expect(got.osVersion).toBe('25.10');
    expect(got.securityVersion).toBe(5);
    expect(got.deviceTimeMs).toBe(1_700_000_000_123);
    expect(hex(got.bootId)).toBe(hex(e.bootId));
    expect(got.bootCount).toBe(7);
    expect(hex(got.attestationPublicKey)).toBe(hex(e.attestationPublicKey));
    expect(hex(got.clientPublicKey)).toBe(hex(e.clientPublicKey));
  });

  it('codec - AttestRequest round trips the envelope and decodes the inner evidence', () => {
    const e = evidence();
    const evBytes = encodeEvidence(e);
    const signature = rng.bytes(64);
    const got = value(decodeAttestRequest(encodeAttestRequest({ evidence: evBytes, signature })));
    expect(hex(got.request.evidence)).toBe(hex(evBytes));
    expect(hex(got.request.signature)).toBe(hex(signature));
    expect(got.evidence.deviceId).toBe(DEVICE_ID);
    expect(hex(got.evidence.nonce)).toBe(hex(e.nonce));
  });

  it('codec - AttestReply with certificates round trips', () => {
    const certs = {
      updateCertificate: rng.bytes(300),
      clientCertificate: rng.bytes(310),
      tenantCa: rng.bytes(280),
      notAfterMs: 1_700_086_400_000,
      session: session(1_700_086_400_000),
    };
    const got = value(decodeAttestReply(encodeAttestReply({ ok: true, value: certs })));
    expect(got.ok).toBe(true);
    if (!got.ok) return;
    expect(hex(got.value.updateCertificate)).toBe(hex(certs.updateCertificate));
    expect(hex(got.value.clientCertificate)).toBe(hex(certs.clientCertificate));
    expect(hex(got.value.tenantCa)).toBe(hex(certs.tenantCa));
    expect(got.value.notAfterMs).toBe(certs.notAfterMs);
    expect(hex(got.value.session.sessionId)).toBe(hex(certs.session.sessionId));
    expect(hex(got.value.session.serverPublicKey)).toBe(hex(certs.session.serverPublicKey));
    expect(hex(got.value.session.wrappedKey)).toBe(hex(certs.session.wrappedKey));
    expect(got.value.session.expiresAtMs).toBe(certs.session.expiresAtMs);
  });

  it('codec - Heartbeat round trips', () => {
    const bootId = rng.bytes(BOOT_ID_BYTES);
    const got = value(
      decodeHeartbeat(encodeHeartbeat({ deviceId: DEVICE_ID, bootId, deviceTimeMs: 42_000 })),
    );
    expect(got.deviceId).toBe(DEVICE_ID);
    expect(hex(got.bootId)).toBe(hex(bootId));
    expect(got.deviceTimeMs).toBe(42_000);
  });

  it('codec - fractional int64 milliseconds are floored when encoded, never thrown on', () => {
    const ev = value(decodeEvidence(encodeEvidence(evidence({ deviceTimeMs: 1.5 }))));
    expect(ev.deviceTimeMs).toBe(1);
    const hb = value(
      decodeHeartbeat(encodeHeartbeat({ deviceId: DEVICE_ID, bootId: rng.bytes(16), deviceTimeMs: 99.99 })),
    );
    expect(hb.deviceTimeMs).toBe(99);
    const ch = value(
      decodeChallengeReply(
        encodeChallengeReply({
          ok: true,
          value: { nonce: rng.bytes(32), issuedAtMs: 10.7, expiresAtMs: 20.2 },
        }),
      ),
    );
    expect(ch.ok && [ch.value.issuedAtMs, ch.value.expiresAtMs]).toEqual([10, 20]);
    const cert = value(
      decodeAttestReply(
        encodeAttestReply({
          ok: true,
          value: {
            updateCertificate: rng.bytes(4),
            clientCertificate: rng.bytes(4),
            tenantCa: rng.bytes(4),
            notAfterMs: 5.9,
            session: session(5.9),
          },
        }),
      ),
    );
    expect(cert.ok && cert.value.notAfterMs).toBe(5);
    expect(cert.ok && cert.value.session.expiresAtMs).toBe(5);
    const err = value(
      decodeAttestReply(
        encodeAttestReply({
          ok: false,
          error: { code: 'CLOCK_SKEW', message: 'x', retryAfterMs: 3.3, serviceTimeMs: 1234.9 },
        }),
      ),
    );
    expect(err).toEqual({
      ok: false,
      error: { code: 'CLOCK_SKEW', message: 'x', retryAfterMs: 3, serviceTimeMs: 1234 },
    });
  });

  it('codec - an unknown rejection code on the wire reads as INTERNAL', () => {
    // Craft an error reply whose code is not one of REJECT_CODES (a newer service, say).
    const bytes = encodeChallengeReply({
      ok: false,
      error: { code: 'SOMETHING_NEW' as unknown as 'INTERNAL', message: 'm' },
    });
    const got = value(decodeChallengeReply(bytes));
    expect(got).toEqual({ ok: false, error: { code: 'INTERNAL', message: 'm' } });
  });
});

describe('codec malformed input', () => {
  it('codec - garbage bytes are rejected as MALFORMED_INPUT by every decoder', () => {
    const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (const [name, decode] of ALL_DECODERS) {
      const e = rejection(decode(garbage));
      expect(e.code, name).toBe(REJECT_CODES.MALFORMED_INPUT);
    }
  });

  it('codec - a length-delimited field claiming more bytes than present is rejected', () => {
    const bytes = new Uint8Array([0x0a, 0x7f, 0x61, 0x62]); // field 1, length 127, only 2 bytes follow
    for (const [name, decode] of ALL_DECODERS) {
      const r = decode(bytes);
      expect(r.ok, name).toBe(false);
      if (!r.ok) expect(r.error.code, name).toBe(REJECT_CODES.MALFORMED_INPUT);
    }
  });

  it('codec - every truncation of a valid AttestRequest is rejected without throwing', () => {
    const full = encodeAttestRequest({ evidence: encodeEvidence(evidence()), signature: rng.bytes(64) });
    expect(decodeAttestRequest(full).ok).toBe(true);
    for (let n = 1; n < full.length; n++) {
      const cut = full.subarray(0, n);
      let r: DecodeResult<unknown> | undefined;
      expect(() => {
        r = decodeAttestRequest(cut);
      }, `cut at ${n}`).not.toThrow();
      expect(r?.ok, `cut at ${n}`).toBe(false);
      if (r !== undefined && !r.ok) expect(r.error.code, `cut at ${n}`).toBe(REJECT_CODES.MALFORMED_INPUT);
    }
  });

  it('codec - every truncation of a valid Evidence is rejected without throwing', () => {
    const full = encodeEvidence(evidence());
    for (let n = 1; n < full.length; n++) {
      const r = decodeEvidence(full.subarray(0, n));
      expect(r.ok, `cut at ${n}`).toBe(false);
    }
  });

  it('codec - an unknown top-level field is rejected and named in the message', () => {
    const base = encodeChallengeRequest({ deviceId: DEVICE_ID });
    const extra = new BinaryWriter()
      .uint32((15 << 3) | 0)
      .uint32(1)
      .finish(); // field 15, varint
    const e = rejection(decodeChallengeRequest(concat(base, extra)));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(e.message).toContain('field 15');
  });

  it('codec - an unknown field on Evidence is rejected, also inside the AttestRequest envelope', () => {
    const ev = concat(
      encodeEvidence(evidence()),
      new BinaryWriter()
        .uint32((99 << 3) | 2)
        .bytes(new Uint8Array([1, 2]))
        .finish(),
    );
    const e = rejection(decodeEvidence(ev));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(e.message).toContain('field 99');
    const outer = rejection(
      decodeAttestRequest(encodeAttestRequest({ evidence: ev, signature: rng.bytes(64) })),
    );
    expect(outer.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(outer.message).toContain('field 99');
  });

  it('codec - an unknown field nested inside a Measurement is rejected', () => {
    const e = evidence();
    const w = Evidence.encode({ ...e, measurements: [] });
    for (const [i, m] of e.measurements.entries()) {
      const mw = w.uint32(26).fork();
      Measurement.encode({ stage: m.stage, digest: m.digest }, mw);
      if (i === 2) mw.uint32((12 << 3) | 0).uint32(5); // unknown field 12 in measurements[2]
      mw.join();
    }
    const r = rejection(decodeEvidence(w.finish()));
    expect(r.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(r.message).toContain('measurements[2]');
    expect(r.message).toContain('field 12');
  });

  it('codec - a known field with the wrong wire type is rejected', () => {
    // device_id (field 1) sent as a varint instead of a string.
    const bytes = new BinaryWriter()
      .uint32((1 << 3) | 0)
      .uint32(7)
      .finish();
    const e = rejection(decodeChallengeRequest(bytes));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(e.message).toContain('field 1, wire type 0');
    // Heartbeat device_time_ms (field 3, int64) sent length-delimited.
    const hb = concat(
      Heartbeat.encode({ deviceId: DEVICE_ID, bootId: rng.bytes(16), deviceTimeMs: 0 }).finish(),
      new BinaryWriter()
        .uint32((3 << 3) | 2)
        .bytes(new Uint8Array([1]))
        .finish(),
    );
    const h = rejection(decodeHeartbeat(hb));
    expect(h.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(h.message).toContain('field 3, wire type 2');
  });

  it('codec - trailing bytes after a zero tag are rejected', () => {
    const base = encodeChallengeRequest({ deviceId: DEVICE_ID });
    const e = rejection(decodeChallengeRequest(concat(base, new Uint8Array([0x00, 0x01]))));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(e.message).toMatch(/stray bytes/);
  });

  it('codec - trailing bytes after an end-group tag are rejected', () => {
    const base = encodeHeartbeat({ deviceId: DEVICE_ID, bootId: rng.bytes(16), deviceTimeMs: 1 });
    const e = rejection(decodeHeartbeat(concat(base, new Uint8Array([0x0c, 0x0a, 0x00]))));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
  });

  // Regression: ts-proto's decode loop stops at a zero or end-group tag after consuming it, so a
  // trailing 0x00 (field number 0) or unmatched end-group tag used to be accepted; decodeStrict now
  // requires canonical encoding.
  it('codec - a single trailing zero tag byte is rejected', () => {
    const base = encodeChallengeRequest({ deviceId: DEVICE_ID });
    expect(decodeChallengeRequest(concat(base, new Uint8Array([0x00]))).ok).toBe(false);
  });

  it('codec - a single trailing end-group tag byte is rejected', () => {
    const base = encodeChallengeRequest({ deviceId: DEVICE_ID });
    expect(decodeChallengeRequest(concat(base, new Uint8Array([0x0c]))).ok).toBe(false);
  });

  // Regression (same root cause, nested): Measurement.decode stopped at a zero tag and the rest of its
  // payload was read as top-level Evidence fields, smuggling out a second measurement.
  it('codec - a zero tag inside a Measurement is rejected, not parsed as outer fields', () => {
    const e = evidence({ measurements: measurements(1) });
    const w = Evidence.encode({ ...e, measurements: [] });
    const smuggled = Measurement.encode({ stage: 'app:evil', digest: rng.bytes(32) }).finish();
    const mw = w.uint32(26).fork();
    Measurement.encode({ stage: 'rom', digest: rng.bytes(32) }, mw);
    mw.uint32(0); // zero tag inside the measurement
    mw.uint32(26).bytes(smuggled); // bytes still inside measurements[0]'s length
    mw.join();
    const r = decodeEvidence(w.finish());
    expect(r.ok).toBe(false);
  });

  it('codec - an oversize payload (limit + 1) is rejected as PAYLOAD_TOO_LARGE before decoding', () => {
    const cases: Array<[(b: Uint8Array) => DecodeResult<unknown>, number]> = [
      [decodeChallengeRequest, DEVICE_LIMITS.challengeRequest],
      [decodeAttestRequest, DEVICE_LIMITS.attestRequest],
      [decodeEvidence, DEVICE_LIMITS.evidence],
      [decodeHeartbeat, DEVICE_LIMITS.heartbeat],
      [decodeChallengeReply, DEVICE_LIMITS.reply],
      [decodeAttestReply, DEVICE_LIMITS.reply],
    ];
    for (const [decode, limit] of cases) {
      const e = rejection(decode(new Uint8Array(limit + 1)));
      expect(e.code).toBe(REJECT_CODES.PAYLOAD_TOO_LARGE);
      expect(e.message).toContain(String(limit));
      // exactly at the limit it is decoded (zeros are a zero tag: not too large, so some other verdict)
      const atLimit = decode(new Uint8Array(limit));
      if (!atLimit.ok) expect(atLimit.error.code).not.toBe(REJECT_CODES.PAYLOAD_TOO_LARGE);
    }
  });

  it('codec - a reply with no result is rejected', () => {
    const e = rejection(decodeChallengeReply(new Uint8Array(0)));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(e.message).toContain('result is missing');
    expect(rejection(decodeAttestReply(new Uint8Array(0))).message).toContain('result is missing');
  });

  it('codec - arbitrary bytes never make a decoder throw; rejections carry a known code', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (bytes) => {
        for (const [, decode] of ALL_DECODERS) {
          const r = decode(bytes);
          expect(typeof r.ok).toBe('boolean');
          if (!r.ok) {
            expect(CODE_VALUES.has(r.error.code)).toBe(true);
            expect(r.error.message.length).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('codec - mutated valid encodings never make a decoder throw', () => {
    const valid = encodeAttestRequest({ evidence: encodeEvidence(evidence()), signature: rng.bytes(64) });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (edits) => {
          const b = Uint8Array.from(valid);
          for (const [i, v] of edits) b[i] = v;
          const r = decodeAttestRequest(b);
          if (!r.ok) expect(CODE_VALUES.has(r.error.code)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('codec field validation', () => {
  function evidenceProblem(patch: Partial<EvidenceMsg>): string {
    const e = rejection(decodeEvidence(encodeEvidence(evidence(patch))));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    return e.message;
  }

  it('codec - device_id of the wrong length or case is rejected naming device_id', () => {
    const short = rejection(decodeChallengeRequest(encodeChallengeRequest({ deviceId: 'ab' as DeviceId })));
    expect(short.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(short.message).toContain('device_id');
    expect(short.message).toContain('got 2 characters');
    const upper = rejection(
      decodeChallengeRequest(encodeChallengeRequest({ deviceId: DEVICE_ID.toUpperCase() as DeviceId })),
    );
    expect(upper.message).toContain('device_id');
    expect(evidenceProblem({ deviceId: `${DEVICE_ID}0` as DeviceId })).toContain('device_id');
    const hb = rejection(
      decodeHeartbeat(encodeHeartbeat({ deviceId: '' as DeviceId, bootId: rng.bytes(16), deviceTimeMs: 0 })),
    );
    expect(hb.message).toContain('device_id');
  });

  it('codec - nonce must be 32 bytes', () => {
    expect(evidenceProblem({ nonce: rng.bytes(31) })).toContain('nonce must be 32 bytes, got 31');
    expect(evidenceProblem({ nonce: rng.bytes(33) })).toContain('nonce must be 32 bytes, got 33');
    const reply = rejection(
      decodeChallengeReply(
        encodeChallengeReply({ ok: true, value: { nonce: rng.bytes(16), issuedAtMs: 0, expiresAtMs: 0 } }),
      ),
    );
    expect(reply.message).toContain('nonce must be 32 bytes, got 16');
  });

  it('codec - boot_id must be 16 bytes', () => {
    expect(evidenceProblem({ bootId: rng.bytes(15) })).toContain('boot_id must be 16 bytes, got 15');
    const hb = rejection(
      decodeHeartbeat(encodeHeartbeat({ deviceId: DEVICE_ID, bootId: rng.bytes(17), deviceTimeMs: 0 })),
    );
    expect(hb.message).toContain('boot_id must be 16 bytes, got 17');
  });

  it('codec - measurement_chain must be 32 bytes', () => {
    expect(evidenceProblem({ measurementChain: rng.bytes(20) })).toContain(
      'measurement_chain must be 32 bytes',
    );
  });

  it('codec - public keys must be 65 bytes with a 0x04 prefix', () => {
    expect(evidenceProblem({ attestationPublicKey: point().subarray(0, 64) })).toContain(
      'attestation_public_key must be 65 bytes, got 64',
    );
    const compressed = point();
    compressed[0] = 2;
    expect(evidenceProblem({ attestationPublicKey: compressed })).toContain(
      'attestation_public_key must be an uncompressed SEC1 point',
    );
    expect(evidenceProblem({ clientPublicKey: new Uint8Array(0) })).toContain(
      'client_public_key must be 65 bytes, got 0',
    );
    expect(evidenceProblem({ clientPublicKey: compressed })).toContain(
      'client_public_key must be an uncompressed',
    );
  });

  it('codec - signature must be 64 bytes', () => {
    const ev = encodeEvidence(evidence());
    for (const n of [0, 63, 65, 72]) {
      const e = rejection(
        decodeAttestRequest(encodeAttestRequest({ evidence: ev, signature: rng.bytes(n) })),
      );
      expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
      expect(e.message).toContain(`signature must be 64 bytes, got ${n}`);
    }
  });

  it('codec - measurements must hold 1 to 40 entries', () => {
    expect(evidenceProblem({ measurements: [] })).toContain('measurements must hold 1 to 40 entries, got 0');
    expect(evidenceProblem({ measurements: measurements(41) })).toContain('got 41');
    expect(decodeEvidence(encodeEvidence(evidence({ measurements: measurements(40) }))).ok).toBe(true);
    expect(decodeEvidence(encodeEvidence(evidence({ measurements: measurements(1) }))).ok).toBe(true);
  });

  it('codec - each measurement needs a 1..64 character stage and a 32-byte digest', () => {
    const ms = measurements(3);
    expect(evidenceProblem({ measurements: [ms[0]!, { stage: '', digest: rng.bytes(32) }] })).toContain(
      'measurements[1].stage',
    );
    expect(evidenceProblem({ measurements: [{ stage: 'x'.repeat(65), digest: rng.bytes(32) }] })).toContain(
      'measurements[0].stage',
    );
    expect(
      decodeEvidence(
        encodeEvidence(evidence({ measurements: [{ stage: 'x'.repeat(64), digest: rng.bytes(32) }] })),
      ).ok,
    ).toBe(true);
    expect(
      evidenceProblem({ measurements: [ms[0]!, ms[1]!, { stage: 'k', digest: rng.bytes(31) }] }),
    ).toContain('measurements[2].digest must be 32 bytes, got 31');
  });

  it('codec - os_version must look like major.minor', () => {
    for (const bad of ['', '25', '25.10.1', 'v25.10', '1234.1', '25.x', ' 25.10']) {
      expect(evidenceProblem({ osVersion: bad }), JSON.stringify(bad)).toContain('os_version must look like');
    }
    for (const good of ['1.0', '25.10', '999.999']) {
      expect(decodeEvidence(encodeEvidence(evidence({ osVersion: good }))).ok, good).toBe(true);
    }
  });

  it('codec - validation failures inside an AttestRequest name the Evidence field', () => {
    const ev = encodeEvidence(evidence({ bootId: rng.bytes(3) }));
    const e = rejection(decodeAttestRequest(encodeAttestRequest({ evidence: ev, signature: rng.bytes(64) })));
    expect(e.code).toBe(REJECT_CODES.MALFORMED_INPUT);
    expect(e.message).toContain('Evidence');
    expect(e.message).toContain('boot_id');
  });
});
