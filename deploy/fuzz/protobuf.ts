/**
 * Protobuf wire-format tools for fuzzing, independent of any one message:
 *
 * - {@link discoverShape}: which (field, wire type) pairs a generated decoder knows, found by
 *   probing the decoder itself (ts-proto files anything else under `_unknownFields`), nested
 *   messages included. New messages need no hand-written schema.
 * - {@link shapedMessage}: random messages of that shape (known fields, mostly in order, values
 *   of the right wire type drawn from a dictionary of values the protocol uses), which get past
 *   the protobuf layer far more often than random bytes and reach field validation.
 * - {@link wireMutation} / {@link mutate}: mutations of a valid encoding, as data (readable in a
 *   counterexample): truncation, bit flips, inserted or deleted bytes, unknown fields, wrong wire
 *   types, huge or off-by-one length prefixes, duplicated, dropped and swapped fields, padding
 *   past the size limit.
 */
import fc from 'fast-check';

export const WIRE = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;
export type KnownWireType = 0 | 1 | 2 | 5;

const text = new TextEncoder();

/** Unsigned LEB128 of `n` (up to 2^64 - 1; larger values are cut to 64 bits). */
export function varint(n: bigint | number): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

export function tag(field: number, wireType: number): number[] {
  return varint((BigInt(field) << 3n) | BigInt(wireType & 7));
}

export function concat(...parts: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One field found by {@link scanFields}: byte offsets into the scanned buffer. */
export interface ScannedField {
  readonly field: number;
  readonly wireType: number;
  /** First byte of the tag. */
  readonly start: number;
  /** First byte after the tag. */
  readonly tagEnd: number;
  /** First byte of the payload (after the length prefix for LEN fields). */
  readonly payloadStart: number;
  /** First byte after the field. */
  readonly end: number;
}

function readVarint(b: Uint8Array, at: number): { value: bigint; next: number } | null {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    const byte = b[at + i];
    if (byte === undefined) return null;
    v |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value: v, next: at + i + 1 };
  }
  return null;
}

/**
 * The fields of `bytes` between `from` and `to`, in order, stopping at the first one that does not
 * parse. With `nested`, LEN payloads that parse completely as fields are scanned too (they may be
 * messages), so the list holds fields at every depth, outer ones first.
 */
export function scanFields(bytes: Uint8Array, nested = true, from = 0, to = bytes.length): ScannedField[] {
  const out: ScannedField[] = [];
  let at = from;
  while (at < to) {
    const t = readVarint(bytes, at);
    if (t === null || t.next > to) break;
    const field = Number(t.value >> 3n);
    const wireType = Number(t.value & 7n);
    if (field === 0) break;
    let payloadStart = t.next;
    let end: number;
    if (wireType === WIRE.VARINT) {
      const v = readVarint(bytes, t.next);
      if (v === null) break;
      end = v.next;
    } else if (wireType === WIRE.I64) end = t.next + 8;
    else if (wireType === WIRE.I32) end = t.next + 4;
    else if (wireType === WIRE.LEN) {
      const len = readVarint(bytes, t.next);
      if (len === null) break;
      payloadStart = len.next;
      end = len.next + Number(len.value);
    } else break;
    if (end > to) break;
    out.push({ field, wireType, start: at, tagEnd: t.next, payloadStart, end });
    // Payloads up to 4 KiB are scanned too; only one that parses to its very end is a message.
    if (nested && wireType === WIRE.LEN && end > payloadStart && end - payloadStart <= 4096) {
      const inner = scanFields(bytes, true, payloadStart, end);
      const last = inner.reduce((m, f) => Math.max(m, f.end), 0);
      if (last === end) for (const f of inner) out.push(f);
    }
    at = end;
  }
  return out;
}

// ---- shape discovery ------------------------------------------------------------------------

export interface FieldShape {
  readonly field: number;
  readonly wireType: KnownWireType;
  /** Set when the LEN field holds a message (its own shape). */
  readonly nested?: MessageShape;
}
export interface MessageShape {
  readonly fields: readonly FieldShape[];
}

