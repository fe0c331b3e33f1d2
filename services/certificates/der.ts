/**
 * Minimal DER (ITU-T X.690 distinguished encoding) writer: just what X.509
 * certificates need. Every function returns a complete TLV as a fresh Uint8Array.
 * No parsing here; node's X509Certificate and openssl are used to check output.
 */

/** Universal / context tag bytes used by the encoder. */
export const DerTag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Encodes a DER definite length (short form below 128, long form otherwise). */
export function encodeLength(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`invalid DER length ${n}`);
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** Concatenates byte arrays into one fresh array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Tag-length-value with a single-byte tag over the concatenation of `content` parts. */
export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of content) len += p.length;
  const hdrLen = len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : 0;
  if (hdrLen === 0) {
    return concatBytes([Uint8Array.of(tag), encodeLength(len), ...content]);
  }
  const out = new Uint8Array(hdrLen + len);
  out[0] = tag;
  if (hdrLen === 2) out[1] = len;
  else if (hdrLen === 3) {
    out[1] = 0x81;
    out[2] = len;
  } else {
    out[1] = 0x82;
    out[2] = len >> 8;
    out[3] = len & 0xff;
  }
  let off = hdrLen;
  for (const p of content) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** SEQUENCE of already-encoded elements (in the given order). */
export function sequence(...items: Uint8Array[]): Uint8Array {
  return tlv(DerTag.sequence, ...items);
}

/**
 * SET OF already-encoded elements. DER requires SET OF members sorted by their
 * encodings; this sorts a copy lexicographically.
 */
