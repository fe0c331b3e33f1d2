/**
 * What the journal records: facts, with every input a replay needs (times, generated IDs, keys),
 * so replaying them in order rebuilds the same state. Bytes travel as base64. The `t` tag names
 * the record and its subject (`<name>.journal.<t>`).
 */

/** A CA's full identity (certificate and key), as stored. */
export interface StoredCa {
  readonly certificateDer: string;
  readonly certificatePem: string;
  readonly subjectDer: string;
  readonly keyId: string;
  readonly privateKeyPkcs8: string;
  readonly publicKey: string;
}

export type JournalRecord =
  /** First record of a service: its root CA and simulated-time anchor, kept across restarts. */
  | {
      readonly t: 'genesis';
      readonly rootCa: StoredCa;
      readonly anchorWallMs: number;
      readonly anchorSimMs: number;
      readonly timeScale: number;
      /** Key of the challenge nonces' MACs (base64), shared by every shard of the service. */
      readonly nonceSecret?: string;
    }
  /** A shard process started on this journal (so each start draws fresh identifiers and nonces). */
  | { readonly t: 'boot'; readonly shardId: string; readonly atWallMs: number }
  | {
      readonly t: 'tenant';
      readonly id: string;
      readonly name: string;
      readonly createdAtMs: number;
      /** SHA-256 of the API token (the token itself is never stored). */
      readonly tokenHash: string;
      readonly ca: StoredCa;
      /** Seeds of the tenant's TUF signing keys, per role. */
      readonly tufKeys: Readonly<Record<'root' | 'targets' | 'snapshot' | 'timestamp', readonly string[]>>;
    }
  /** Attestation public keys (65-byte SEC1) registered by the manufacturer. */
  | { readonly t: 'endorse'; readonly keys: readonly string[] }
  | { readonly t: 'claim'; readonly tenantId: string; readonly deviceIds: readonly string[] }
  | {
      readonly t: 'assign';
      readonly tenantId: string;
      readonly groupId: string;
      readonly deviceIds: readonly string[];
    }
  | {
      readonly t: 'product';
      readonly tenantId: string;
      readonly name: string;
      readonly description: string;
      readonly createdAtMs: number;
      readonly productId: string;
      /** IDs of the default groups, in creation order. */
      readonly groupIds: readonly string[];
    }
  | {
      readonly t: 'group';
      readonly tenantId: string;
      readonly productId: string;
      readonly name: string;
      readonly osFeed: string;
      readonly updatePolicy: string;
      readonly groupId: string;
    }
  /** An uploaded image; its content is the blob `image-<id>`. */
  | {
      readonly t: 'image';
      readonly tenantId: string;
      readonly id: string;
      readonly kind: 'os' | 'app';
      readonly name: string;
      readonly version: string;
      readonly securityVersion: number;
      readonly atMs: number;
    }
  /** The tenant's TUF repository re-signed its timestamp (or republished) at `atMs`. */
  | { readonly t: 'tuf-refresh'; readonly tenantId: string; readonly atMs: number }
  | {
      readonly t: 'deployment';
      readonly id: string;
      readonly tenantId: string;
      /** The rollout as created (engine JSON, `scheduled`, no devices). */
      readonly rollout: string;
    }
  /** A message the deployment's rollout engine applied (and that changed it), at `atMs`. */
  | { readonly t: 'rollout'; readonly id: string; readonly msg: string; readonly atMs: number }
  /** A device's error report, stored once under `error-<device>-<report id>`. */
  | {
      readonly t: 'error-report';
      readonly tenantId: string;
      readonly productId: string | null;
      readonly groupId: string | null;
      readonly deviceId: string;
      readonly receivedAtMs: number;
      readonly reportId: string;
      readonly fromMs: number;
      readonly toMs: number;
      readonly droppedEvents: number;
      readonly events: ReadonlyArray<{
        readonly kind: string;
        readonly component: string;
        readonly version: string;
        readonly exitCode: number;
        readonly atMs: number;
        readonly detail: string;
      }>;
    }
  /** An alert, stored once under its id (a detection's id is the same on every shard). */
  | {
      readonly t: 'alert';
      readonly id: string;
      readonly tenantId: string | null;
      readonly type: string;
      readonly severity: string;
      readonly deviceId: string;
      readonly atMs: number;
      readonly message: string;
      readonly evidence: Readonly<Record<string, string>>;
    }
  /** Where a tenant's alerts are POSTed (`url` empty: nowhere) and the key that signs them (hex). */
  | { readonly t: 'webhook'; readonly tenantId: string; readonly url: string; readonly secret: string };

export type JournalRecordType = JournalRecord['t'];

export const b64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');
/**
 * Bytes of a base64 field as read back. Anything but a string is refused: `Buffer.from` would take
 * an object with a `length` as an array-like and allocate that many bytes (a record from the
 * journal is only as trusted as NATS).
 */
