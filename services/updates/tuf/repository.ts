/**
 * A tenant's TUF 1.0 repository, held in memory (top-level roles only, no delegations).
 *
 * Metadata is built and signed with `@tufjs/models` (`Metadata.sign` signs the canonical
 * JSON of `signed`), so the served files are spec-shaped and verifiable by stock TUF
 * clients such as `tuf-js`. Keys are **ed25519** (keytype/scheme `ed25519`, `keyval.public`
 * is the 32-byte raw public key in hex); the key id is the SHA-256 of the key's canonical
 * JSON, as the spec recommends. `consistent_snapshot` is always true: every published
 * snapshot/targets version and every target file stays addressable (`N.snapshot.json`,
 * `N.targets.json`, `<sha256>.<name>`).
 *
 * Time is injected (`nowMs`); randomness is injected through `randomBytes` (used only to
 * create key seeds not supplied in `keys`). Ed25519 signing is deterministic, so a
 * repository built from fixed seeds and clock values yields byte-identical metadata.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes as nodeRandomBytes,
  sign,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import {
  Key,
  Metadata,
  MetaFile,
  Root,
  Signature,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
} from '@tufjs/models';

/** The four TUF top-level roles. */
export const TUF_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
/** One of {@link TUF_ROLES}. */
export type TufRole = (typeof TUF_ROLES)[number];

/** `spec_version` written into every metadata file. */
export const TUF_SPEC_VERSION = '1.0.31';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Default metadata lifetimes (ms after the signing time). */
export const DEFAULT_TUF_EXPIRIES = {
  rootMs: 365 * DAY_MS,
  targetsMs: 90 * DAY_MS,
  snapshotMs: 7 * DAY_MS,
  timestampMs: 1 * DAY_MS,
} as const;

/** Metadata lifetimes in ms; each role's `expires` is `signing nowMs + lifetime`. */
export interface TufExpiries {
  readonly rootMs: number;
  readonly targetsMs: number;
  readonly snapshotMs: number;
  readonly timestampMs: number;
}

/** Signature thresholds per role (default 1 each). */
export type TufThresholds = Readonly<Record<TufRole, number>>;

/** Update-specific data carried in `TargetFile.custom`. */
export interface TufTargetCustom {
  /** Anti-rollback security version; devices refuse targets below their own. */
  readonly securityVersion: number;
  readonly kind: 'os' | 'app';
  /** Human-facing release version string. */
  readonly version: string;
}

/** Options for {@link createTufRepository}. */
export interface CreateTufRepositoryOptions {
  /** Signing time of the initial version-1 metadata. */
  readonly nowMs: number;
  /**
   * 32-byte ed25519 seeds per role. A role gets `max(threshold, seeds supplied)` keys;
   * missing seeds are drawn from `randomBytes`.
   */
  readonly keys?: Partial<Record<TufRole, readonly Uint8Array[]>>;
  readonly expiries?: Partial<TufExpiries>;
  readonly thresholds?: Partial<TufThresholds>;
  /** Entropy source for generated key seeds; default `node:crypto.randomBytes`. */
  readonly randomBytes?: (n: number) => Uint8Array;
}

