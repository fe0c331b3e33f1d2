/**
 * Hand-written X.509 v3 certificates (RFC 5280) for the service root CA, tenant
 * CAs and short-lived device certificates, chained device <- tenant CA <- root.
 *
 * Device certificates are split into `buildDeviceTbs` (pure byte assembly, on the
 * request path) and `signTbs` + `assembleCertificate` (so signing can run in the
 * crypto worker pool).
 */
import { createHash, generateKeyPairSync, hash, sign as nodeSign, type KeyObject } from 'node:crypto';
import { rawPublicKeyOf } from '../../actors/crypto/index.js';
import {
  bitString,
  boolean,
  concatBytes,
  explicit,
  implicit,
  integerFromBytes,
  integerFromNumber,
  namedBitString,
  octetString,
  oid,
  sequence,
  set,
  utf8String,
  x509Time,
} from './der.js';

/** Object identifiers used in the certificates. */
export const Oid = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Kinds of device certificate issued after attestation. */
export const DeviceCertKind = { update: 'update', client: 'client' } as const;
/** `'update' | 'client'`. */
export type DeviceCertKind = (typeof DeviceCertKind)[keyof typeof DeviceCertKind];

/** Default tenant CA lifetime: two years (730 days). */
export const DEFAULT_TENANT_CA_VALIDITY_MS = 730 * 24 * 3600 * 1000;

/** A certificate authority: its certificate plus the key material to issue with. */
export interface CaIdentity {
  /** DER-encoded certificate. */
  readonly certificateDer: Uint8Array;
  /** PEM ("CERTIFICATE") form of `certificateDer`. */
  readonly certificatePem: string;
  /** DER-encoded subject Name; use it as the issuer field of issued certificates. */
  readonly subjectDer: Uint8Array;
  /** Lowercase hex subjectKeyIdentifier (SHA-1 of the raw public key, RFC 5280 method 1). */
  readonly keyId: string;
  /** Parsed native private key (sign with it directly; never re-parse per call). */
  readonly privateKey: KeyObject;
  /** PKCS#8 DER of the private key, e.g. to ship to crypto workers. */
  readonly privateKeyPkcs8: Uint8Array;
  /** Raw 65-byte uncompressed public key. */
  readonly publicKey: Uint8Array;
}

/** Issuer data needed to build a device TBS (a `CaIdentity` satisfies it). */
export interface TbsIssuer {
  readonly subjectDer: Uint8Array;
  readonly keyId: string;
}

/** Input of {@link buildDeviceTbs}. */
export interface DeviceTbsInput {
  readonly issuer: TbsIssuer;
  /** Raw 65-byte uncompressed device public key. */
  readonly subjectPublicKey: Uint8Array;
  /** 128-hex-char device ID, used as subject CN and in the SAN URI. */
  readonly deviceId: string;
  readonly tenantId: string;
  readonly kind: DeviceCertKind;
  /** 16 random bytes with the top bit cleared (positive, fixed length serial). */
  readonly serial: Uint8Array;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/** Raised for invalid certificate inputs; the offending detail is in the message. */
export class CertificateInputError extends Error {
  override readonly name = 'CertificateInputError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------
// Constant encodings (computed once)

const VERSION_V3 = explicit(0, integerFromNumber(2));
const SIG_ALG_ECDSA_SHA256 = sequence(oid(Oid.ecdsaWithSha256));
const SPKI_ALG = sequence(oid(Oid.ecPublicKey), oid(Oid.prime256v1));
const SPKI_PREFIX = concatBytes([Uint8Array.of(0x30, 0x59), SPKI_ALG, Uint8Array.of(0x03, 0x42, 0x00)]); // SEQUENCE(89) { alg, BIT STRING(66) { 0 unused, 04||X||Y } }
const EXT_DEVICE_BASIC = extension(Oid.basicConstraints, false, sequence());
const EXT_DEVICE_KEY_USAGE = extension(Oid.keyUsage, true, namedBitString([0])); // digitalSignature
const EXT_DEVICE_EKU = extension(Oid.extKeyUsage, false, sequence(oid(Oid.clientAuth)));
const EXT_CA_KEY_USAGE = extension(Oid.keyUsage, true, namedBitString([5, 6])); // keyCertSign, cRLSign
const SKI_EXT_PREFIX = Uint8Array.of(0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14);
const SAN_URI_PREFIX = 'urn:sphere:device:';
const KIND_OU = {
  update: attribute(Oid.organizationalUnitName, 'update'),
  client: attribute(Oid.organizationalUnitName, 'client'),
} as const;

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

function attribute(id: string, value: string): Uint8Array {
  return set(sequence(oid(id), utf8String(value)));
}

/** Encodes a Name from ordered (OID, UTF8String value) pairs, one attribute per RDN. */
export function encodeName(attrs: ReadonlyArray<readonly [string, string]>): Uint8Array {
  return sequence(...attrs.map(([id, v]) => attribute(id, v)));
}

/** SubjectPublicKeyInfo for a raw 65-byte uncompressed P-256 key. */
export function encodeSpki(pub65: Uint8Array): Uint8Array {
  if (pub65.length !== 65 || pub65[0] !== 0x04) {
    throw new CertificateInputError('subject public key must be 65-byte uncompressed SEC1');
  }
  return concatBytes([SPKI_PREFIX, pub65]);
}

/** RFC 5280 §4.2.1.2 method 1 key identifier: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(pub65: Uint8Array): Uint8Array {
  return createHash('sha1').update(pub65).digest();
}

function akiExtension(keyIdHex: string): Uint8Array {
  return extension(Oid.authorityKeyIdentifier, false, sequence(implicit(0, Buffer.from(keyIdHex, 'hex'))));
}

/** PEM armour with 64-character base64 lines and a trailing newline. */
export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.length).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm (ecdsa-with-SHA256),
 * signatureValue BIT STRING }. `signatureDer` is the DER ECDSA-Sig-Value.
 */
