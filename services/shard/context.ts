import type { KeyObject } from 'node:crypto';
import type { Clock, Rng } from '../../actors/runtime/index.js';
import type { AttestationPolicy, NonceBook, ReferenceValues, SessionBook } from '../attestation/index.js';
import type { SessionWrapItem } from '../crypto-pool/protocol.js';
import type { WrappedSessionKey } from '../../actors/crypto/index.js';
import type { TenantRegistry } from '../registry/index.js';
import type { AlertPort } from './alerts.js';
import type { ServiceMetrics } from '../metrics/index.js';
import type { AdmissionControl } from './admission.js';
import type { DeviceSnapshot } from '../journal/index.js';
import type { DeviceId, TenantId } from '../../proto/codec/index.js';

/** One verification (and, when `tbs` is non-empty, certificate signing) for the crypto pool. */
export interface CryptoItem {
  /** The device's parsed attestation key (passed to workers by reference). */
  readonly publicKey: KeyObject;
  readonly data: Uint8Array;
  readonly signature: Uint8Array;
  readonly tbs: Uint8Array[];
  readonly caKeyId?: string;
  readonly session?: SessionWrapItem;
}

/** The crypto pool as the shard uses it (services/crypto-pool implements it). */
export interface CryptoPort {
  verifyAndIssue(item: CryptoItem): Promise<{
    signatureValid: boolean;
    signatures: Uint8Array[];
    session?: WrappedSessionKey;
  }>;
  registerCaKey(caKeyId: string, pkcs8: Uint8Array): void;
}

/**
 * What every partition actor of a shard shares: read-mostly configuration and process-level
 * services. Device records are NOT here: each partition actor owns its own.
 */
export interface ShardContext {
  readonly shardId: string;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly policy: AttestationPolicy;
  readonly references: ReferenceValues;
  readonly tenants: TenantRegistry;
  /** Refusals worth an alert, and the security events threat detection reads. */
  readonly alerts: AlertPort;
  readonly nonces: NonceBook;
  readonly sessions: SessionBook;
  /** Each claimed device's tenant (written by the partition actors as claims apply), for alerts. */
  readonly deviceTenants: Map<DeviceId, TenantId>;
  readonly crypto: CryptoPort;
  readonly admission: AdmissionControl;
  /** Simulated ms per wall ms, to turn wall waits into the simulated times devices read. */
  readonly timeScale: number;
  readonly metrics: ServiceMetrics;
  readonly partitions: number;
  /** Wall clock in ms for latency metrics. */
  readonly wallNow: () => number;
  /**
   * Stores a device's snapshot in its partition's log; `true` once stored under this shard's
   * ownership, `false` if the partition is not (or no longer) this shard's. Answer the device only
   * after it resolves.
   */
  readonly persist: (partition: number, snapshot: DeviceSnapshot) => Promise<boolean>;
}