/** Whether a decoded ts-proto value holds an unknown (or mistyped) field at any depth. */
export function hasUnknownField(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return false;
  if (Array.isArray(value)) return value.some(hasUnknownField);
  for (const [key, child] of Object.entries(value)) {
    if (key === '_unknownFields') {
      if (child !== undefined && child !== null && Object.keys(child as object).length > 0) return true;
    } else if (hasUnknownField(child)) return true;
  }
  return false;
}

/** Removes `_unknownFields` at every depth (in place) so encoding gives canonical bytes. */
export function stripUnknownFields<T>(value: T): T {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    for (const v of value) stripUnknownFields(v);
    return value;
  }
  const o = value as Record<string, unknown>;
  delete o['_unknownFields'];
  for (const child of Object.values(o)) stripUnknownFields(child);
  return value;
}

const PROBE_PAYLOAD: Record<KnownWireType, number[]> = {
  [WIRE.VARINT]: [1],
  [WIRE.I64]: [0, 0, 0, 0, 0, 0, 0, 0],
  [WIRE.LEN]: [0],
  [WIRE.I32]: [0, 0, 0, 0],
};
/** A field number no message of this project uses, inside a LEN payload: recorded only by a message. */
const MARKER = [...tag(1000, WIRE.VARINT), 1];

/**
 * The fields `decode` knows, probed one (field, wire type) at a time for field numbers
 * 1..`maxField`; nested messages are probed through their parent down to `depth` levels.
 */
export function discoverShape(
  decode: (bytes: Uint8Array) => unknown,
  maxField = 24,
  depth = 3,
): MessageShape {
  const accepts = (bytes: Uint8Array): boolean => {
    try {
      return !hasUnknownField(decode(bytes));
    } catch {
      return false;
    }
  };
  const fields: FieldShape[] = [];
  for (let field = 1; field <= maxField; field++) {
    for (const wireType of [WIRE.VARINT, WIRE.I64, WIRE.LEN, WIRE.I32] as const) {
      if (!accepts(concat(tag(field, wireType), PROBE_PAYLOAD[wireType]))) continue;
      if (wireType !== WIRE.LEN || depth === 0) {
        fields.push({ field, wireType });
        continue;
      }
      const wrap = (inner: Uint8Array): Uint8Array =>
        concat(tag(field, WIRE.LEN), varint(inner.length), inner);
      const isMessage = !accepts(wrap(Uint8Array.from(MARKER)));
      fields.push(
        isMessage
          ? { field, wireType, nested: discoverShape((b) => decode(wrap(b)), maxField, depth - 1) }
          : { field, wireType },
      );
    }
  }
  return { fields };
}

// ---- values ---------------------------------------------------------------------------------

const hexChars = '0123456789abcdef';
export const hexString = (length: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...hexChars), minLength: length, maxLength: length });

/** Strings and byte strings this protocol gives meaning to (an AFL-style dictionary). */
const WORDS = [
  'os',
  'app',
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled-back',
  'pause',
  'resume',
  'cancel',
  'RETAIL',
  'RETAIL_EVAL',
  'ACCEPT_ALL',
  'NO_UPDATE',
  '25.10',
  '25.04',
  '1.0.0',
  'blinky',
  'azure-sphere-os',
  'Field Test',
  'INSTALL_FAILED',
  'TUF_BAD_SIGNATURE',
  '0',
  '-1',
  'zz',
  ' ',
  '',
];

/** Random-ish bytes for a LEN field: random, text, IDs, keys, lengths the protocol checks. */
export function dictionaryBytes(extra: readonly Uint8Array[] = []): fc.Arbitrary<Uint8Array> {
  const str = (a: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> => a.map((s) => text.encode(s));
  const options: fc.Arbitrary<Uint8Array>[] = [
    fc.uint8Array({ maxLength: 80 }),
    str(fc.string({ maxLength: 40 })),
    str(fc.string({ unit: 'grapheme', maxLength: 20 })),
    str(fc.constantFrom(...WORDS)),
    str(hexString(128)),
    str(fc.tuple(fc.constantFrom('d-', 'i-', 'p-', 'g-', 't-'), hexString(16)).map(([p, h]) => p + h)),
    fc.constantFrom(16, 32, 64, 65).chain((n) =>
      fc.uint8Array({ minLength: n, maxLength: n }).map((b) => {
        if (n === 65) b[0] = 4;
        return b;
      }),
    ),
    fc.constant(Uint8Array.of(0xff, 0xfe, 0xc0, 0x80)),
  ];
  if (extra.length > 0) options.push(fc.constantFrom(...extra));
  return fc.oneof(...options);
}

const INTERESTING_VARINTS = [
  0n,
  1n,
  2n,
  127n,
  128n,
  255n,
  65_535n,
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

const varintValue: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(...INTERESTING_VARINTS),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: 0n, max: 1000n }),
);

