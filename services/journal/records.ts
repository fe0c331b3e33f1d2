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
    };

export type JournalRecordType = JournalRecord['t'];

export const b64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');
export const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

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
