/**
 * The device protocol as the fuzzer sees it, derived from proto/codec's exports so that it keeps
 * up with the protocol as it changes:
 *
 * - every `decode<Message>` the codec exports is a decoder to fuzz (a size-bounded one, taking a
 *   second argument, with a fixed bound), with its `encode<Message>` when there is one;
 * - its ts-proto type (proto/gen, same name) gives the message's field shape, and probing the
 *   decoder gives its size limit;
 * - {@link VALID_DEVICE_MESSAGES} makes domain-valid values for the encoders (one entry per
 *   message: the only per-message lines to write);
 * - {@link deviceOpMessages} maps each of DEVICE_OPS to its request and reply decoders, and
 *   {@link SESSION_FRAMING} says how requests after attestation are framed, when they are.
 *
 * Decoders and encoders are typed loosely on purpose (values are `unknown`): message types are
 * being reworked while this runs, and a mismatch should fail a fuzz case naming it, not the build.
 */
import fc from 'fast-check';
import * as codec from '../../proto/codec/index.js';
import {
  BOOT_ID_BYTES,
  DEVICE_LIMITS,
  DEVICE_OPS,
  NONCE_BYTES,
  REJECT_CODES,
  SIGNATURE_BYTES,
  UPDATE_REPORT_OUTCOMES,
  encodeEvidence,
} from '../../proto/codec/index.js';
import type { DeploymentId, DeviceId, DeviceOp, Rejection } from '../../proto/codec/index.js';
import * as deviceGen from '../../proto/gen/sphere/device/v1/device.js';
import { fail, sameValue } from './property.js';
import type { PureFuzz } from './property.js';
import { discoverShape, fuzzBytes, hexString } from './protobuf.js';
import type { FuzzBytes, MessageShape } from './protobuf.js';

/** What every `decode<Message>` of the codec returns. */
export type AnyDecodeResult = { ok: true; value: unknown } | { ok: false; error: Rejection };

export interface DeviceDecoder {
  /** `ChallengeRequest` for `decodeChallengeRequest`. */
  readonly message: string;
  readonly decode: (bytes: Uint8Array) => AnyDecodeResult;
  /** `encode<Message>` when the codec exports one. */
  readonly encode?: (value: unknown) => Uint8Array;
  /** Field shape of the generated type of the same name, when there is one. */
  readonly shape?: MessageShape;
  /** Largest input decoded rather than refused as PAYLOAD_TOO_LARGE (probed). */
  readonly limit?: number;
}

/** The bound a size-bounded decoder (`decodeX(bytes, maxBody)`) is fuzzed with. */
export const FUZZ_BODY_BOUND = 512;

const exported = new Map<string, unknown>(Object.entries(codec));
const generated = new Map<string, unknown>(Object.entries(deviceGen));

const zeros = new Uint8Array(16 * 1024 * 1024);

/**
 * The largest input `decode` does not refuse as too large, found by bisection over zero bytes;
 * undefined when it takes 16 MiB.
 */
export function discoverLimit(decode: (bytes: Uint8Array) => AnyDecodeResult): number | undefined {
  const tooLarge = (n: number): boolean => {
    const r = decode(zeros.subarray(0, n));
    return !r.ok && r.error.code === REJECT_CODES.PAYLOAD_TOO_LARGE;
  };
  if (!tooLarge(zeros.length)) return undefined;
  let lo = 0;
  let hi = zeros.length;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (tooLarge(mid)) hi = mid;
    else lo = mid;
  }
  return lo;
}

function decoderOf(message: string, fn: (...args: never[]) => unknown): DeviceDecoder {
  const decode =
    fn.length >= 2
      ? (b: Uint8Array) => (fn as (b: Uint8Array, bound: number) => AnyDecodeResult)(b, FUZZ_BODY_BOUND)
      : (fn as (b: Uint8Array) => AnyDecodeResult);
  const encode = exported.get(`encode${message}`);
  const fns = generated.get(message) as { decode?: (b: Uint8Array) => unknown } | undefined;
  const limit = discoverLimit(decode);
  return {
    message,
    decode,
    ...(typeof encode === 'function' ? { encode: encode as (value: unknown) => Uint8Array } : {}),
    ...(typeof fns?.decode === 'function' ? { shape: discoverShape(fns.decode.bind(fns)) } : {}),
    ...(limit === undefined ? {} : { limit }),
  };
}