function fixedBytes(n: 4 | 8): fc.Arbitrary<Uint8Array> {
  const special = (v: number): Uint8Array => {
    const b = new Uint8Array(n);
    const view = new DataView(b.buffer);
    if (n === 8) view.setFloat64(0, v, true);
    else view.setFloat32(0, v, true);
    return b;
  };
  return fc.oneof(
    fc.uint8Array({ minLength: n, maxLength: n }),
    fc.constantFrom(NaN, Infinity, -Infinity, -0, 0.5, 1e300).map(special),
  );
}

function fieldBytes(f: FieldShape, lenValue: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  switch (f.wireType) {
    case WIRE.VARINT:
      return varintValue.map((v) => concat(tag(f.field, f.wireType), varint(v)));
    case WIRE.I64:
      return fixedBytes(8).map((b) => concat(tag(f.field, f.wireType), b));
    case WIRE.I32:
      return fixedBytes(4).map((b) => concat(tag(f.field, f.wireType), b));
    case WIRE.LEN:
      return lenValue.map((b) => concat(tag(f.field, f.wireType), varint(b.length), b));
  }
}

/**
 * Random messages of `shape`: a few of its fields (sorted by number nine times in ten), each
 * with a value of its wire type; LEN values come from `dictionary` or, for nested messages,
 * from their own shape.
 */
export function shapedMessage(
  shape: MessageShape,
  dictionary: fc.Arbitrary<Uint8Array> = dictionaryBytes(),
  depth = 3,
): fc.Arbitrary<Uint8Array> {
  if (shape.fields.length === 0) return fc.constant(new Uint8Array());
  const one = fc.oneof(
    ...shape.fields.map((f) =>
      fieldBytes(
        f,
        f.nested !== undefined && depth > 0
          ? fc.oneof(
              { weight: 4, arbitrary: shapedMessage(f.nested, dictionary, depth - 1) },
              { weight: 1, arbitrary: dictionary },
            )
          : dictionary,
      ).map((bytes) => ({ field: f.field, bytes })),
    ),
  );
  return fc
    .tuple(fc.array(one, { maxLength: Math.min(12, shape.fields.length * 2) }), fc.nat({ max: 9 }))
    .map(([fields, order]) =>
      concat(...(order === 0 ? fields : [...fields].sort((a, b) => a.field - b.field)).map((f) => f.bytes)),
    );
}

// ---- mutations ------------------------------------------------------------------------------

/** One edit of an encoding; positions and indices wrap around the input's size. */
export type WireMutation =
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | {
      readonly kind: 'unknown-field';
      readonly at: number;
      readonly field: number;
      readonly wireType: number;
      readonly payload: Uint8Array;
    }
  | { readonly kind: 'wire-type'; readonly which: number; readonly wireType: number }
  | { readonly kind: 'length'; readonly which: number; readonly length: bigint }
  | { readonly kind: 'duplicate'; readonly which: number }
  | { readonly kind: 'drop'; readonly which: number }
  | { readonly kind: 'swap'; readonly which: number; readonly other: number }
  | { readonly kind: 'pad'; readonly bytes: number };

/**
 * Mutation arbitrary. `padTo` is the size just past the decoder's limit: `pad` mutations append an
 * unknown field that takes the message to about that size (or beyond).
 */
