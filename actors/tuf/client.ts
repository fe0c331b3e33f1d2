/**
 * Device-side TUF 1.0 verifier: what a device's security core runs before installing an
 * update. Pure over JSON bytes: no I/O, no clock (time is `nowMs`), never throws — every
 * failure is a typed `Result` with a code from {@link TUF_ERROR_CODES}.
 *
 * Follows the client workflow of the TUF spec §5.3–5.7 for the top-level roles (no
 * delegations). Signatures are checked with `@tufjs/models` (`Metadata.verifyDelegate`,
 * canonical JSON over `signed`); target hashes with `@noble/hashes`.
 *
 * Code precedence when several problems apply to one file: malformed → bad signature →
 * rollback → mix-and-match → expired. Rollback vs mix-and-match:
 * - `TUF_ROLLBACK`: a presented timestamp/snapshot/targets has a version lower than the
 *   version of that role this client already trusts (or a newer timestamp/snapshot lists a
 *   lower snapshot/targets version than previously trusted), or a new root is not newer.
 * - `TUF_MIX_AND_MATCH`: the presented snapshot (targets) does not match the version,
 *   length or hashes the verified timestamp (snapshot) lists, and it is not a rollback.
 */
import { Metadata, MetadataKind } from '@tufjs/models';
import type { Root, Snapshot, Targets, Timestamp } from '@tufjs/models';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { err, ok } from '../runtime/index.js';
import type { Result } from '../runtime/index.js';

/** Machine-readable rejection codes. */
export const TUF_ERROR_CODES = {
  BAD_SIGNATURE: 'TUF_BAD_SIGNATURE',
  ROLLBACK: 'TUF_ROLLBACK',
  EXPIRED: 'TUF_EXPIRED',
  MIX_AND_MATCH: 'TUF_MIX_AND_MATCH',
  HASH_MISMATCH: 'TUF_HASH_MISMATCH',
  LENGTH_MISMATCH: 'TUF_LENGTH_MISMATCH',
  UNKNOWN_TARGET: 'TUF_UNKNOWN_TARGET',
  SECURITY_VERSION_ROLLBACK: 'TUF_SECURITY_VERSION_ROLLBACK',
  MALFORMED: 'TUF_MALFORMED',
  /** A new root version is not exactly trusted+1 (gap in the root chain, spec §5.3.5). */
  ROOT_VERSION_GAP: 'TUF_ROOT_VERSION_GAP',
  /** `verifyTarget` called before any targets metadata was trusted. */
  NOT_READY: 'TUF_NOT_READY',
} as const;
/** One of {@link TUF_ERROR_CODES}. */
export type TufErrorCode = (typeof TUF_ERROR_CODES)[keyof typeof TUF_ERROR_CODES];

/** Rejection detail; branch on `code`, never on `message`. */
export interface TufError {
  readonly code: TufErrorCode;
  readonly message: string;
}

/** JSON bytes (UTF-8) or an already-decoded JSON string. */
export type TufJson = Uint8Array | string;

/** Trusted metadata. Immutable: every update returns a new state. */
export interface TufClientState {
  readonly root: Metadata<Root>;
  readonly timestamp?: Metadata<Timestamp>;
  readonly snapshot?: Metadata<Snapshot>;
  readonly targets?: Metadata<Targets>;
}

/** Files fetched for one update, per spec §5.3–5.6. */
export interface TufUpdateFiles {
  readonly timestamp: TufJson;
  readonly snapshot: TufJson;
  readonly targets: TufJson;
  /** Newer root versions (trusted+1, trusted+2, …), in any order; each must chain. */
  readonly roots?: readonly TufJson[];
}

/** A verified target. */
export interface TufTargetInfo {
  readonly name: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
  readonly securityVersion: number;
  readonly kind?: string;
  readonly version?: string;
  /** Version of the targets metadata that vouched for it. */
  readonly targetsVersion: number;
}

type R<T> = Result<T, TufError>;
type AnyMetadata = Metadata<Root | Timestamp | Snapshot | Targets>;