/** Thrown for invalid repository arguments (bad threshold, seed, target name, clock). */
export class TufRepositoryError extends Error {
  override readonly name = 'TufRepositoryError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The read side the HTTP server needs. */
export interface TufServableRepository {
  /** Exact JSON bytes per metadata file name (see {@link TufRepository.metadataFiles}). */
  metadataFiles(): ReadonlyMap<string, Uint8Array>;
  /** Bytes of a published target by its hash-prefixed path (`<sha256>.<name>`), else undefined. */
  targetBytes(hashPrefixedName: string): Uint8Array | undefined;
}

/** A tenant's in-memory TUF repository. */
export interface TufRepository extends TufServableRepository {
  /**
   * Stages (or replaces) target `name` with its length, sha256 and optional `custom`.
   * Invisible to clients until {@link publish}.
   * @throws TufRepositoryError for an empty name, a name with empty/`.`/`..` segments, or a
   * non-integer / negative `securityVersion`.
   */
  addTarget(name: string, bytes: Uint8Array, custom?: TufTargetCustom): void;
  /** Signs targets, snapshot and timestamp at version+1 each, expiring relative to `nowMs`. */
  publish(nowMs: number): void;
  /** Re-signs only timestamp at version+1 (fresh expiry, same snapshot). */
  rotateTimestamp(nowMs: number): void;
  /**
   * Signs root version+1. Roles in `rotate` get fresh keys (from `randomBytes`). The new
   * root is signed by both the previous and the new root keys (spec §5.3.4/5.3.5), then
   * targets/snapshot/timestamp are re-published so they carry the current keys.
   */
  rotateRoot(nowMs: number, rotate?: readonly TufRole[]): void;
  /**
   * All served metadata: `N.root.json` for every root version, `root.json` (latest root),
   * `timestamp.json` (latest), `N.snapshot.json` and `N.targets.json` for every published
   * version. Values are the exact bytes to serve (copies). Fresh map per call.
   */
  metadataFiles(): ReadonlyMap<string, Uint8Array>;
  /** Current versions, for assertions and operators. */
  versions(): Readonly<Record<TufRole, number>>;
  /**
   * What a device needs for one update check: every root newer than `trustedRootVersion` (in
   * order) and the latest timestamp, snapshot and targets. Shared bytes, not copies: read only.
   */
  latest(trustedRootVersion: number): TufLatestMetadata;
  /**
   * Keeps the repository fresh, as a TUF repository's timestamp service does: re-signs the
   * timestamp once less than half its lifetime is left, and re-publishes (targets, snapshot,
   * timestamp) once less than half the snapshot's lifetime is left. Returns whether it signed.
   */
  refresh(nowMs: number): boolean;
  /** Whether {@link refresh} at `nowMs` would sign anything. */
  refreshDue(nowMs: number): boolean;
  /** Content of published target `name` (shared bytes, read only), else undefined. */
  targetContent(name: string): Uint8Array | undefined;
}

/** See {@link TufRepository.latest}. */
export interface TufLatestMetadata {
  readonly roots: readonly Uint8Array[];
  readonly timestamp: Uint8Array;
  readonly snapshot: Uint8Array;
  readonly targets: Uint8Array;
}

type JSONObject = ReturnType<Key['toJSON']>;

interface SigningKey {
  readonly key: Key;
  readonly privateKey: KeyObject;
}

interface StagedTarget {
  readonly bytes: Uint8Array;
  readonly file: TargetFile;
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** ISO-8601 `YYYY-MM-DDTHH:MM:SSZ` (no fractional seconds), as TUF expects. */
export function tufExpires(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw new TufRepositoryError(`ed25519 seed must be 32 bytes, got ${seed.length}`);
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicHex = spki.subarray(spki.length - 32).toString('hex');
  // Canonical JSON of the key: sorted keys, ASCII-only strings, so JSON.stringify is canonical.
  const canonical = `{"keytype":"ed25519","keyval":{"public":"${publicHex}"},"scheme":"ed25519"}`;
  const keyID = sha256Hex(Buffer.from(canonical, 'utf8'));
  return {
    key: new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } }),
    privateKey,
  };
}

function signerFor(k: SigningKey): (data: Buffer) => Signature {
  return (data) => new Signature({ keyID: k.key.keyID, sig: sign(null, data, k.privateKey).toString('hex') });
}

function serialize(md: Metadata<Root | Targets | Snapshot | Timestamp>): Uint8Array {
  return Buffer.from(JSON.stringify(md.toJSON()), 'utf8');
}

function checkName(name: string): void {
  if (name.length === 0 || name.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new TufRepositoryError(`invalid target name ${JSON.stringify(name)}`);
  }
}

/** Hash-prefixed path of a target under consistent snapshots: `dir/<sha256>.<base>`. */
export function hashPrefixedTargetPath(name: string, sha256: string): string {
  const slash = name.lastIndexOf('/');
  return slash < 0 ? `${sha256}.${name}` : `${name.slice(0, slash)}/${sha256}.${name.slice(slash + 1)}`;
}

/**
 * Creates a repository and publishes version 1 of all four roles at `opts.nowMs`
 * (empty targets), so `metadataFiles()` is immediately servable.
 * @throws TufRepositoryError for a threshold that is not a positive integer, a seed that is
 * not 32 bytes, or a non-finite `nowMs`.
 */