/** Every `decode<Message>` exported by proto/codec, in name order. */
export function deviceDecoders(): DeviceDecoder[] {
  return [...exported.entries()]
    .filter(
      ([name, fn]) => /^decode[A-Z]\w*$/.test(name) && name !== 'decodeStrict' && typeof fn === 'function',
    )
    .map(([name, fn]) => decoderOf(name.slice('decode'.length), fn as (...args: never[]) => unknown))
    .sort((a, b) => a.message.localeCompare(b.message));
}

// ---- session framing ----------------------------------------------------------------------

/** Requests after attestation, framed with the session (ID, counter, MAC) around an encoded body. */
export interface SessionFraming {
  /** `decodeAuthenticatedRequest(bytes, maxBody)`. */
  decode(bytes: Uint8Array, maxBody: number): AnyDecodeResult;
  encode(frame: { body: Uint8Array; sessionId: Uint8Array; counter: number; mac: Uint8Array }): Uint8Array;
}

/** The codec's session framing, when it has one. */
export const SESSION_FRAMING: SessionFraming | undefined = (() => {
  const decode = exported.get('decodeAuthenticatedRequest');
  const encode = exported.get('encodeAuthenticatedRequest');
  if (typeof decode !== 'function' || typeof encode !== 'function') return undefined;
  return { decode: decode as SessionFraming['decode'], encode: encode as SessionFraming['encode'] };
})();

/** Ops that open a session, and so travel without session framing. */
const SESSION_OPENING_OPS: readonly string[] = ['challenge', 'attest'];

export function isFramed(op: DeviceOp): boolean {
  return SESSION_FRAMING !== undefined && !SESSION_OPENING_OPS.includes(op);
}

// ---- domain-valid values --------------------------------------------------------------------

const bytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
export const deviceIdArb: fc.Arbitrary<DeviceId> = hexString(128).map((s) => s as DeviceId);
export const deploymentIdArb: fc.Arbitrary<DeploymentId> = hexString(16).map((s) => `d-${s}` as DeploymentId);
const point = bytes(64).map((b) => Uint8Array.of(4, ...b));
/** Whole milliseconds an int64 field carries (negative ones too). */
const int64 = fc.oneof(fc.integer({ min: 0, max: 2 ** 42 }), fc.maxSafeInteger());
const uint32 = fc.nat({ max: 2 ** 32 - 1 });
const uint64 = fc.oneof(fc.nat(), fc.nat({ max: Number.MAX_SAFE_INTEGER }));
const positive = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const text = (min: number, max: number): fc.Arbitrary<string> =>
  fc
    .oneof(
      fc.string({ unit: 'grapheme-ascii', minLength: min, maxLength: max }),
      fc.string({ unit: 'grapheme', minLength: min, maxLength: Math.max(min, Math.min(max, 8)) }),
    )
    .filter((s) => s.length >= min && s.length <= max);
const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/);
const version = fc.stringMatching(/^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/);
const osVersion = fc.stringMatching(/^\d{1,3}\.\d{1,3}$/);

export const rejectionArb: fc.Arbitrary<Rejection> = fc.record(
  {
    code: fc.constantFrom(...Object.values(REJECT_CODES)),
    message: fc.string({ maxLength: 60 }),
    retryAfterMs: positive,
    serviceTimeMs: positive,
  },
  { requiredKeys: ['code', 'message'] },
);

function reply<T>(value: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof(
    value.map((v) => ({ ok: true as const, value: v })),
    rejectionArb.map((error) => ({ ok: false as const, error })),
  );
}

export const evidenceArb = fc
  .record({
    deviceId: deviceIdArb,
    nonce: bytes(NONCE_BYTES),
    measurements: fc.array(fc.record({ stage: text(1, DEVICE_LIMITS.maxStageName), digest: bytes(32) }), {
      minLength: 1,
      maxLength: DEVICE_LIMITS.maxMeasurements,
    }),
    measurementChain: bytes(32),
    osVersion,
    securityVersion: uint32,
    deviceTimeMs: int64,
    bootId: bytes(BOOT_ID_BYTES),
    bootCount: uint32,
    attestationPublicKey: point,
    clientPublicKey: point,
  })
  .filter((e) => encodeEvidence(e).length <= DEVICE_LIMITS.evidence);

const component = fc.record({
  kind: fc.constantFrom('os' as const, 'app' as const),
  name,
  version,
  securityVersion: uint32,
});

/** A value for `encode<Message>` and the value `decode<Message>` must give back for its bytes. */
export interface ValidValue {
  readonly input: unknown;
  readonly expected: unknown;
}