export function assembleCertificate(tbs: Uint8Array, signatureDer: Uint8Array): Uint8Array {
  return sequence(tbs, SIG_ALG_ECDSA_SHA256, bitString(signatureDer));
}

/** Signs a TBSCertificate: ECDSA P-256 / SHA-256, DER signature (as X.509 requires). */
export function signTbs(tbs: Uint8Array, key: KeyObject): Uint8Array {
  return nodeSign('sha256', tbs, key);
}

/** 16 random serial bytes with the top bit cleared (positive INTEGER, RFC 5280 ≤ 20 octets). */
export function randomSerial(random: (n: number) => Uint8Array): Uint8Array {
  const s = random(16);
  s[0] = (s[0] ?? 0) & 0x7f;
  return s;
}

// ---------------------------------------------------------------------------
// CA certificates

interface CaCertSpec {
  readonly issuerSubjectDer: Uint8Array;
  readonly issuerKeyId: string;
  readonly issuerKey: KeyObject;
  readonly subjectDer: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly pathLen: number;
  readonly serial: Uint8Array;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

function caCertificate(spec: CaCertSpec): { der: Uint8Array; keyId: string } {
  const ski = keyIdentifier(spec.publicKey);
  const tbs = sequence(
    VERSION_V3,
    integerFromBytes(spec.serial),
    SIG_ALG_ECDSA_SHA256,
    spec.issuerSubjectDer,
    sequence(x509Time(spec.notBeforeMs), x509Time(spec.notAfterMs)),
    spec.subjectDer,
    encodeSpki(spec.publicKey),
    explicit(
      3,
      sequence(
        extension(Oid.basicConstraints, true, sequence(boolean(true), integerFromNumber(spec.pathLen))),
        EXT_CA_KEY_USAGE,
        extension(Oid.subjectKeyIdentifier, false, octetString(ski)),
        akiExtension(spec.issuerKeyId),
      ),
    ),
  );
  return {
    der: assembleCertificate(tbs, signTbs(tbs, spec.issuerKey)),
    keyId: Buffer.from(ski).toString('hex'),
  };
}

function newKeyPair(): { privateKey: KeyObject; pkcs8: Uint8Array; publicKey: Uint8Array } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = Uint8Array.from(privateKey.export({ format: 'der', type: 'pkcs8' }));
  return { privateKey, pkcs8, publicKey: rawPublicKeyOf(privateKey) };
}

function checkValidity(notBeforeMs: number, validityMs: number): void {
  if (!Number.isFinite(notBeforeMs) || !Number.isFinite(validityMs) || validityMs <= 0) {
    throw new CertificateInputError(`invalid validity: notBefore=${notBeforeMs} validityMs=${validityMs}`);
  }
}

