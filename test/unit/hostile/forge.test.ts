/**
 * The forged bytes against the service's own strict decoders, in the order the device gateway
 * applies them (framing, then body): each malformed variant must be refused with its code before
 * any session check, and the sealed attacks must decode, so that only the session can refuse them.
 */
import { describe, expect, test } from 'vitest';
import { createRng } from '../../../actors/runtime/index.js';
import { manufactureIdentity } from '../../../actors/security-core/index.js';
import {
  DEVICE_LIMITS,
  decodeAttestRequest,
  decodeAuthenticatedRequest,
  decodeChallengeRequest,
  decodeErrorReportUpload,
  decodeUpdateCheckRequest,
  decodeUpdateReport,
} from '../../../proto/codec/index.js';
import type { DecodeResult, DeviceId } from '../../../proto/codec/index.js';
import {
  VARIANT_CONTRACTS,
  guessedKeySession,
  madeUpSession,
  malformedMessage,
  requestBody,
  sizeLimit,
  withNumericDeviceId,
} from '../../../loadgen/hostile/index.js';
import type { AttackOp, MalformedVariant, SealedOp } from '../../../loadgen/hostile/index.js';

const victim = manufactureIdentity('forge/victim').deviceId;
const NOW = 1_750_000_000_000;

const BODY: Record<
  SealedOp,
  { max: number; decode: (b: Uint8Array) => DecodeResult<{ deviceId: DeviceId }> }
> = {
  'update-check': { max: DEVICE_LIMITS.updateCheckRequest, decode: decodeUpdateCheckRequest },
  'update-report': { max: DEVICE_LIMITS.updateReport, decode: decodeUpdateReport },
  'error-report': { max: DEVICE_LIMITS.errorReport, decode: decodeErrorReportUpload },
  'update-chunk': {
    max: DEVICE_LIMITS.chunkRequest,
    decode: () => ({ ok: false, error: { code: 'INTERNAL', message: '' } }),
  },
};

/** What the gateway answers before any session check: a code, or `PASSES` to the session layer. */
function gatewayDecode(op: AttackOp, bytes: Uint8Array): string {
  if (op === 'challenge') {
    const r = decodeChallengeRequest(bytes);
    return r.ok ? 'PASSES' : r.error.code;
  }
  if (op === 'attest') {
    const r = decodeAttestRequest(bytes);
    return r.ok ? 'PASSES' : r.error.code;
  }
  const spec = BODY[op];
  const auth = decodeAuthenticatedRequest(bytes, spec.max);
  if (!auth.ok) return auth.error.code;
  const body = spec.decode(auth.value.body);
  return body.ok ? 'PASSES' : body.error.code;
}

const MALFORMED: [MalformedVariant, AttackOp][] = [
  ['garbage', 'challenge'],
  ['garbage', 'attest'],
  ['garbage', 'update-check'],
  ['garbage', 'error-report'],
  ['truncated', 'update-check'],
  ['truncated', 'error-report'],
  ['truncated', 'update-report'],
  ['wrong-type', 'update-check'],
  ['wrong-type', 'error-report'],
  ['wrong-type', 'update-report'],
  ['unsealed', 'update-check'],
  ['unsealed', 'error-report'],
  ['unsealed', 'update-report'],
  ['oversize', 'update-check'],
  ['oversize', 'attest'],
  ['oversize', 'challenge'],
];

describe('hostile forge', () => {
  test.each(MALFORMED)(
    'forge - %s on %s is refused with its code by the strict decoders, for any seed',
    (variant, op) => {
      const expected = VARIANT_CONTRACTS[variant].expected;
      for (let i = 0; i < 300; i++) {
        const bytes = malformedMessage(variant, op, victim, NOW, createRng(`forge/${i}`), `t${i}`);
        expect(expected, `${variant} ${op} seed ${i}`).toContain(gatewayDecode(op, bytes));
      }
    },
  );

  test('forge - the same seed gives the same bytes', () => {
    const a = malformedMessage('truncated', 'update-check', victim, NOW, createRng('x'), 't');
    const b = malformedMessage('truncated', 'update-check', victim, NOW, createRng('x'), 't');
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  test('forge - oversize is exactly 1 KiB over the subject limit', () => {
    for (const op of ['challenge', 'attest', 'update-check'] as const) {
      expect(malformedMessage('oversize', op, victim, NOW, createRng('o'), 't').length).toBe(
        sizeLimit(op) + 1024,
      );
    }
  });

  test.each(['update-check', 'update-report', 'error-report'] as const)(
    'forge - a %s body sealed with a made-up session or a guessed key decodes: only the session can refuse it',
    (op) => {
      const body = requestBody(op, victim, NOW, 'tag');
      const decoded = BODY[op].decode(body);
      expect(decoded.ok && decoded.value.deviceId).toBe(victim);
      const rng = createRng('s');
      const real = madeUpSession(rng);
      for (const session of [madeUpSession(rng), guessedKeySession(real.sessionId, rng)]) {
        expect(gatewayDecode(op, session.seal(op, body))).toBe('PASSES');
      }
      const guessed = guessedKeySession(real.sessionId, rng);
      expect(Buffer.from(guessed.sessionId).equals(Buffer.from(real.sessionId))).toBe(true);
      expect(Buffer.from(guessed.key).equals(Buffer.from(real.key))).toBe(false);
    },
  );

  test('forge - withNumericDeviceId turns field 1 into a varint and keeps the rest', () => {
    const body = requestBody('update-check', victim, NOW, 'tag');
    const mistyped = withNumericDeviceId(body);
    expect([...mistyped.subarray(0, 2)]).toEqual([0x08, 0x2a]);
    // Field 1 was 0x0a, a two-byte length (128) and the 128-character ID.
    expect(mistyped.length).toBe(body.length - 131 + 2);
    expect(decodeUpdateCheckRequest(mistyped)).toMatchObject({
      ok: false,
      error: { code: 'MALFORMED_INPUT' },
    });
    expect(() => withNumericDeviceId(Uint8Array.of(0x10, 1))).toThrow(RangeError);
  });

  test('forge - hostile traffic sends no chunk requests', () => {
    expect(() => requestBody('update-chunk', victim, NOW, 't')).toThrow(RangeError);
  });
});