export const unb64 = (s: string): Uint8Array => {
  if (typeof s !== 'string') throw new TypeError(`expected a base64 string, got ${typeof s}`);
  return new Uint8Array(Buffer.from(s, 'base64'));
};

/**
 * What a partition's owner knows about one device beyond the service-wide records (endorsement,
 * claim, group): its last accepted boot, attestation outcome, certificates and running apps. The
 * owner stores the whole snapshot after every change, so the latest one per device is the state.
 */
export interface DeviceSnapshot {
  readonly d: string;
  readonly bootId: string;
  readonly bootCount: number;
  readonly os: string;
  readonly sv: number;
  readonly compromised: boolean;
  readonly ok: number;
  readonly failed: number;
  readonly seenMs: number;
  readonly last: {
    readonly atMs: number;
    readonly ok: boolean;
    readonly code: string;
    readonly message: string;
  } | null;
  /** DER certificates (base64) and their end of validity. */
  readonly certs: { readonly update: string; readonly client: string; readonly notAfterMs: number } | null;
  readonly apps: Readonly<Record<string, string>>;
  /** The challenge nonce this change consumed (base64), so a new owner refuses its replay. */
  readonly nonce: string | null;
  /** The device's current session ID (hex); absent in logs written before sessions existed. */
  readonly session?: string | null;
}

/**
 * One append to a partition's log by its owner: the owner's process incarnation, its lease's
 * fencing token, and device snapshots. A batch without devices marks a new owner taking over.
 */
export interface PartitionBatch {
  readonly o: string;
  readonly token: number;
  readonly devices: readonly DeviceSnapshot[];
}

/** Every record type, for checking what a follower reads (the journal is only as trusted as NATS). */
const RECORD_TYPES: ReadonlySet<string> = new Set<JournalRecordType>([
  'genesis',
  'boot',
  'tenant',
  'endorse',
  'claim',
  'assign',
  'product',
  'group',
  'image',
  'tuf-refresh',
  'deployment',
  'rollout',
  'error-report',
  'alert',
  'webhook',
]);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringOrNull = (v: unknown): boolean => v === null || typeof v === 'string';

/**
 * A service-wide record as read back, or what is wrong with it. Only the shape a follower relies
 * on before applying is checked (an object with a known `t`); applying checks the fields and a
 * record that fails there is skipped like any record that cannot be applied.
 */
export function readJournalRecord(value: unknown): JournalRecord | string {
  if (!isObject(value)) return 'not a JSON object';
  if (typeof value.t !== 'string' || !RECORD_TYPES.has(value.t))
    return `unknown record type ${JSON.stringify(value.t)}`;
  return value as unknown as JournalRecord;
}

/** What is wrong with a device snapshot as read back, or `null` if it has the stored shape. */
function snapshotProblem(s: unknown): string | null {
  if (!isObject(s)) return 'not an object';
  for (const k of ['d', 'bootId', 'os'] as const) if (typeof s[k] !== 'string') return `${k} is not a string`;
  for (const k of ['bootCount', 'sv', 'ok', 'failed', 'seenMs'] as const)
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) return `${k} is not a number`;
  if (typeof s.compromised !== 'boolean') return 'compromised is not a boolean';
  const last = s.last;
  if (
    last !== null &&
    !(
      isObject(last) &&
      typeof last.atMs === 'number' &&
      typeof last.ok === 'boolean' &&
      typeof last.code === 'string' &&
      typeof last.message === 'string'
    )
  )
    return 'last is not an attestation outcome';
  const certs = s.certs;
  if (
    certs !== null &&
    !(
      isObject(certs) &&
      typeof certs.update === 'string' &&
      typeof certs.client === 'string' &&
      typeof certs.notAfterMs === 'number'
    )
  )
    return 'certs is not a certificate pair';
  if (!isObject(s.apps) || !Object.values(s.apps).every((v) => typeof v === 'string'))
    return 'apps is not a map of versions';
  if (!isStringOrNull(s.nonce)) return 'nonce is not a string';
  if (s.session !== undefined && !isStringOrNull(s.session)) return 'session is not a string';
  return null;
}

/** A partition batch as read back, or what is wrong with it (every snapshot's shape is checked). */
export function readPartitionBatch(value: unknown): PartitionBatch | string {
  if (!isObject(value)) return 'not a JSON object';
  if (typeof value.o !== 'string') return 'o (the writer) is not a string';
  if (typeof value.token !== 'number' || !Number.isSafeInteger(value.token)) return 'token is not an integer';
  if (!Array.isArray(value.devices)) return 'devices is not an array';
  for (const [i, s] of value.devices.entries()) {
    const problem = snapshotProblem(s);
    if (problem !== null) return `devices[${i}]: ${problem}`;
  }
  return value as unknown as PartitionBatch;
}