function serialOrRandom(serial: Uint8Array | undefined): Uint8Array {
  return serial ?? randomSerial((n) => globalThis.crypto.getRandomValues(new Uint8Array(n)));
}

/** Options of {@link createRootCa}. */
export interface RootCaOptions {
  readonly commonName: string;
  readonly notBeforeMs: number;
  readonly validityMs: number;
  /** Serial magnitude bytes; random 16 bytes (top bit clear) when omitted. */
  readonly serial?: Uint8Array;
}

/**
 * Creates a self-signed service root CA with a fresh P-256 key: subject CN = commonName,
 * basicConstraints CA:true pathLen 1 (critical), keyUsage keyCertSign|cRLSign
 * (critical), SKI, and AKI equal to its own SKI.
 */
export function createRootCa(opts: RootCaOptions): CaIdentity {
  checkValidity(opts.notBeforeMs, opts.validityMs);
  const kp = newKeyPair();
  const subjectDer = encodeName([[Oid.commonName, opts.commonName]]);
  const selfKeyId = Buffer.from(keyIdentifier(kp.publicKey)).toString('hex');
  const { der, keyId } = caCertificate({
    issuerSubjectDer: subjectDer,
    issuerKeyId: selfKeyId,
    issuerKey: kp.privateKey,
    subjectDer,
    publicKey: kp.publicKey,
    pathLen: 1,
    serial: serialOrRandom(opts.serial),
    notBeforeMs: opts.notBeforeMs,
    notAfterMs: opts.notBeforeMs + opts.validityMs,
  });
  return identity(der, subjectDer, keyId, kp);
}

/** Options of {@link createTenantCa}. */
export interface TenantCaOptions {
  readonly tenantId: string;
  /** Human-readable tenant name, used as subject CN. */
  readonly name: string;
  readonly notBeforeMs: number;
  /** Defaults to {@link DEFAULT_TENANT_CA_VALIDITY_MS} (2 years). */
  readonly validityMs?: number;
  readonly serial?: Uint8Array;
}

/**
 * Creates a tenant CA issued by `root` with a fresh P-256 key: subject O = tenantId,
 * CN = name; basicConstraints CA:true pathLen 0 (critical), keyUsage
 * keyCertSign|cRLSign (critical), SKI, AKI = root's key ID.
 * The validity is not clamped to the root's; callers keep it inside.
 */
export function createTenantCa(root: CaIdentity, opts: TenantCaOptions): CaIdentity {
  const validityMs = opts.validityMs ?? DEFAULT_TENANT_CA_VALIDITY_MS;
  checkValidity(opts.notBeforeMs, validityMs);
  const kp = newKeyPair();
  const subjectDer = encodeName([
    [Oid.organizationName, opts.tenantId],
    [Oid.commonName, opts.name],
  ]);
  const { der, keyId } = caCertificate({
    issuerSubjectDer: root.subjectDer,
    issuerKeyId: root.keyId,
    issuerKey: root.privateKey,
    subjectDer,
    publicKey: kp.publicKey,
    pathLen: 0,
    serial: serialOrRandom(opts.serial),
    notBeforeMs: opts.notBeforeMs,
    notAfterMs: opts.notBeforeMs + validityMs,
  });
  return identity(der, subjectDer, keyId, kp);
}

function identity(
  der: Uint8Array,
  subjectDer: Uint8Array,
  keyId: string,
  kp: { privateKey: KeyObject; pkcs8: Uint8Array; publicKey: Uint8Array },
): CaIdentity {
  return {
    certificateDer: der,
    certificatePem: toPem(der, 'CERTIFICATE'),
    subjectDer,
    keyId,
    privateKey: kp.privateKey,
    privateKeyPkcs8: kp.pkcs8,
    publicKey: kp.publicKey,
  };
}

// ---------------------------------------------------------------------------
// Device certificates (hot path)

interface IssuerParts {
  readonly subjectDer: Uint8Array;
  /** VERSION || SIG_ALG || issuer Name: the constant head of the TBS body after the serial. */
  readonly sigAlgAndIssuer: Uint8Array;
  readonly aki: Uint8Array;
}

const ISSUER_CACHE_LIMIT = 1024;
const issuerCache = new Map<string, IssuerParts>();