export function createTufRepository(opts: CreateTufRepositoryOptions): TufRepository {
  const expiries: TufExpiries = { ...DEFAULT_TUF_EXPIRIES, ...opts.expiries };
  const thresholds: TufThresholds = { root: 1, targets: 1, snapshot: 1, timestamp: 1, ...opts.thresholds };
  const rng = opts.randomBytes ?? ((n: number) => new Uint8Array(nodeRandomBytes(n)));
  for (const role of TUF_ROLES) {
    const t = thresholds[role];
    if (!Number.isSafeInteger(t) || t < 1) throw new TufRepositoryError(`threshold for ${role} must be >= 1`);
  }

  const makeKeys = (role: TufRole, seeds: readonly Uint8Array[]): SigningKey[] => {
    const n = Math.max(thresholds[role], seeds.length);
    const out: SigningKey[] = [];
    for (let i = 0; i < n; i++) out.push(signingKeyFromSeed(seeds[i] ?? rng(32)));
    return out;
  };
  const keys: Record<TufRole, SigningKey[]> = {
    root: makeKeys('root', opts.keys?.root ?? []),
    targets: makeKeys('targets', opts.keys?.targets ?? []),
    snapshot: makeKeys('snapshot', opts.keys?.snapshot ?? []),
    timestamp: makeKeys('timestamp', opts.keys?.timestamp ?? []),
  };

  const versions: Record<TufRole, number> = { root: 0, targets: 0, snapshot: 0, timestamp: 0 };
  const rootFiles = new Map<number, Uint8Array>();
  const snapshotFiles = new Map<number, Uint8Array>();
  const targetsFiles = new Map<number, Uint8Array>();
  const targetBlobs = new Map<string, Uint8Array>();
  const staged = new Map<string, StagedTarget>();
  let timestampFile: Uint8Array = new Uint8Array();
  let timestampExpires = 0;
  let snapshotExpires = 0;
  let lastSnapshot: Uint8Array = new Uint8Array();
  /** Published content by plain target name. */
  const published = new Map<string, Uint8Array>();

  const checkNow = (nowMs: number): void => {
    if (!Number.isFinite(nowMs)) throw new TufRepositoryError(`nowMs must be finite, got ${nowMs}`);
  };

  const signRoot = (nowMs: number, previousRootKeys: readonly SigningKey[]): void => {
    // `Role` is not exported by @tufjs/models, so root is built from its JSON form.
    const rootKeys: Record<string, JSONObject> = {};
    const roles: Record<string, JSONObject> = {};
    for (const role of TUF_ROLES) {
      for (const k of keys[role]) rootKeys[k.key.keyID] = k.key.toJSON();
      roles[role] = { keyids: keys[role].map((k) => k.key.keyID), threshold: thresholds[role] };
    }
    versions.root += 1;
    const md = new Metadata(
      Root.fromJSON({
        spec_version: TUF_SPEC_VERSION,
        version: versions.root,
        expires: tufExpires(nowMs + expiries.rootMs),
        keys: rootKeys,
        roles,
        consistent_snapshot: true,
      }),
    );
    const signers = new Map<string, SigningKey>();
    for (const k of [...previousRootKeys, ...keys.root]) signers.set(k.key.keyID, k);
    for (const k of signers.values()) md.sign(signerFor(k));
    rootFiles.set(versions.root, serialize(md));
  };

  const signTimestamp = (nowMs: number): void => {
    versions.timestamp += 1;
    timestampExpires = Date.parse(tufExpires(nowMs + expiries.timestampMs));
    const md = new Metadata(
      new Timestamp({
        version: versions.timestamp,
        specVersion: TUF_SPEC_VERSION,
        expires: tufExpires(nowMs + expiries.timestampMs),
        snapshotMeta: new MetaFile({
          version: versions.snapshot,
          length: lastSnapshot.length,
          hashes: { sha256: sha256Hex(lastSnapshot) },
        }),
      }),
    );
    for (const k of keys.timestamp) md.sign(signerFor(k));
    timestampFile = serialize(md);
  };

  const publish = (nowMs: number): void => {
    checkNow(nowMs);
    versions.targets += 1;
    const targetFiles: Record<string, TargetFile> = {};
    for (const [name, t] of staged) {
      targetFiles[name] = t.file;
      const sha = t.file.hashes['sha256'] ?? '';
      targetBlobs.set(hashPrefixedTargetPath(name, sha), t.bytes);
      published.set(name, t.bytes);
    }
    const targetsMd = new Metadata(
      new Targets({
        version: versions.targets,
        specVersion: TUF_SPEC_VERSION,
        expires: tufExpires(nowMs + expiries.targetsMs),
        targets: targetFiles,
      }),
    );
    for (const k of keys.targets) targetsMd.sign(signerFor(k));
    const targetsBytes = serialize(targetsMd);
    targetsFiles.set(versions.targets, targetsBytes);

    versions.snapshot += 1;
    snapshotExpires = Date.parse(tufExpires(nowMs + expiries.snapshotMs));
    const snapshotMd = new Metadata(
      new Snapshot({
        version: versions.snapshot,
        specVersion: TUF_SPEC_VERSION,
        expires: tufExpires(nowMs + expiries.snapshotMs),
        meta: {
          'targets.json': new MetaFile({
            version: versions.targets,
            length: targetsBytes.length,
            hashes: { sha256: sha256Hex(targetsBytes) },
          }),
        },
      }),
    );
    for (const k of keys.snapshot) snapshotMd.sign(signerFor(k));
    lastSnapshot = serialize(snapshotMd);
    snapshotFiles.set(versions.snapshot, lastSnapshot);

    signTimestamp(nowMs);
  };

  checkNow(opts.nowMs);
  signRoot(opts.nowMs, []);
  publish(opts.nowMs);

  return {
    addTarget(name, bytes, custom) {
      checkName(name);
      if (
        custom !== undefined &&
        (!Number.isSafeInteger(custom.securityVersion) || custom.securityVersion < 0)
      ) {
        throw new TufRepositoryError(`securityVersion must be a non-negative integer for ${name}`);
      }
      const copy = Uint8Array.from(bytes);
      const file = new TargetFile({
        path: name,
        length: copy.length,
        hashes: { sha256: sha256Hex(copy) },
        unrecognizedFields:
          custom === undefined
            ? {}
            : {
                custom: {
                  securityVersion: custom.securityVersion,
                  kind: custom.kind,
                  version: custom.version,
                },
              },
      });
      staged.set(name, { bytes: copy, file });
    },
    publish,
    rotateTimestamp(nowMs) {
      checkNow(nowMs);
      signTimestamp(nowMs);
    },
    rotateRoot(nowMs, rotate = []) {
      checkNow(nowMs);
      const previousRootKeys = keys.root;
      for (const role of rotate) keys[role] = makeKeys(role, []);
      signRoot(nowMs, previousRootKeys);
      publish(nowMs);
    },
    metadataFiles() {
      const out = new Map<string, Uint8Array>();
      for (const [v, b] of rootFiles) out.set(`${v}.root.json`, Uint8Array.from(b));
      const latestRoot = rootFiles.get(versions.root);
      if (latestRoot) out.set('root.json', Uint8Array.from(latestRoot));
      out.set('timestamp.json', Uint8Array.from(timestampFile));
      for (const [v, b] of snapshotFiles) out.set(`${v}.snapshot.json`, Uint8Array.from(b));
      for (const [v, b] of targetsFiles) out.set(`${v}.targets.json`, Uint8Array.from(b));
      return out;
    },
    targetBytes(hashPrefixedName) {
      const b = targetBlobs.get(hashPrefixedName);
      return b === undefined ? undefined : Uint8Array.from(b);
    },
    versions() {
      return { ...versions };
    },
    latest(trustedRootVersion) {
      const roots: Uint8Array[] = [];
      for (let v = Math.max(1, trustedRootVersion + 1); v <= versions.root; v++) {
        const b = rootFiles.get(v);
        if (b !== undefined) roots.push(b);
      }
      return {
        roots,
        timestamp: timestampFile,
        snapshot: lastSnapshot,
        targets: targetsFiles.get(versions.targets) ?? new Uint8Array(),
      };
    },
    refreshDue(nowMs) {
      return (
        snapshotExpires - nowMs < expiries.snapshotMs / 2 ||
        timestampExpires - nowMs < expiries.timestampMs / 2
      );
    },
    refresh(nowMs) {
      checkNow(nowMs);
      if (snapshotExpires - nowMs < expiries.snapshotMs / 2) {
        publish(nowMs);
        return true;
      }
      if (timestampExpires - nowMs < expiries.timestampMs / 2) {
        signTimestamp(nowMs);
        return true;
      }
      return false;
    },
    targetContent(name) {
      return published.get(name);
    },
  };
}