const same = (a: fc.Arbitrary<unknown>): fc.Arbitrary<ValidValue> =>
  a.map((v) => ({ input: v, expected: v }));

const errorEvents = fc
  .record({
    fromMs: fc.integer({ min: 0, max: 2 ** 42 }),
    span: fc.integer({ min: 0, max: 14 * 24 * 3_600_000 }),
  })
  .chain(({ fromMs, span }) =>
    fc.record({
      fromMs: fc.constant(fromMs),
      toMs: fc.constant(fromMs + span),
      // The codec takes events in any order (the service wants them in time order).
      events: fc
        .tuple(
          fc.array(
            fc.record({
              kind: fc.constantFrom(
                'app-crash',
                'app-exit',
                'os-crash',
                'update-failed',
                'attestation-failed',
              ),
              component: fc.oneof(fc.constant('os'), name),
              version,
              exitCode: fc.nat({ max: 255 }),
              atMs: fc.integer({ min: fromMs, max: fromMs + span }),
              detail: fc.string({ maxLength: 60 }),
            }),
            { maxLength: 12 },
          ),
          fc.nat({ max: 3 }),
        )
        .map(([es, order]) => (order === 0 ? es : [...es].sort((a, b) => a.atMs - b.atMs))),
    }),
  );

/**
 * Domain-valid values per message. A decoder without an entry is still fuzzed with random and
 * shaped bytes; the fuzz suite's table test names it.
 */
export const VALID_DEVICE_MESSAGES: Readonly<Record<string, fc.Arbitrary<ValidValue>>> = {
  ChallengeRequest: same(fc.record({ deviceId: deviceIdArb })),
  ChallengeReply: same(
    reply(fc.record({ nonce: bytes(NONCE_BYTES), issuedAtMs: int64, expiresAtMs: int64 })),
  ),
  Evidence: same(evidenceArb),
  AttestRequest: fc
    .record({ evidence: evidenceArb, signature: bytes(SIGNATURE_BYTES) })
    .map(({ evidence, signature }) => {
      const request = { evidence: encodeEvidence(evidence), signature };
      return { input: request, expected: { request, evidence } };
    }),
  AttestReply: same(
    reply(
      fc.record({
        updateCertificate: fc.uint8Array({ maxLength: 600 }),
        clientCertificate: fc.uint8Array({ maxLength: 600 }),
        tenantCa: fc.uint8Array({ maxLength: 600 }),
        notAfterMs: int64,
        session: fc.record({
          sessionId: bytes(16),
          serverPublicKey: point,
          wrappedKey: bytes(32),
          expiresAtMs: int64,
        }),
      }),
    ),
  ),
  AuthenticatedRequest: same(
    fc.record({
      body: fc.uint8Array({ minLength: 1, maxLength: FUZZ_BODY_BOUND }),
      sessionId: bytes(16),
      counter: positive,
      mac: bytes(16),
    }),
  ),
  Heartbeat: same(fc.record({ deviceId: deviceIdArb, bootId: bytes(BOOT_ID_BYTES), deviceTimeMs: int64 })),
  UpdateReport: same(
    fc.record({
      deviceId: deviceIdArb,
      deploymentId: deploymentIdArb,
      reportId: text(1, 128),
      outcome: fc.constantFrom(...UPDATE_REPORT_OUTCOMES),
      code: text(0, 64),
      deviceTimeMs: int64,
    }),
  ),
  UpdateReportReply: same(reply(fc.record({ reportId: fc.string({ maxLength: 40 }) }))),
  UpdateCheckRequest: same(
    fc.record({
      deviceId: deviceIdArb,
      trustedRootVersion: uint32,
      installed: fc.array(component, { maxLength: DEVICE_LIMITS.maxInstalled }),
      deviceTimeMs: int64,
    }),
  ),
  UpdateCheckReply: same(
    reply(
      fc.record({
        offers: fc.array(
          fc.record({
            kind: fc.constantFrom('os' as const, 'app' as const),
            name,
            version,
            securityVersion: uint32,
            deploymentId: deploymentIdArb,
            targetName: fc.string({ maxLength: 40 }),
            length: uint64,
            chunkSize: fc.integer({ min: 1, max: DEVICE_LIMITS.maxChunk }),
          }),
          { maxLength: DEVICE_LIMITS.maxOffers },
        ),
        rollbacks: fc.array(deploymentIdArb, { maxLength: 4 }),
        metadata: fc.record({
          roots: fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: DEVICE_LIMITS.maxRoots }),
          timestamp: fc.uint8Array({ maxLength: 200 }),
          snapshot: fc.uint8Array({ maxLength: 200 }),
          targets: fc.uint8Array({ maxLength: 200 }),
        }),
      }),
    ),
  ),
  ChunkRequest: same(
    fc.record({
      deviceId: deviceIdArb,
      deploymentId: deploymentIdArb,
      offset: uint64,
      length: fc.integer({ min: 1, max: DEVICE_LIMITS.maxChunk }),
    }),
  ),
  ChunkReply: same(reply(fc.record({ offset: uint64, data: fc.uint8Array({ maxLength: 2000 }) }))),
  ErrorReportUpload: same(
    fc
      .record({
        deviceId: deviceIdArb,
        reportId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
        window: errorEvents,
        droppedEvents: uint32,
        deviceTimeMs: int64,
      })
      .map(({ window, ...r }) => ({ ...r, ...window })),
  ),
  ErrorReportReply: same(
    reply(fc.record({ reportId: fc.string({ maxLength: 40 }), duplicate: fc.boolean() })),
  ),
};