export function wireMutation(padTo = 0, maxBytes = Infinity): fc.Arbitrary<WireMutation> {
  const at = fc.nat();
  const lengths = fc.oneof(
    fc.constantFrom(0n, 1n, 127n, 128n, 2n ** 28n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 63n, 2n ** 64n - 1n),
    fc.bigInt({ min: 0n, max: 300n }),
  );
  const options: fc.Arbitrary<WireMutation>[] = [
    at.map((a) => ({ kind: 'truncate' as const, at: a })),
    fc.record({ kind: fc.constant('flip' as const), at, bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at, value: fc.constantFrom(0, 0x7f, 0x80, 0xff, 0x08) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), at, count: fc.integer({ min: 1, max: 16 }) }),
    fc.record({
      kind: fc.constant('unknown-field' as const),
      at,
      field: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(127, 1000, 2 ** 29 - 1)),
      wireType: fc.nat({ max: 7 }),
      payload: fc.uint8Array({ maxLength: 12 }),
    }),
    fc.record({ kind: fc.constant('wire-type' as const), which: at, wireType: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('length' as const), which: at, length: lengths }),
    fc.record({ kind: fc.constant('duplicate' as const), which: at }),
    fc.record({ kind: fc.constant('drop' as const), which: at }),
    fc.record({ kind: fc.constant('swap' as const), which: at, other: at }),
  ];
  if (padTo > 0)
    options.push(
      fc
        .oneof(fc.constant(padTo), fc.integer({ min: padTo, max: padTo + 64 }), fc.constant(padTo * 4))
        .map((bytes) => ({ kind: 'pad' as const, bytes: Math.min(bytes, maxBytes) })),
    );
  return fc.oneof(...options);
}

/** Applies `m` to `b` (a new buffer; `b` is not changed). */
export function mutate(b: Uint8Array, m: WireMutation): Uint8Array {
  const n = b.length;
  const pos = (i: number): number => (n === 0 ? 0 : i % (n + 1));
  const fields = (): readonly ScannedField[] => scanFields(b);
  const pick = (i: number): ScannedField | undefined => {
    const all = fields();
    return all.length === 0 ? undefined : all[i % all.length];
  };
  switch (m.kind) {
    case 'truncate':
      return n === 0 ? b : b.slice(0, m.at % n);
    case 'flip':
    case 'set': {
      if (n === 0) return b;
      const out = b.slice();
      const i = m.at % n;
      out[i] = m.kind === 'flip' ? (out[i] ?? 0) ^ (1 << m.bit) : m.value;
      return out;
    }
    case 'insert':
      return concat(b.subarray(0, pos(m.at)), m.bytes, b.subarray(pos(m.at)));
    case 'delete': {
      const i = pos(m.at);
      return concat(b.subarray(0, i), b.subarray(Math.min(n, i + m.count)));
    }
    case 'unknown-field': {
      const payload =
        m.wireType === WIRE.LEN ? [...varint(m.payload.length), ...m.payload] : [...m.payload.subarray(0, 8)];
      const top = scanFields(b, false);
      // Between two top-level fields (or at the end), so the rest still parses.
      const cut = top.length === 0 ? n : (top[m.at % top.length]?.end ?? n);
      return concat(b.subarray(0, cut), tag(m.field, m.wireType), payload, b.subarray(cut));
    }
    case 'wire-type': {
      const f = pick(m.which);
      if (f === undefined) return b;
      return concat(b.subarray(0, f.start), tag(f.field, m.wireType), b.subarray(f.tagEnd));
    }
    case 'length': {
      const f = fields().filter((x) => x.wireType === WIRE.LEN);
      const target = f.length === 0 ? undefined : f[m.which % f.length];
      if (target === undefined) return b;
      return concat(b.subarray(0, target.tagEnd), varint(m.length), b.subarray(target.payloadStart));
    }
    case 'duplicate': {
      const f = pick(m.which);
      if (f === undefined) return b;
      return concat(b.subarray(0, f.end), b.subarray(f.start, f.end), b.subarray(f.end));
    }
    case 'drop': {
      const f = pick(m.which);
      if (f === undefined) return b;
      return concat(b.subarray(0, f.start), b.subarray(f.end));
    }
    case 'swap': {
      const top = scanFields(b, false);
      if (top.length < 2) return b;
      const i = m.which % top.length;
      let j = m.other % top.length;
      if (i === j) j = (j + 1) % top.length;
      const [x, y] = i < j ? [top[i], top[j]] : [top[j], top[i]];
      if (x === undefined || y === undefined) return b;
      return concat(
        b.subarray(0, x.start),
        b.subarray(y.start, y.end),
        b.subarray(x.end, y.start),
        b.subarray(x.start, x.end),
        b.subarray(y.end),
      );
    }
    case 'pad': {
      const size = Math.max(0, m.bytes - n);
      return concat(b, tag(1000, WIRE.LEN), varint(size), new Uint8Array(size).fill(0x41));
    }
  }
}