const fail = (code: TufErrorCode, message: string): { readonly ok: false; readonly error: TufError } =>
  err({ code, message });

const EXPIRES_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const HASHERS: Readonly<Record<string, (b: Uint8Array) => Uint8Array>> = {
  sha256: (b) => sha256(b),
  sha512: (b) => sha512(b),
};

function toBytes(j: TufJson): Uint8Array {
  return typeof j === 'string' ? new TextEncoder().encode(j) : j;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Parses and structurally validates one metadata file of `kind`. */
function parse(kind: MetadataKind.Root, json: TufJson): R<Metadata<Root>>;
function parse(kind: MetadataKind.Timestamp, json: TufJson): R<Metadata<Timestamp>>;
function parse(kind: MetadataKind.Snapshot, json: TufJson): R<Metadata<Snapshot>>;
function parse(kind: MetadataKind.Targets, json: TufJson): R<Metadata<Targets>>;
function parse(kind: MetadataKind, json: TufJson): R<AnyMetadata> {
  try {
    const text = typeof json === 'string' ? json : new TextDecoder('utf-8', { fatal: true }).decode(json);
    const data: unknown = JSON.parse(text);
    if (!isRecord(data)) return fail(TUF_ERROR_CODES.MALFORMED, `${kind}: not a JSON object`);
    // Overloads of fromJSON need a literal kind; the switch keeps this type-safe.
    let md: AnyMetadata;
    switch (kind) {
      case MetadataKind.Root:
        md = Metadata.fromJSON(MetadataKind.Root, data as never);
        break;
      case MetadataKind.Timestamp:
        md = Metadata.fromJSON(MetadataKind.Timestamp, data as never);
        break;
      case MetadataKind.Snapshot:
        md = Metadata.fromJSON(MetadataKind.Snapshot, data as never);
        break;
      case MetadataKind.Targets:
        md = Metadata.fromJSON(MetadataKind.Targets, data as never);
        break;
    }
    const { version, expires } = md.signed;
    if (!Number.isSafeInteger(version) || version < 1) {
      return fail(TUF_ERROR_CODES.MALFORMED, `${kind}: version must be a positive integer`);
    }
    if (!EXPIRES_RE.test(expires) || !Number.isFinite(Date.parse(expires))) {
      return fail(TUF_ERROR_CODES.MALFORMED, `${kind}: expires is not an ISO-8601 UTC time`);
    }
    // Force canonicalisation now so a later signature check cannot fail on shape.
    JSON.stringify(md.signed.toJSON());
    return ok(md);
  } catch (e) {
    return fail(TUF_ERROR_CODES.MALFORMED, `${kind}: ${describe(e)}`);
  }
}

/** Threshold signature check of `role` metadata against `delegator` (root). */
function checkSigned(delegator: Metadata<Root>, role: string, md: AnyMetadata): R<true> {
  try {
    delegator.verifyDelegate(role, md);
    return ok(true);
  } catch (e) {
    return fail(TUF_ERROR_CODES.BAD_SIGNATURE, `${role}: ${describe(e)}`);
  }
}

function isExpired(md: AnyMetadata, nowMs: number): boolean {
  return nowMs >= Date.parse(md.signed.expires);
}

/** Compares `bytes` to the length/hashes a parent lists; returns a description of the first mismatch. */
function mismatch(
  bytes: Uint8Array,
  length: number | undefined,
  hashes: Readonly<Record<string, string>> | undefined,
): string | undefined {
  if (length !== undefined && bytes.length !== length) return `length ${bytes.length} != listed ${length}`;
  if (hashes !== undefined) {
    let checked = 0;
    for (const [alg, expected] of Object.entries(hashes)) {
      const h = HASHERS[alg];
      if (h === undefined) continue;
      checked += 1;
      if (bytesToHex(h(bytes)) !== String(expected).toLowerCase()) return `${alg} hash mismatch`;
    }
    if (checked === 0 && Object.keys(hashes).length > 0) return 'no supported hash algorithm listed';
  }
  return undefined;
}

function roleKeyIds(root: Metadata<Root>, role: string): string {
  return [...(root.signed.roles[role]?.keyIDs ?? [])].sort().join(',');
}

/**
 * Loads the provisioned trusted root (spec §5.2). The root must be well-formed and signed by
 * a threshold of its own root keys; expiry is not checked here (§5.3.10 checks the final root).
 */
export function createTufClientState(trustedRootJson: TufJson): R<TufClientState> {
  const root = parse(MetadataKind.Root, trustedRootJson);
  if (!root.ok) return root;
  const self = checkSigned(root.value, 'root', root.value);
  if (!self.ok) return self;
  return ok({ root: root.value });
}

function updateRoots(state: TufClientState, roots: readonly TufJson[]): R<TufClientState> {
  const parsed: Metadata<Root>[] = [];
  for (const r of roots) {
    const p = parse(MetadataKind.Root, r);
    if (!p.ok) return p;
    parsed.push(p.value);
  }
  parsed.sort((a, b) => a.signed.version - b.signed.version);
  let trusted = state.root;
  for (const next of parsed) {
    // §5.3.4: signed by a threshold of the trusted root's root keys, and of its own.
    const byOld = checkSigned(trusted, 'root', next);
    if (!byOld.ok) return byOld;
    const bySelf = checkSigned(next, 'root', next);
    if (!bySelf.ok) return bySelf;
    // §5.3.5: version must be exactly trusted + 1.
    const want = trusted.signed.version + 1;
    if (next.signed.version < want) {
      return fail(
        TUF_ERROR_CODES.ROLLBACK,
        `root: version ${next.signed.version} is not newer than ${want - 1}`,
      );
    }
    if (next.signed.version > want) {
      return fail(
        TUF_ERROR_CODES.ROOT_VERSION_GAP,
        `root: got version ${next.signed.version}, expected ${want}`,
      );
    }
    trusted = next;
  }
  if (trusted === state.root) return ok(state);
  // §5.3.11: drop timestamp/snapshot trust if their keys rotated.
  const rotated =
    roleKeyIds(trusted, 'timestamp') !== roleKeyIds(state.root, 'timestamp') ||
    roleKeyIds(trusted, 'snapshot') !== roleKeyIds(state.root, 'snapshot');
  return ok(rotated ? { root: trusted } : { ...state, root: trusted });
}

/**
 * Runs one metadata update (spec §5.3–5.6) at time `nowMs` and returns the new trusted state.
 * The input `state` is never modified, so a rejected update leaves the device's trust intact.
 */
export function updateMetadata(
  state: TufClientState,
  files: TufUpdateFiles,
  nowMs: number,
): R<TufClientState> {
  try {
    return updateMetadataUnsafe(state, files, nowMs);
  } catch (e) {
    // Defence in depth: the steps above are written not to throw.
    return fail(TUF_ERROR_CODES.MALFORMED, `unexpected: ${describe(e)}`);
  }
}

function updateMetadataUnsafe(
  state: TufClientState,
  files: TufUpdateFiles,
  nowMs: number,
): R<TufClientState> {
  if (!isRecord(files)) return fail(TUF_ERROR_CODES.MALFORMED, 'files must be an object');
  // §5.3 root chain.
  const afterRoot = updateRoots(state, files.roots ?? []);
  if (!afterRoot.ok) return afterRoot;
  const s = afterRoot.value;
  const root = s.root;
  // §5.3.10 freeze check on the final root.
  if (isExpired(root, nowMs)) return fail(TUF_ERROR_CODES.EXPIRED, 'root: expired');

  // §5.4 timestamp.
  const ts = parse(MetadataKind.Timestamp, files.timestamp);
  if (!ts.ok) return ts;
  const tsSig = checkSigned(root, 'timestamp', ts.value);
  if (!tsSig.ok) return tsSig;
  let timestamp = ts.value;
  if (s.timestamp) {
    const trustedV = s.timestamp.signed.version;
    if (timestamp.signed.version < trustedV) {
      return fail(
        TUF_ERROR_CODES.ROLLBACK,
        `timestamp: version ${timestamp.signed.version} < trusted ${trustedV}`,
      );
    }
    if (timestamp.signed.snapshotMeta.version < s.timestamp.signed.snapshotMeta.version) {
      return fail(TUF_ERROR_CODES.ROLLBACK, 'timestamp: lists an older snapshot than trusted');
    }
    // §5.4.3.1: an equal version is discarded in favour of the trusted one.
    if (timestamp.signed.version === trustedV) timestamp = s.timestamp;
  }
  if (isExpired(timestamp, nowMs)) return fail(TUF_ERROR_CODES.EXPIRED, 'timestamp: expired');

  // §5.5 snapshot.
  const snapBytes = toBytes(files.snapshot);
  const snap = parse(MetadataKind.Snapshot, snapBytes);
  if (!snap.ok) return snap;
  const snapSig = checkSigned(root, 'snapshot', snap.value);
  if (!snapSig.ok) return snapSig;
  const snapshot = snap.value;
  if (s.snapshot) {
    if (snapshot.signed.version < s.snapshot.signed.version) {
      return fail(
        TUF_ERROR_CODES.ROLLBACK,
        `snapshot: version ${snapshot.signed.version} < trusted ${s.snapshot.signed.version}`,
      );
    }
    // §5.5.5: no targets metadata may disappear or go backwards.
    for (const [file, info] of Object.entries(s.snapshot.signed.meta)) {
      const now = snapshot.signed.meta[file];
      if (now === undefined) return fail(TUF_ERROR_CODES.ROLLBACK, `snapshot: ${file} no longer listed`);
      if (now.version < info.version) {
        return fail(
          TUF_ERROR_CODES.ROLLBACK,
          `snapshot: lists ${file} v${now.version} < trusted v${info.version}`,
        );
      }
    }
  }
  const listed = timestamp.signed.snapshotMeta;
  if (snapshot.signed.version !== listed.version) {
    return fail(
      TUF_ERROR_CODES.MIX_AND_MATCH,
      `snapshot: version ${snapshot.signed.version} but timestamp lists ${listed.version}`,
    );
  }
  const snapDiff = mismatch(snapBytes, listed.length, listed.hashes);
  if (snapDiff !== undefined) return fail(TUF_ERROR_CODES.MIX_AND_MATCH, `snapshot: ${snapDiff}`);
  if (isExpired(snapshot, nowMs)) return fail(TUF_ERROR_CODES.EXPIRED, 'snapshot: expired');

  // §5.6 targets.
  const tgtBytes = toBytes(files.targets);
  const tgt = parse(MetadataKind.Targets, tgtBytes);
  if (!tgt.ok) return tgt;
  const tgtSig = checkSigned(root, 'targets', tgt.value);
  if (!tgtSig.ok) return tgtSig;
  const targets = tgt.value;
  if (s.targets && targets.signed.version < s.targets.signed.version) {
    return fail(
      TUF_ERROR_CODES.ROLLBACK,
      `targets: version ${targets.signed.version} < trusted ${s.targets.signed.version}`,
    );
  }
  const tmeta = snapshot.signed.meta['targets.json'];
  if (tmeta === undefined) return fail(TUF_ERROR_CODES.MIX_AND_MATCH, 'snapshot: does not list targets.json');
  if (targets.signed.version !== tmeta.version) {
    return fail(
      TUF_ERROR_CODES.MIX_AND_MATCH,
      `targets: version ${targets.signed.version} but snapshot lists ${tmeta.version}`,
    );
  }
  const tgtDiff = mismatch(tgtBytes, tmeta.length, tmeta.hashes);
  if (tgtDiff !== undefined) return fail(TUF_ERROR_CODES.MIX_AND_MATCH, `targets: ${tgtDiff}`);
  if (isExpired(targets, nowMs)) return fail(TUF_ERROR_CODES.EXPIRED, 'targets: expired');

  return ok({ root, timestamp, snapshot, targets });
}

/**
 * Checks a downloaded target against trusted targets metadata (spec §5.7) and the device's
 * anti-rollback floor. Order: unknown target → security version → length → hashes.
 * `custom.securityVersion` must be a non-negative integer (else `TUF_MALFORMED`) and at
 * least `deviceSecurityVersion` (else `TUF_SECURITY_VERSION_ROLLBACK`). At least one listed
 * hash must use a supported algorithm (sha256/sha512) and all supported ones must match.
 */
export function verifyTarget(
  state: TufClientState,
  name: string,
  bytes: Uint8Array,
  deviceSecurityVersion: number,
): R<TufTargetInfo> {
  return checkTarget(state, name, bytes.length, deviceSecurityVersion, (alg) => {
    const h = HASHERS[alg];
    return h === undefined ? undefined : bytesToHex(h(bytes));
  });
}

/**
 * {@link verifyTarget} for a device that hashed the image while downloading it (so it never
 * holds the whole image in memory): the same checks, against its length and SHA-256 digest.
 * Only the `sha256` entry can be checked, so it must be listed.
 */
export function verifyTargetDigest(
  state: TufClientState,
  name: string,
  download: { readonly length: number; readonly sha256: string },
  deviceSecurityVersion: number,
): R<TufTargetInfo> {
  return checkTarget(state, name, download.length, deviceSecurityVersion, (alg) =>
    alg === 'sha256' ? download.sha256.toLowerCase() : undefined,
  );
}

/** `digestOf(alg)`: the download's hex digest for `alg`, or undefined when it cannot be computed. */
function checkTarget(
  state: TufClientState,
  name: string,
  length: number,
  deviceSecurityVersion: number,
  digestOf: (alg: string) => string | undefined,
): R<TufTargetInfo> {
  try {
    const targets = state.targets;
    if (targets === undefined) return fail(TUF_ERROR_CODES.NOT_READY, 'no trusted targets metadata');
    if (!Object.prototype.hasOwnProperty.call(targets.signed.targets, name)) {
      return fail(TUF_ERROR_CODES.UNKNOWN_TARGET, `no target named ${JSON.stringify(name)}`);
    }
    const file = targets.signed.targets[name];
    if (file === undefined)
      return fail(TUF_ERROR_CODES.UNKNOWN_TARGET, `no target named ${JSON.stringify(name)}`);
    const custom = file.custom;
    const sv = custom['securityVersion'];
    if (typeof sv !== 'number' || !Number.isSafeInteger(sv) || sv < 0) {
      return fail(TUF_ERROR_CODES.MALFORMED, `${name}: custom.securityVersion missing or not an integer`);
    }
    if (sv < deviceSecurityVersion) {
      return fail(
        TUF_ERROR_CODES.SECURITY_VERSION_ROLLBACK,
        `${name}: securityVersion ${sv} < device ${deviceSecurityVersion}`,
      );
    }
    if (!Number.isSafeInteger(file.length) || file.length < 0) {
      return fail(TUF_ERROR_CODES.MALFORMED, `${name}: length is not a non-negative integer`);
    }
    if (length !== file.length) {
      return fail(TUF_ERROR_CODES.LENGTH_MISMATCH, `${name}: got ${length} bytes, listed ${file.length}`);
    }
    let checked = 0;
    for (const [alg, expected] of Object.entries(file.hashes)) {
      const actual = digestOf(alg);
      if (actual === undefined) continue;
      checked += 1;
      if (actual !== String(expected).toLowerCase()) {
        return fail(TUF_ERROR_CODES.HASH_MISMATCH, `${name}: ${alg} mismatch`);
      }
    }
    if (checked === 0) return fail(TUF_ERROR_CODES.HASH_MISMATCH, `${name}: no supported hash listed`);
    const kind = custom['kind'];
    const version = custom['version'];
    return ok({
      name,
      length: file.length,
      hashes: { ...file.hashes },
      securityVersion: sv,
      ...(typeof kind === 'string' ? { kind } : {}),
      ...(typeof version === 'string' ? { version } : {}),
      targetsVersion: targets.signed.version,
    });
  } catch (e) {
    return fail(TUF_ERROR_CODES.MALFORMED, `unexpected: ${describe(e)}`);
  }
}