/**
 * Per message: the argument `encode<Message>` takes for a decoded value (where the two differ),
 * and whether the decoder accepts only canonical bytes, so that re-encoding what it accepted
 * gives the input back byte for byte (the strict request decoders). Replies are compared by
 * value instead: they map unknown codes to INTERNAL. Messages not listed are compared by value.
 */
export const REENCODE: Readonly<
  Record<string, { readonly input?: (decoded: unknown) => unknown; readonly canonical: boolean }>
> = {
  ChallengeRequest: { canonical: true },
  Evidence: { canonical: true },
  AttestRequest: { input: (d) => (d as { request: unknown }).request, canonical: true },
  AuthenticatedRequest: { canonical: true },
  Heartbeat: { canonical: true },
  UpdateReport: { canonical: true },
  UpdateCheckRequest: { canonical: true },
  ChunkRequest: { canonical: true },
  ErrorReportUpload: { canonical: true },
};

// ---- device operations ----------------------------------------------------------------------

/**
 * Request and reply messages of an op whose names do not follow `<Op>Request` (or `<Op>`) and
 * `<Op>Reply`; `reply: null` for a fire-and-forget op.
 */
const OP_MESSAGES: Readonly<Record<string, { readonly request: string; readonly reply: string | null }>> = {
  heartbeat: { request: 'Heartbeat', reply: null },
  'update-chunk': { request: 'ChunkRequest', reply: 'ChunkReply' },
  'update-report': { request: 'UpdateReport', reply: 'UpdateReportReply' },
  'error-report': { request: 'ErrorReportUpload', reply: 'ErrorReportReply' },
};

export interface DeviceOpMessages {
  readonly op: DeviceOp;
  readonly request: DeviceDecoder | undefined;
  /** `null`: fire-and-forget (the shard answers only a refusal, with an empty reply). */
  readonly reply: DeviceDecoder | null | undefined;
}

const pascal = (op: string): string =>
  op
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');

/**
 * Every op of DEVICE_OPS with its decoders, by name unless {@link OP_MESSAGES} says otherwise.
 * `undefined` marks one not found (the table test names it: add a line to OP_MESSAGES).
 */
export function deviceOpMessages(decoders: readonly DeviceDecoder[] = deviceDecoders()): DeviceOpMessages[] {
  const byName = new Map(decoders.map((d) => [d.message, d]));
  return DEVICE_OPS.map((op) => {
    const named = OP_MESSAGES[op];
    const p = pascal(op);
    const request =
      named === undefined ? (byName.get(`${p}Request`) ?? byName.get(p)) : byName.get(named.request);
    const replyName = named === undefined ? `${p}Reply` : named.reply;
    return { op, request, reply: replyName === null ? null : byName.get(replyName) };
  });
}

/** The device a decoded request is about (`deviceId`, or the evidence's), if any. */
export function deviceIdOf(value: unknown): DeviceId | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as { deviceId?: unknown; evidence?: { deviceId?: unknown } };
  const id = v.deviceId ?? v.evidence?.deviceId;
  return typeof id === 'string' ? (id as DeviceId) : undefined;
}

// ---- the decoder property -------------------------------------------------------------------

const REJECT_SET = new Set<string>(Object.values(REJECT_CODES));