/** 1 to `max` mutations of a base drawn from `base`. */
export function mutated(
  base: fc.Arbitrary<Uint8Array>,
  padTo = 0,
  maxBytes = Infinity,
): fc.Arbitrary<{ readonly base: Uint8Array; readonly mutations: readonly WireMutation[] }> {
  return fc.record({
    base,
    mutations: fc.array(wireMutation(padTo, maxBytes), { minLength: 1, maxLength: 4 }),
  });
}

export function applyMutations(base: Uint8Array, mutations: readonly WireMutation[]): Uint8Array {
  return mutations.reduce(mutate, base);
}

/**
 * Bytes for a decoder: random, shaped like its message, or a mutated valid encoding; the result
 * keeps how it was made (a shrunk counterexample then reads as "valid X with a bit flipped").
 */
export type FuzzBytes =
  | { readonly how: 'random'; readonly bytes: Uint8Array }
  | { readonly how: 'shaped'; readonly bytes: Uint8Array }
  | { readonly how: 'valid'; readonly bytes: Uint8Array }
  | {
      readonly how: 'mutated';
      readonly bytes: Uint8Array;
      readonly base: Uint8Array;
      readonly mutations: readonly WireMutation[];
    };

/** Bytes as a counterexample shows them: in full up to 512, else their size, head and tail. */
function shortBytes(b: Uint8Array): string {
  const list = (x: Uint8Array): string => [...x].join(',');
  return b.length <= 512
    ? `Uint8Array.from([${list(b)}])`
    : `<${b.length} bytes: [${list(b.subarray(0, 48))}, …, ${list(b.subarray(b.length - 16))}]>`;
}

function shown<T extends FuzzBytes>(f: T): T {
  return Object.defineProperty({ ...f }, fc.toStringMethod, {
    value: () =>
      f.how === 'mutated'
        ? `{ how: 'mutated', bytes: ${shortBytes(f.bytes)}, base: ${shortBytes(f.base)}, mutations: ${fc.stringify(f.mutations)} }`
        : `{ how: '${f.how}', bytes: ${shortBytes(f.bytes)} }`,
  });
}

export function fuzzBytes(opts: {
  readonly shape?: MessageShape;
  readonly valid?: fc.Arbitrary<Uint8Array>;
  /** Size just past the decoder's limit (pad mutations reach it). */
  readonly padTo?: number;
  /** Largest input to make (pad mutations stop there): what the transport carries. */
  readonly maxBytes?: number;
  readonly dictionary?: fc.Arbitrary<Uint8Array>;
}): fc.Arbitrary<FuzzBytes> {
  const options: fc.WeightedArbitrary<FuzzBytes>[] = [
    {
      weight: 2,
      arbitrary: fc
        .oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 600 }))
        .map((bytes) => ({ how: 'random' as const, bytes })),
    },
  ];
  if (opts.shape !== undefined)
    options.push({
      weight: 3,
      arbitrary: shapedMessage(opts.shape, opts.dictionary).map((bytes) => ({
        how: 'shaped' as const,
        bytes,
      })),
    });
  if (opts.valid !== undefined) {
    options.push({ weight: 1, arbitrary: opts.valid.map((bytes) => ({ how: 'valid' as const, bytes })) });
    options.push({
      weight: 5,
      arbitrary: mutated(opts.valid, opts.padTo, opts.maxBytes).map(({ base, mutations }) => ({
        how: 'mutated' as const,
        bytes: applyMutations(base, mutations),
        base,
        mutations,
      })),
    });
  }
  return fc.oneof(...options).map(shown);
}