export function set(...items: Uint8Array[]): Uint8Array {
  const sorted = [...items].sort(compareBytes);
  return tlv(DerTag.set, ...sorted);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * INTEGER from unsigned big-endian magnitude bytes. Leading zero bytes are
 * stripped to the minimal form and a 0x00 is prepended when the top bit is set,
 * so the value is always non-negative. Empty input encodes zero.
 */
export function integerFromBytes(unsigned: Uint8Array): Uint8Array {
  let start = 0;
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++;
  const body = unsigned.subarray(start);
  if (body.length === 0) return Uint8Array.of(DerTag.integer, 1, 0);
  if ((body[0] ?? 0) & 0x80) return tlv(DerTag.integer, Uint8Array.of(0), body);
  return tlv(DerTag.integer, body);
}

/** INTEGER from a safe JS integer (negative values use two's complement). */
export function integerFromNumber(n: number): Uint8Array {
  if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${n}`);
  let v = BigInt(n);
  const bytes: number[] = [];
  // Emit minimal two's complement: stop once the remaining value is pure sign extension.
  for (;;) {
    const b = Number(v & 0xffn);
    bytes.unshift(b);
    v >>= 8n;
    if ((v === 0n && (b & 0x80) === 0) || (v === -1n && (b & 0x80) !== 0)) break;
  }
  return tlv(DerTag.integer, Uint8Array.from(bytes));
}

const oidCache = new Map<string, Uint8Array>();

/**
 * OBJECT IDENTIFIER from dotted notation ("1.2.840.10045.2.1"). Results are
 * cached, so callers must not mutate the returned array.
 * @throws RangeError for malformed identifiers.
 */
export function oid(dotted: string): Uint8Array {
  const cached = oidCache.get(dotted);
  if (cached !== undefined) return cached;
  const arcs = dotted.split('.').map((s) => {
    if (!/^\d+$/.test(s)) throw new RangeError(`malformed OID ${dotted}`);
    return BigInt(s);
  });
  const [a0, a1, ...rest] = arcs;
  if (a0 === undefined || a1 === undefined || a0 > 2n || (a0 < 2n && a1 > 39n)) {
    throw new RangeError(`malformed OID ${dotted}`);
  }
  const body: number[] = [];
  for (const arc of [a0 * 40n + a1, ...rest]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    body.push(...chunk);
  }
  const enc = tlv(DerTag.oid, Uint8Array.from(body));
  oidCache.set(dotted, enc);
  return enc;
}

const UTF8 = new TextEncoder();

/** UTF8String. */
export function utf8String(s: string): Uint8Array {
  return tlv(DerTag.utf8String, UTF8.encode(s));
}

/** PrintableString; @throws RangeError if `s` has characters outside the PrintableString set. */
export function printableString(s: string): Uint8Array {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) throw new RangeError(`not printable: ${JSON.stringify(s)}`);
  return tlv(DerTag.printableString, UTF8.encode(s));
}

/** IA5String (ASCII); @throws RangeError for non-ASCII input. */
export function ia5String(s: string): Uint8Array {
  if (!/^[\x00-\x7f]*$/.test(s)) throw new RangeError('not IA5');
  return tlv(DerTag.ia5String, UTF8.encode(s));
}

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

function timeDigits(ms: number): { year: number; rest: string } {
  if (!Number.isFinite(ms)) throw new RangeError(`invalid time ${ms}`);
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const rest =
    pad2(d.getUTCMonth() + 1) +
    pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds()) +
    'Z';
  return { year: d.getUTCFullYear(), rest };
}

/**
 * UTCTime "YYMMDDHHMMSSZ" (seconds always present, sub-seconds truncated),
 * valid for years 1950..2049 per RFC 5280 §4.1.2.5.1.
 * @throws RangeError outside that range.
 */
export function utcTime(ms: number): Uint8Array {
  const { year, rest } = timeDigits(ms);
  if (year < 1950 || year > 2049) throw new RangeError(`UTCTime cannot encode year ${year}`);
  return tlv(DerTag.utcTime, UTF8.encode(pad2(year % 100) + rest));
}

/** GeneralizedTime "YYYYMMDDHHMMSSZ" (no fractional seconds, per RFC 5280 §4.1.2.5.2). */
export function generalizedTime(ms: number): Uint8Array {
  const { year, rest } = timeDigits(ms);
  if (year < 0 || year > 9999) throw new RangeError(`GeneralizedTime cannot encode year ${year}`);
  return tlv(DerTag.generalizedTime, UTF8.encode(String(year).padStart(4, '0') + rest));
}

/** RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050 on. */
export function x509Time(ms: number): Uint8Array {
  const year = new Date(ms).getUTCFullYear();
  return year >= 1950 && year <= 2049 ? utcTime(ms) : generalizedTime(ms);
}

/** BIT STRING with `unusedBits` (0..7) padding bits in the last byte. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  if (unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new RangeError(`invalid unused bit count ${unusedBits}`);
  }
  return tlv(DerTag.bitString, Uint8Array.of(unusedBits), bytes);
}

/**
 * BIT STRING for an ASN.1 NamedBitList (e.g. KeyUsage): bit i is set for every
 * index in `bits`; trailing zero bits are removed as DER requires.
 */
export function namedBitString(bits: readonly number[]): Uint8Array {
  if (bits.length === 0) return bitString(new Uint8Array(0));
  const max = Math.max(...bits);
  const bytes = new Uint8Array((max >> 3) + 1);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] ?? 0) | (0x80 >> (b & 7));
  return bitString(bytes, 7 - (max & 7));
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(DerTag.octetString, bytes);
}

/** BOOLEAN (DER: TRUE is 0xff). */
export function boolean(value: boolean): Uint8Array {
  return Uint8Array.of(DerTag.boolean, 1, value ? 0xff : 0x00);
}

/** NULL. */
export function nullValue(): Uint8Array {
  return Uint8Array.of(DerTag.null, 0);
}

/** [tagNumber] EXPLICIT (constructed, context-specific) wrapping one encoded element. Tag numbers 0..30. */
export function explicit(tagNumber: number, inner: Uint8Array): Uint8Array {
  if (tagNumber < 0 || tagNumber > 30) throw new RangeError('context tag number must be 0..30');
  return tlv(0xa0 | tagNumber, inner);
}

/**
 * [tagNumber] IMPLICIT: replaces the tag of an element with a context tag.
 * `content` is the element's content octets (no tag/length); set `constructed`
 * when the underlying type is constructed (SEQUENCE, SET).
 */
export function implicit(tagNumber: number, content: Uint8Array, constructed = false): Uint8Array {
  if (tagNumber < 0 || tagNumber > 30) throw new RangeError('context tag number must be 0..30');
  return tlv((constructed ? 0xa0 : 0x80) | tagNumber, content);
}