function issuerParts(issuer: TbsIssuer): IssuerParts {
  const hit = issuerCache.get(issuer.keyId);
  if (
    hit !== undefined &&
    (hit.subjectDer === issuer.subjectDer || bytesEqual(hit.subjectDer, issuer.subjectDer))
  ) {
    return hit;
  }
  if (!/^[0-9a-f]+$/i.test(issuer.keyId) || issuer.keyId.length % 2 !== 0) {
    throw new CertificateInputError(`issuer keyId must be hex, got ${JSON.stringify(issuer.keyId)}`);
  }
  const parts: IssuerParts = {
    subjectDer: issuer.subjectDer,
    sigAlgAndIssuer: concatBytes([SIG_ALG_ECDSA_SHA256, issuer.subjectDer]),
    aki: akiExtension(issuer.keyId),
  };
  if (issuerCache.size >= ISSUER_CACHE_LIMIT) issuerCache.clear();
  issuerCache.set(issuer.keyId, parts);
  return parts;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Fixed-size templates for the 128-char device ID (validated before use).
const DEVICE_ID_LENGTH = 128;
// SET(139) { SEQUENCE(136) { OID 2.5.4.3, UTF8String(128) } }
const CN_ATTR_PREFIX = Uint8Array.of(
  0x31,
  0x81,
  0x8b,
  0x30,
  0x81,
  0x88,
  0x06,
  0x03,
  0x55,
  0x04,
  0x03,
  0x0c,
  0x81,
  0x80,
);
// Extension(160) { OID 2.5.29.17, OCTET STRING(152) { SEQUENCE(149) { [6] IA5String(146) uri } } }
const SAN_EXT_PREFIX = concatBytes([
  Uint8Array.of(
    0x30,
    0x81,
    0xa0,
    0x06,
    0x03,
    0x55,
    0x1d,
    0x11,
    0x04,
    0x81,
    0x98,
    0x30,
    0x81,
    0x95,
    0x86,
    0x81,
    0x92,
  ),
  new TextEncoder().encode(SAN_URI_PREFIX),
]);

/** Bounded memo for small, frequently repeated encodings (times, tenant attributes). */
function memo<K, V>(limit: number, make: (k: K) => V): (k: K) => V {
  const cache = new Map<K, V>();
  return (k) => {
    let v = cache.get(k);
    if (v === undefined) {
      v = make(k);
      if (cache.size >= limit) cache.clear();
      cache.set(k, v);
    }
    return v;
  };
}

// Attestation bursts share the same second, so the time encodings repeat a lot.
const timeBySecond = memo(4096, (sec: number) => x509Time(sec * 1000));
const tenantAttr = memo(4096, (tenantId: string) => attribute(Oid.organizationName, tenantId));

/**
 * Builds the DER TBSCertificate of a device certificate.
 *
 * Subject: O = tenantId, OU = kind, CN = deviceId (128 hex chars, as Azure Sphere does;
 * longer than the X.520 ub-common-name of 64, which OpenSSL and Node accept when
 * verifying). Extensions: basicConstraints CA:false, keyUsage digitalSignature
 * (critical), extKeyUsage clientAuth, SKI, AKI (issuer key ID), and
 * SAN URI `urn:sphere:device:<deviceId>`. Signature algorithm ecdsa-with-SHA256.
 * Times are truncated to whole seconds.
 *
 * Performance: per-issuer parts (keyed by keyId, checked against subjectDer),
 * per-tenant O attribute and per-second time encodings are memoised; the
 * device-ID-dependent parts are written into fixed templates.
 * @throws CertificateInputError for a malformed key, serial, device ID or validity.
 */
export function buildDeviceTbs(input: DeviceTbsInput): Uint8Array {
  const { serial, subjectPublicKey: pub, deviceId } = input;
  if (serial.length === 0 || serial.length > 20)
    throw new CertificateInputError('serial must be 1..20 bytes');
  if (!(input.notAfterMs > input.notBeforeMs))
    throw new CertificateInputError('notAfter must follow notBefore');
  if (deviceId.length !== DEVICE_ID_LENGTH || !/^[0-9a-f]*$/.test(deviceId)) {
    throw new CertificateInputError('deviceId must be 128 lowercase hex');
  }
  if (pub.length !== 65 || pub[0] !== 0x04) {
    throw new CertificateInputError('subject public key must be 65-byte uncompressed SEC1');
  }
  const ou = KIND_OU[input.kind];
  if (ou === undefined) throw new CertificateInputError(`unknown certificate kind ${String(input.kind)}`);
  const issuer = issuerParts(input.issuer);
  const serialEnc = integerFromBytes(serial);
  const nb = timeBySecond(Math.floor(input.notBeforeMs / 1000));
  const na = timeBySecond(Math.floor(input.notAfterMs / 1000));
  const tenant = tenantAttr(input.tenantId);
  const ski = hash('sha1', pub, 'buffer');

  // Lengths of every constructed element, innermost first; then one allocation and a linear write.
  const validityLen = nb.length + na.length;
  const subjectLen = tenant.length + ou.length + CN_ATTR_PREFIX.length + DEVICE_ID_LENGTH;
  const extsLen =
    EXT_DEVICE_BASIC.length +
    EXT_DEVICE_KEY_USAGE.length +
    EXT_DEVICE_EKU.length +
    SKI_EXT_PREFIX.length +
    20 +
    issuer.aki.length +
    SAN_EXT_PREFIX.length +
    DEVICE_ID_LENGTH;
  const extsSeqLen = headerLength(extsLen) + extsLen;
  const tbsLen =
    VERSION_V3.length +
    serialEnc.length +
    issuer.sigAlgAndIssuer.length +
    headerLength(validityLen) +
    validityLen +
    headerLength(subjectLen) +
    subjectLen +
    SPKI_PREFIX.length +
    65 +
    headerLength(extsSeqLen) +
    extsSeqLen;

  const out = new Uint8Array(headerLength(tbsLen) + tbsLen);
  let o = writeHeader(out, 0, 0x30, tbsLen);
  o = put(out, o, VERSION_V3);
  o = put(out, o, serialEnc);
  o = put(out, o, issuer.sigAlgAndIssuer);
  o = writeHeader(out, o, 0x30, validityLen);
  o = put(out, o, nb);
  o = put(out, o, na);
  o = writeHeader(out, o, 0x30, subjectLen);
  o = put(out, o, tenant);
  o = put(out, o, ou);
  o = put(out, o, CN_ATTR_PREFIX);
  o = putAscii(out, o, deviceId);
  o = put(out, o, SPKI_PREFIX);
  o = put(out, o, pub);
  o = writeHeader(out, o, 0xa3, extsSeqLen);
  o = writeHeader(out, o, 0x30, extsLen);
  o = put(out, o, EXT_DEVICE_BASIC);
  o = put(out, o, EXT_DEVICE_KEY_USAGE);
  o = put(out, o, EXT_DEVICE_EKU);
  o = put(out, o, SKI_EXT_PREFIX);
  o = put(out, o, ski);
  o = put(out, o, issuer.aki);
  o = put(out, o, SAN_EXT_PREFIX);
  o = putAscii(out, o, deviceId);
  if (o !== out.length) throw new Error(`internal: TBS length mismatch ${o} != ${out.length}`);
  return out;
}

/** Size of a DER tag + definite length header for `len` content bytes (len < 2^24). */
function headerLength(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : 5;
}

function writeHeader(out: Uint8Array, o: number, tag: number, len: number): number {
  out[o++] = tag;
  if (len < 0x80) {
    out[o++] = len;
  } else if (len < 0x100) {
    out[o++] = 0x81;
    out[o++] = len;
  } else if (len < 0x10000) {
    out[o++] = 0x82;
    out[o++] = len >> 8;
    out[o++] = len & 0xff;
  } else {
    out[o++] = 0x83;
    out[o++] = (len >> 16) & 0xff;
    out[o++] = (len >> 8) & 0xff;
    out[o++] = len & 0xff;
  }
  return o;
}

/** Copies `src` at `o`; a plain loop beats TypedArray#set for the many tiny pieces here. */
function put(out: Uint8Array, o: number, src: Uint8Array): number {
  const n = src.length;
  if (n > 48) {
    out.set(src, o);
    return o + n;
  }
  for (let i = 0; i < n; i++) out[o + i] = src[i] as number;
  return o + n;
}

function putAscii(out: Uint8Array, o: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[o + i] = s.charCodeAt(i);
  return o + s.length;
}