/**
 * Checks one decode: no throw; `{ ok: true, value }` or `{ ok: false, error }` with a code from
 * REJECT_CODES and a message; PAYLOAD_TOO_LARGE exactly when the input is over the limit; a
 * decoded value re-encodes to a value that decodes the same (and, for the strict request
 * decoders, to the very input bytes).
 */
export function checkDecode(d: DeviceDecoder, input: Uint8Array): AnyDecodeResult {
  const r = d.decode(input) as unknown;
  if (typeof r !== 'object' || r === null) fail(`decode${d.message} returned ${String(r)}`);
  const result = r as AnyDecodeResult;
  if (result.ok === false) {
    const { code, message } = (result.error ?? {}) as Partial<Rejection>;
    if (typeof code !== 'string' || !REJECT_SET.has(code))
      fail(`decode${d.message} refused with ${String(code)}, not one of REJECT_CODES`);
    if (typeof message !== 'string' || message.length === 0)
      fail(`decode${d.message} refused (${code}) without a message`);
    if (d.limit !== undefined && (code === REJECT_CODES.PAYLOAD_TOO_LARGE) !== input.length > d.limit)
      fail(`decode${d.message}: ${code} for ${input.length} bytes (limit ${d.limit})`);
    return result;
  }
  if (result.ok !== true || !('value' in result)) fail(`decode${d.message} returned ${JSON.stringify(r)}`);
  const leak = generatedKeyPath(result.value);
  if (leak !== undefined)
    fail(`decode${d.message} returns ts-proto's _unknownFields in its value (at ${leak})`);
  if (d.encode === undefined) return result;
  const re = REENCODE[d.message];
  const again = d.encode(re?.input === undefined ? result.value : re.input(result.value));
  if (re?.canonical === true && !Buffer.from(again).equals(Buffer.from(input)))
    fail(
      `decode${d.message} accepted bytes that re-encode differently (${input.length} → ${again.length} bytes)`,
    );
  const twice = d.decode(again);
  if (!twice.ok)
    fail(`decode${d.message} refuses the re-encoding of what it accepted: ${twice.error.message}`);
  if (!sameValue(twice.value, result.value)) fail(`decode${d.message}: re-encoding changed the value`);
  return result;
}

/** Path of a `_unknownFields` key (ts-proto's) in a domain value, if there is one. */
function generatedKeyPath(value: unknown, path = 'value'): string | undefined {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return undefined;
  for (const [k, v] of Object.entries(value)) {
    if (k === '_unknownFields') return `${path}._unknownFields`;
    const found = generatedKeyPath(v, `${path}.${k}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Valid encodings of `d`'s message (with the value each must decode to), when it has a
 * generator; with `deviceId`, of messages about that device (a `deviceId` field set to it).
 */
export function validEncodings(
  d: DeviceDecoder,
  deviceId?: DeviceId,
): fc.Arbitrary<{ bytes: Uint8Array; expected: unknown }> | undefined {
  const valid = VALID_DEVICE_MESSAGES[d.message];
  const encode = d.encode;
  if (valid === undefined || encode === undefined) return undefined;
  const limit = d.limit ?? Infinity;
  const about = (v: unknown): unknown =>
    deviceId !== undefined && typeof v === 'object' && v !== null && 'deviceId' in v ? { ...v, deviceId } : v;
  return valid
    .map((v) => ({ bytes: encode(about(v.input)), expected: about(v.expected) }))
    .filter((v) => v.bytes.length <= limit);
}

/** Pure property of one codec decoder over random, shaped and mutated-valid bytes. */
export function deviceDecoderFuzz(d: DeviceDecoder): PureFuzz<FuzzBytes> {
  const valid = validEncodings(d);
  const expectedOf = new WeakMap<Uint8Array, unknown>();
  return {
    arbitrary: fuzzBytes({
      ...(d.shape === undefined ? {} : { shape: d.shape }),
      ...(valid === undefined
        ? {}
        : {
            valid: valid.map((v) => {
              expectedOf.set(v.bytes, v.expected);
              return v.bytes;
            }),
          }),
      ...(d.limit === undefined ? {} : { padTo: d.limit + 1 }),
    }),
    check(input) {
      const r = checkDecode(d, input.bytes);
      if (input.how !== 'valid') return;
      if (!r.ok) fail(`decode${d.message} refused a valid encoding: ${r.error.code} ${r.error.message}`);
      const expected = expectedOf.get(input.bytes);
      if (expected !== undefined && !sameValue(r.value, expected))
        fail(`decode${d.message} gave back another value than was encoded`);
    },
  };
}
