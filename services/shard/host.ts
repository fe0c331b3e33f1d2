import { createHash, createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import {
  ActorSystem,
  connectNatsTransport,
  createPromMeter,
  createRng,
  createScaledClock,
} from '../../actors/runtime/index.js';
import type {
  ActorHandle,
  ActorRef,
  MetricsServer,
  PromMeter,
  Rng,
  Transport,
} from '../../actors/runtime/index.js';
import { deviceIdFromPublicKey, publicKeyFromRaw } from '../../actors/crypto/index.js';
import {
  DEFAULT_PARTITIONS,
  REJECT_CODES,
  parseDeploymentId,
  parseDeviceGroupId,
  parseDeviceId,
  parseImageId,
  parseProductId,
  parseTenantId,
  partitionOf,
} from '../../proto/codec/index.js';
import type { DeploymentId, DeviceId, TenantId } from '../../proto/codec/index.js';
import type {
  Device,
  DeviceGroup as DeviceGroupView,
  GetFleetStatsResponse,
  Image as ImageView,
  Rollout as RolloutView,
  Product as ProductView,
} from '../../proto/gen/sphere/operator/v1/operator.js';
import { DEFAULT_POLICY, NonceBook, SessionBook, defaultReferenceValues } from '../attestation/index.js';
import type { AttestationPolicy } from '../attestation/index.js';
import { createRootCa, createTenantCa, toPem } from '../certificates/index.js';
import type { CaIdentity } from '../certificates/index.js';
import { createCryptoPool } from '../crypto-pool/index.js';
import type { CryptoPool } from '../crypto-pool/index.js';
import { createServiceMetrics } from '../metrics/index.js';
import { OperatorError, startOperatorServer } from '../operator-api/index.js';
import type { Caller, OperatorBackend, OperatorServer } from '../operator-api/index.js';
import {
  AlertLog,
  DEVICE_STATES,
  SEVERITIES,
  ImageRegistry,
  ProductRegistry,
  TenantRegistry,
  DEFAULT_DEVICE_GROUPS,
  OS_FEEDS,
  UPDATE_POLICIES,
  deviceState,
  imageTargetName,
  tokenHash,
} from '../registry/index.js';
import type {
  Alert,
  DeviceGroup,
  DeviceRecord,
  DeviceRegistry,
  ImageRecord,
  Product,
  Severity,
} from '../registry/index.js';
import { ThreatDetector } from '../detection/index.js';
import type { DetectionConfig } from '../detection/index.js';
import { createAlertService } from './alerts.js';
import { AlertWebhooks, webhookUrlProblem } from './webhooks.js';
import { createTufRepository, serveTufRepositories } from '../updates/tuf/index.js';
import { deserializeRollout, initialRollout, rolloutGauges, serializeRollout } from '../rollouts/index.js';
import { b64, memoryJournal, openJetStreamJournal, unb64 } from '../journal/index.js';
import type { Follower, Journal, JournalEntry, JournalRecord, StoredCa } from '../journal/index.js';
import type { Rollout, RolloutError, RolloutMessage } from '../rollouts/index.js';
import { DEFAULT_LEASE_CONFIG, LeaseManager, openKvLeaseStore } from '../leases/index.js';
import type { LeaseConfig, LeaseStore } from '../leases/index.js';
import { PartitionOwnership } from './ownership.js';
import { RolloutWatchers, deploymentDefinition } from './deployment-actor.js';
import { appVersions, createUpdateService } from './updates.js';
import { createErrorReportService } from './error-reports.js';
import { ErrorReportStore } from '../error-reports/index.js';
import type { ErrorEventKind, StoredErrorReport } from '../error-reports/index.js';
import type { DeploymentEntry } from './updates.js';
import type { DeploymentMessage, RolloutListener } from './deployment-actor.js';
import type { TufHttpServer, TufRepository } from '../updates/tuf/index.js';
import type { ShardContext } from './context.js';
import { AdmissionControl } from './admission.js';
import { serveDevices } from './device-gateway.js';
import type { DeviceGateway } from './device-gateway.js';
import { partitionDefinition, snapshotOf } from './partition-actor.js';
import type { ClaimOutcome, PartitionMessage, PartitionState } from './partition-actor.js';

/** Options of a shard process, validated by `compileShardOptions` (main.ts) before use. */
export interface ShardOptions {
  readonly nats: string;
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** `null`: serve no /metrics endpoint (tests read the meter directly). */
  readonly metricsPort: number | null;
  /** Port of the read-only HTTP server for tenants' TUF repositories (0 = any free port). */
  readonly tufPort: number;
  readonly adminToken: string;
  readonly workers: number;
  readonly batchSize: number;
  /** Attestations in flight before the shard answers OVERLOADED. */
  readonly maxInFlight: number;
  readonly partitions: number;
  readonly timeScale: number;
  readonly policy: AttestationPolicy;
  readonly seed: string;
  readonly shardId: string;
  /** Name of the JetStream journal holding the service's state; `null`: memory only. */
  readonly journal: string | null;
  /** Replicas of the journal, blobs and lease bucket (3 on a 3-node NATS cluster). */
  readonly replicas: number;
  /** Partition leases (only with a journal: on memory, the one shard serves every partition). */
  readonly lease: LeaseConfig & { readonly tickMs: number };
  /**
   * `false` only for tests that must show a checker catching two owners: partition appends are
   * not fenced and ignore the lease's deadline. Never in production.
   */
  readonly fencing: boolean;
  /** Threat detection's thresholds and windows (simulated time); `null` turns detection off. */
  readonly detection: Partial<DetectionConfig> | null;
}

export const DEFAULT_SHARD_OPTIONS: Omit<ShardOptions, 'nats' | 'adminToken'> = {
  grpcHost: '127.0.0.1',
  grpcPort: 0,
  metricsPort: 0,
  tufPort: 0,
  workers: 1,
  batchSize: 64,
  maxInFlight: 2048,
  partitions: DEFAULT_PARTITIONS,
  timeScale: 1,
  policy: DEFAULT_POLICY,
  seed: 'shard',
  shardId: 'shard-0',
  journal: null,
  replicas: 1,
  lease: { ...DEFAULT_LEASE_CONFIG, tickMs: 1000 },
  fencing: true,
  detection: {},
};

/** A running shard. */
export interface Shard {
  readonly shardId: string;
  readonly grpcAddress: string;
  readonly metricsUrl: string | null;
  /** Base URL of the tenants' TUF repositories: `<tufUrl>/<tenantId>/metadata/`. */
  readonly tufUrl: string;
  readonly meter: PromMeter;
  readonly rootCaPem: string;
  readonly pool: CryptoPool;
  close(): Promise<void>;
}

/**
 * Runs `step` until it succeeds, at most `attempts` times `waitMs` apart; an error `retry` says
 * is not worth retrying (or the last one) is thrown.
 */
async function retrying<T>(
  step: () => Promise<T>,
  opts: { attempts: number; waitMs: number; retry?: (e: unknown, attempt: number) => boolean },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (e) {
      if (attempt >= opts.attempts || opts.retry?.(e, attempt) === false) throw e;
      await new Promise((r) => setTimeout(r, opts.waitMs));
    }
  }
}

/**
 * A JetStream setup step that timed out or found no responders is retried: on a cluster that has
 * just formed (or is electing a leader) a stream request can go unanswered for a few seconds.
 */
const duringStartup = <T>(what: string, step: () => Promise<T>): Promise<T> =>
  retrying(step, {
    attempts: 6,
    waitMs: 1000,
    retry: (e, attempt) => {
      if (!/TIMEOUT|503|no responders/i.test(String(e))) return false;
      console.error(`shard: could not ${what} (${String(e)}); retrying (${attempt}/5)`);
      return true;
    },
  });

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/**
 * Starts a security-service shard: crypto pool, one actor per partition, the NATS device
 * gateway, the operator gRPC API and /metrics. Owns every partition (sharding arrives with
 * issue 4). State is in memory.
 */
export async function startShard(opts: ShardOptions): Promise<Shard> {
  const journalName = opts.journal;
  const journal =
    journalName === null
      ? memoryJournal()
      : await duringStartup('open the journal', () =>
          openJetStreamJournal({
            servers: opts.nats,
            name: journalName,
            connectionName: `${opts.shardId}-journal`,
            replicas: opts.replicas,
          }),
        );
  const rng = createRng(opts.seed);
  let genesis: Genesis;
  let bootSeq: number;
  try {
    genesis = await openGenesis(journal, opts, rng);
    // Each process start is an incarnation named by its boot record's place in the journal: its
    // identifiers, nonces and leases must never be mistaken for an earlier process's.
    bootSeq = await journal.append(
      { t: 'boot', shardId: opts.shardId, atWallMs: Date.now() },
      `boot-${randomUUID()}`,
    );
  } catch (e) {
    await journal.close();
    throw e;
  }
  const incarnation = `${opts.shardId}-b${bootSeq}`;
  // The service's identity and simulated time come from the journal's first record, so every
  // shard (and a restarted one) shares the root CA and the clock runs on from where it was.
  const { anchorWallMs, anchorSimMs } = genesis;
  const clock = createScaledClock({
    timeScale: opts.timeScale,
    epochMs: anchorSimMs + (Date.now() - anchorWallMs) * opts.timeScale,
  });
  const bootRng = rng.fork(`boot/${bootSeq}`);
  const meter = createPromMeter({ defaultMetrics: true });
  const metrics = createServiceMetrics(meter);
  const pool = createCryptoPool({ workers: opts.workers, batchSize: opts.batchSize, meter });
  const tenants = new TenantRegistry();
  const alertLog = new AlertLog();
  const alerts = createAlertService({
    append: (record, id) => journal.append(record, id),
    metrics,
    detector: opts.detection === null ? null : new ThreatDetector(opts.detection),
    idPrefix: incarnation,
    known: (id) => alertLog.has(id),
    wallNow: () => performance.now(),
  });
  const webhooks = new AlertWebhooks({ metrics });
  const root = restoreCa(genesis.rootCa);
  const nonceSecret =
    genesis.nonceSecret === undefined ? rng.fork('nonce-secret').bytes(32) : unb64(genesis.nonceSecret);
  /** Set once leases and the journal's follower run (below); partitions are persisted through it. */
  let ownership: PartitionOwnership | null = null;
  const ctx: ShardContext = {
    shardId: opts.shardId,
    clock,
    rng: bootRng.fork('decisions'),
    policy: opts.policy,
    references: defaultReferenceValues(),
    tenants,
    alerts,
    nonces: new NonceBook(nonceSecret, opts.policy.nonceTtlMs),
    sessions: new SessionBook(nonceSecret),
    deviceTenants: new Map(),
    crypto: pool,
    admission: new AdmissionControl({ maxInFlight: opts.maxInFlight }),
    timeScale: opts.timeScale,
    metrics,
    partitions: opts.partitions,
    wallNow: () => performance.now(),
    persist: (partition, snapshot) => ownership?.persist(partition, snapshot) ?? Promise.resolve(false),
  };
  const system = new ActorSystem({
    clock,
    rng: bootRng.fork('actors'),
    meter,
    name: opts.shardId,
    onFailure: (f) => console.error(`shard: actor ${f.actor} failed (supervisor restarts it):`, f.error),
  });
  const actors: ActorHandle<PartitionState, PartitionMessage>[] = [];
  for (let p = 0; p < opts.partitions; p++) actors.push(system.spawn(partitionDefinition(p, ctx)));
  metrics.partitionsOwned.set({ shard: opts.shardId }, 0);

  /**
   * Tells `ref` the message `make(reply)` builds and resolves with what it replies. A full
   * mailbox is waited out for up to `patienceMs` (journal records are applied with infinite
   * patience: a replica must never skip one).
   */
  const askActor = <M, T>(
    ref: ActorRef<M> | undefined,
    what: string,
    make: (reply: (v: T) => void) => M,
    patienceMs: number,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const until = performance.now() + patienceMs;
      const attempt = (): void => {
        if (ref !== undefined && ref.tell(make(resolve))) return;
        if (ref === undefined || performance.now() > until)
          reject(new OperatorError('INTERNAL', `${what} is unavailable or full; retry`));
        else setTimeout(attempt, 2);
      };
      attempt();
    });
  /** Runs `make(reply)` in the partition's turn and resolves with what it replies. */
  const ask = <T>(
    partition: number,
    make: (reply: (v: T) => void) => PartitionMessage,
    patienceMs = 5000,
  ): Promise<T> => askActor(actors[partition], `partition ${partition}`, make, patienceMs);
  /** Runs `visit` over the records of `partitions` (default: all), each in its partition's turn. */
  const visitAll = (
    visit: (devices: DeviceRegistry) => void,
    partitions: Iterable<number> = actors.keys(),
  ): Promise<void[]> =>
    Promise.all(
      [...partitions].map((p) =>
        ask<void>(p, (reply) => ({ type: 'partition.visit', visit: (d) => reply(visit(d)) })),
      ),
    );

  const byPartition = <T>(items: readonly T[], idOf: (t: T) => DeviceId): Map<number, T[]> => {
    const groups = new Map<number, T[]>();
    for (const item of items) {
      const p = partitionOf(idOf(item), opts.partitions);
      let g = groups.get(p);
      if (g === undefined) groups.set(p, (g = []));
      g.push(item);
    }
    return groups;
  };

  const products = new ProductRegistry();
  const images = new ImageRegistry();
  /** One TUF repository per tenant, created with the tenant; keys from the seeded randomness. */
  const repos = new Map<TenantId, TufRepository>();
  /** A fresh identifier `prefix` + 16 hex characters from the shard's seeded randomness. */
  const newId = <T>(prefix: string, parse: (s: string) => T | null): T => {
    const id = parse(`${prefix}${hex(ctx.rng.bytes(8))}`);
    if (id === null) throw new OperatorError('INTERNAL', `generated ${prefix} identifier is invalid`);
    return id;
  };
  /** Devices per group of one tenant, counted in each partition's turn. */
  const groupCounts = async (tenantId: TenantId): Promise<Map<string, number>> => {
    const counts = new Map<string, number>();
    await visitAll((devices) => {
      for (const r of devices.values()) {
        if (r.tenantId === tenantId && r.deviceGroupId !== null)
          counts.set(r.deviceGroupId, (counts.get(r.deviceGroupId) ?? 0) + 1);
      }
    });
    return counts;
  };

  // State changes. Each is a journal record, applied by one function when the follower reads it
  // back from the journal (below), on every shard and on replay alike: a change is stored, then
  // applied, then answered, so all shards apply the same changes in the same order. `commit`
  // resolves with what applying its record returned (or rejects with what applying it threw).
  const fatal = (e: unknown): never => {
    // Memory and journal would disagree from here on; stop so a restart replays a consistent state.
    console.error('shard: the journal failed; stopping (a restart replays the journal):', e);
    process.exit(75);
  };
  type Waiter = { resolve: (v: unknown) => void; reject: (e: unknown) => void };
  const committing = new Map<string, Waiter[]>();
  let commits = 0;
  /**
   * `id` names the change for deduplication (default: unique). A change whose id is already in
   * the journal is not stored again; its caller gets what applying it returned when it waited
   * for it, or `duplicate` when it was applied before this call.
   */
  const commit = <T>(record: JournalRecord, id = `${incarnation}-${++commits}`, duplicate?: T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { resolve: (v) => resolve(v as T), reject };
      committing.set(id, [...(committing.get(id) ?? []), waiter]);
      const forget = (): void => {
        const left = (committing.get(id) ?? []).filter((w) => w !== waiter);
        if (left.length > 0) committing.set(id, left);
        else committing.delete(id);
      };
      journal.append(record, id).then(
        (seq) => {
          // Already applied (a duplicate of an earlier change): the follower will not call back.
          if (seq <= appliedSeq && committing.get(id)?.includes(waiter) === true) {
            forget();
            resolve(duplicate as T);
          }
        },
        (e: unknown) => {
          forget();
          reject(
            new OperatorError(
              'UNAVAILABLE',
              `the journal did not store the change (${e instanceof Error ? e.message : String(e)}); retry`,
            ),
          );
        },
      );
    });

  const applyTenant = (r: Extract<JournalRecord, { t: 'tenant' }>): CaIdentity => {
    const id = parseTenantId(r.id);
    if (id === null) throw new Error(`journal: bad tenant id ${r.id}`);
    const ca = restoreCa(r.ca);
    tenants.addHashed({ id, name: r.name, ca, createdAtMs: r.createdAtMs }, r.tokenHash);
    const seeds = (role: keyof typeof r.tufKeys) => r.tufKeys[role].map(unb64);
    repos.set(
      id,
      createTufRepository({
        nowMs: r.createdAtMs,
        keys: {
          root: seeds('root'),
          targets: seeds('targets'),
          snapshot: seeds('snapshot'),
          timestamp: seeds('timestamp'),
        },
      }),
    );
    pool.registerCaKey(ca.keyId, ca.privateKeyPkcs8);
    return ca;
  };
  const applyEndorse = async (r: Extract<JournalRecord, { t: 'endorse' }>): Promise<[number, number]> => {
    const devices = r.keys.map((k) => {
      const publicKey = unb64(k);
      const deviceId = parseDeviceId(deviceIdFromPublicKey(publicKey));
      if (deviceId === null) throw new OperatorError('INTERNAL', 'derived device ID is invalid');
      return { deviceId, publicKey, key: publicKeyFromRaw(publicKey) };
    });
    let registered = 0;
    let alreadyKnown = 0;
    await Promise.all(
      [...byPartition(devices, (d) => d.deviceId)].map(([p, group]) =>
        ask<[number, number]>(
          p,
          (reply) => ({ type: 'partition.endorse', devices: group, reply: (n, a) => reply([n, a]) }),
          Infinity,
        ).then(([n, a]) => {
          registered += n;
          alreadyKnown += a;
        }),
      ),
    );
    return [registered, alreadyKnown];
  };
  /** Runs a per-device partition operation over `ids`; results in the order of `ids`. */
  const perDevice = async <T>(
    ids: readonly DeviceId[],
    make: (ids: DeviceId[], reply: (results: T[]) => void) => PartitionMessage,
  ): Promise<T[]> => {
    const out = new Array<T>(ids.length);
    const positions = new Map<DeviceId, number[]>();
    ids.forEach((id, i) => positions.set(id, [...(positions.get(id) ?? []), i]));
    await Promise.all(
      [...byPartition([...positions.keys()], (d) => d)].map(([p, group]) =>
        ask<T[]>(p, (reply) => make(group, reply), Infinity).then((results) =>
          results.forEach((v, k) => {
            for (const i of positions.get(group[k] as DeviceId) ?? []) out[i] = v;
          }),
        ),
      ),
    );
    return out;
  };
  const deviceIdsOf = (ids: readonly string[]): DeviceId[] =>
    ids.map((s) => {
      const id = parseDeviceId(s);
      if (id === null) throw new Error(`journal: bad device id ${s.slice(0, 20)}`);
      return id;
    });
  const applyClaim = (r: Extract<JournalRecord, { t: 'claim' }>): Promise<ClaimOutcome[]> => {
    const tenantId = parseTenantId(r.tenantId);
    if (tenantId === null) throw new Error(`journal: bad tenant id ${r.tenantId}`);
    return perDevice<ClaimOutcome>(deviceIdsOf(r.deviceIds), (deviceIds, reply) => ({
      type: 'partition.claim',
      tenantId,
      deviceIds,
      reply,
    }));
  };
  const applyAssign = (r: Extract<JournalRecord, { t: 'assign' }>): Promise<boolean[]> => {
    const tenantId = parseTenantId(r.tenantId);
    const deviceGroupId = parseDeviceGroupId(r.groupId);
    if (tenantId === null || deviceGroupId === null) throw new Error('journal: bad assign record');
    return perDevice<boolean>(deviceIdsOf(r.deviceIds), (deviceIds, reply) => ({
      type: 'partition.assign',
      tenantId,
      deviceGroupId,
      deviceIds,
      reply,
    }));
  };
  const applyProduct = (r: Extract<JournalRecord, { t: 'product' }>) => {
    const tenantId = parseTenantId(r.tenantId);
    const productId = parseProductId(r.productId);
    if (tenantId === null || productId === null) throw new Error('journal: bad product record');
    const groupIds = r.groupIds.map((g) => parseDeviceGroupId(g));
    let next = 0;
    return products.createProduct(
      { tenantId, name: r.name, description: r.description, createdAtMs: r.createdAtMs },
      () => productId,
      () => {
        const id = groupIds[next++];
        if (id === undefined || id === null) throw new Error('journal: product record lacks group ids');
        return id;
      },
    );
  };
  const applyGroup = (r: Extract<JournalRecord, { t: 'group' }>) => {
    const tenantId = parseTenantId(r.tenantId);
    const productId = parseProductId(r.productId);
    const groupId = parseDeviceGroupId(r.groupId);
    if (tenantId === null || productId === null || groupId === null)
      throw new Error('journal: bad group record');
    const osFeed = OS_FEEDS.find((f) => f === r.osFeed);
    const updatePolicy = UPDATE_POLICIES.find((u) => u === r.updatePolicy);
    if (osFeed === undefined || updatePolicy === undefined) throw new Error('journal: bad group record');
    return products.createGroup({ tenantId, productId, name: r.name, osFeed, updatePolicy }, () => groupId);
  };
  const applyImage = (r: Extract<JournalRecord, { t: 'image' }>, content: Uint8Array): ImageRecord => {
    const tenantId = parseTenantId(r.tenantId);
    const id = parseImageId(r.id);
    const repo = tenantId === null ? undefined : repos.get(tenantId);
    if (tenantId === null || id === null || repo === undefined) throw new Error('journal: bad image record');
    const targetName = imageTargetName(r.kind, r.name, r.version);
    repo.addTarget(targetName, content, {
      securityVersion: r.securityVersion,
      kind: r.kind,
      version: r.version,
    });
    repo.publish(r.atMs);
    const record: ImageRecord = {
      id,
      tenantId,
      kind: r.kind,
      name: r.name,
      version: r.version,
      securityVersion: r.securityVersion,
      length: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
      targetName,
      uploadedAtMs: r.atMs,
    };
    images.add(record);
    return record;
  };
  const applyRefresh = (r: Extract<JournalRecord, { t: 'tuf-refresh' }>): void => {
    const tenantId = parseTenantId(r.tenantId);
    if (tenantId !== null) repos.get(tenantId)?.refresh(r.atMs);
  };
  /** Re-signs a tenant's TUF timestamp when due; journaled before it is applied (see updates.ts). */
  const refreshing = new Map<TenantId, Promise<void>>();
  const keepFresh = (tenantId: TenantId): Promise<void> => {
    const pending = refreshing.get(tenantId);
    if (pending !== undefined) return pending;
    const now = clock.now();
    if (repos.get(tenantId)?.refreshDue(now) !== true) return Promise.resolve();
    const done = commit<void>({ t: 'tuf-refresh', tenantId, atMs: now }).finally(() =>
      refreshing.delete(tenantId),
    );
    refreshing.set(tenantId, done);
    return done;
  };

  /** Deployments by ID; each is an actor owning its rollout state (a replica on every shard). */
  const deployments = new Map<DeploymentId, DeploymentEntry>();
  /**
   * The partition whose owner is a deployment's home: it exports the deployment's gauges and
   * journals its ticks (deployment IDs are random hex, so homes spread like devices).
   */
  const homeOf = (id: DeploymentId): number => Number.parseInt(id.slice(2, 10), 16) % opts.partitions;
  /** Journals a message for a deployment; resolves with the engine's refusal, if any, once applied. */
  // A device report is stored under its report ID: a device repeating a report whose
  // acknowledgement it missed does not store it twice. The ID goes percent-encoded into the
  // Nats-Msg-Id header, which NATS trims (trailing spaces) or refuses (line breaks) otherwise.
  const commitRollout = (id: DeploymentId, msg: RolloutMessage): Promise<RolloutError | null> =>
    commit<RolloutError | null>(
      { t: 'rollout', id, msg: JSON.stringify(msg), atMs: clock.now() },
      msg.type === 'rollout.device-report'
        ? `report-${id}-${msg.deviceId}-${encodeURIComponent(msg.reportId)}`
        : undefined,
      null,
    );
  /** Spawns the actor of a deployment whose (created or replayed) rollout is `rollout`. */
  const spawnDeployment = (
    id: DeploymentId,
    tenantId: TenantId,
    rollout: Rollout,
  ): ActorRef<DeploymentMessage> => {
    const watchers = new RolloutWatchers((n) => metrics.rolloutWatchers.set({ deployment: id }, n));
    deploymentWatchers.set(id, watchers);
    const ref = system.spawn(
      deploymentDefinition(rollout, {
        clock,
        metrics,
        watchers,
        isHome: () => ownership?.isServed(homeOf(id)) === true,
        commitTick: (nowMs) =>
          void commitRollout(id, { type: 'rollout.tick', nowMs }).catch((e: unknown) =>
            console.error(`shard: deployment ${id}: tick not stored (checked again in 1 s):`, e),
          ),
        tickRetryMs: 1000 * opts.timeScale,
      }),
    );
    const image = rollout.image;
    const name = images.list(tenantId).find((i) => i.id === image.imageId)?.name ?? image.imageId;
    deployments.set(id, {
      id,
      tenantId,
      groupId: rollout.groupId,
      ref,
      component: image.kind === 'os' ? 'os' : name,
      version: image.version,
    });
    return ref;
  };
  /** A partition's owner changed here: its deployments' home moved (gauges, ticks). */
  const homeChanged = (partition: number): void => {
    for (const d of deployments.values())
      if (homeOf(d.id) === partition) d.ref.tell({ type: 'deployment.home' });
  };
  const deploymentOf = (tenantId: TenantId, id: DeploymentId): ActorRef<DeploymentMessage> => {
    const d = deployments.get(id);
    if (d === undefined || d.tenantId !== tenantId)
      throw new OperatorError('NOT_FOUND', 'no such deployment in your tenant');
    return d.ref;
  };
  /** WatchRollout streams per deployment (a hub per deployment, created with its actor). */
  const deploymentWatchers = new Map<DeploymentId, RolloutWatchers>();
  /**
   * Views for watchers, one per rollout state however many watch it (a view is O(devices)).
   * Rollout states are immutable, so the state object is a sound key; old ones are collected.
   */
  const watchViews = new WeakMap<Rollout, RolloutView>();
  const watchViewOf = (r: Rollout): RolloutView => {
    let view = watchViews.get(r);
    if (view === undefined) watchViews.set(r, (view = rolloutView(r, false)));
    return view;
  };
  const readDeployment = (ref: ActorRef<DeploymentMessage>): Promise<Rollout> =>
    new Promise((resolve, reject) => {
      if (!ref.tell({ type: 'deployment.read', reply: resolve }))
        reject(new OperatorError('INTERNAL', 'deployment is unavailable; retry'));
    });
  /** An operator's command to a deployment; refused by the engine: CONFLICT. */
  const applyToDeployment = async (id: DeploymentId, msg: RolloutMessage): Promise<void> => {
    const refused = await commitRollout(id, msg);
    if (refused !== null) throw new OperatorError('CONFLICT', refused.message);
  };

  /**
   * Adds devices to a deployment's population in a few bulk messages (one per device would
   * overflow the actor's mailbox for a large group and is quadratic in the engine).
   */
  const joinDeployment = async (id: DeploymentId, deviceIds: readonly string[]): Promise<void> => {
    for (let i = 0; i < deviceIds.length; i += JOIN_BATCH)
      await applyToDeployment(id, {
        type: 'rollout.devices-joined',
        deviceIds: deviceIds.slice(i, i + JOIN_BATCH),
      });
  };

  const adminToken = opts.adminToken;
  const backend: OperatorBackend = {
    authenticate(token): Caller | null {
      if (token === adminToken) return { kind: 'admin' };
      const tenant = tenants.byToken(token);
      return tenant === undefined ? null : { kind: 'tenant', tenantId: tenant.id };
    },
    async createTenant(name) {
      const id = newId('t-', parseTenantId);
      const now = clock.now();
      const apiToken = randomBytes(32).toString('base64url');
      const seeds = () => [b64(ctx.rng.bytes(32))];
      const record = {
        t: 'tenant',
        id,
        name,
        createdAtMs: now,
        tokenHash: tokenHash(apiToken),
        ca: storeCa(createTenantCa(root, { tenantId: id, name, notBeforeMs: now - 86_400_000 })),
        tufKeys: { root: seeds(), targets: seeds(), snapshot: seeds(), timestamp: seeds() },
      } as const;
      const ca = await commit<CaIdentity>(record);
      return {
        tenantId: id,
        apiToken,
        tenantCaPem: ca.certificatePem,
        rootCaPem: root.certificatePem,
      };
    },
    async registerEndorsements(keys) {
      keys.forEach((publicKey, i) => {
        try {
          publicKeyFromRaw(publicKey);
        } catch (cause) {
          throw new OperatorError(
            'MALFORMED_INPUT',
            `attestation_public_keys[${i}] is not a point on P-256`,
            { cause },
          );
        }
      });
      let registered = 0;
      let alreadyKnown = 0;
      for (let i = 0; i < keys.length; i += RECORD_BATCH) {
        const record = { t: 'endorse', keys: keys.slice(i, i + RECORD_BATCH).map(b64) } as const;
        const [n, a] = await commit<[number, number]>(record);
        registered += n;
        alreadyKnown += a;
      }
      return { registered, alreadyKnown };
    },
    async claimDevices(tenantId, deviceIds) {
      crossing(tenantId, deviceIds, 'ClaimDevices');
      let claimed = 0;
      let alreadyYours = 0;
      const rejected: { deviceId: string; code: string; message: string }[] = [];
      for (let i = 0; i < deviceIds.length; i += RECORD_BATCH) {
        const ids = deviceIds.slice(i, i + RECORD_BATCH);
        const outcomes = await commit<ClaimOutcome[]>({ t: 'claim', tenantId, deviceIds: ids });
        outcomes.forEach((o, k) => {
          const deviceId = ids[k] ?? '';
          if (o === 'claimed') claimed++;
          else if (o === 'already-yours') alreadyYours++;
          else if (o === 'claimed-by-another') {
            rejected.push({
              deviceId,
              code: 'ALREADY_CLAIMED',
              message: 'device is claimed by another tenant; claiming is irreversible',
            });
          } else
            rejected.push({
              deviceId,
              code: 'UNKNOWN_DEVICE',
              message: 'no endorsement for this device; register it first',
            });
        });
      }
      return { claimed, alreadyYours, rejected };
    },
    getDevice(tenantId, deviceId) {
      crossing(tenantId, [deviceId], 'GetDevice');
      return ask<Device | null>(partitionOf(deviceId, opts.partitions), (reply) => ({
        type: 'partition.visit',
        visit: (devices) => {
          const r = devices.get(deviceId);
          reply(r === undefined || r.tenantId !== tenantId ? null : deviceView(r, clock.now()));
        },
      }));
    },
    listAlerts(tenantId, q) {
      const page = alertLog.list({ tenantId, ...q });
      return { alerts: page.alerts, nextSeq: page.nextSeq };
    },
    alertLog: () => alertLog,
    errorReports: () => errorStore,
    async setAlertWebhook(tenantId, url) {
      const problem = url === '' ? null : webhookUrlProblem(url);
      if (problem !== null) throw new OperatorError('MALFORMED_INPUT', problem);
      const secret = url === '' ? '' : hex(ctx.rng.bytes(32));
      await commit({ t: 'webhook', tenantId, url, secret });
      return secret;
    },
    async fleetStats(tenantId: TenantId): Promise<GetFleetStatsResponse> {
      const byState: Record<string, number> = {};
      const byOs: Record<string, number> = {};
      const byResult: Record<string, number> = { ok: 0, rejected: 0 };
      let claimed = 0;
      const now = clock.now();
      await visitAll((devices) => {
        for (const r of devices.values()) {
          if (r.tenantId !== tenantId) continue;
          claimed++;
          const s = deviceState(r, now);
          byState[s] = (byState[s] ?? 0) + 1;
          if (r.osVersion !== '') byOs[r.osVersion] = (byOs[r.osVersion] ?? 0) + 1;
          byResult['ok'] = (byResult['ok'] ?? 0) + r.attestationsOk;
          byResult['rejected'] = (byResult['rejected'] ?? 0) + r.attestationsFailed;
        }
      });
      return {
        claimed,
        devicesByState: byState,
        devicesByOsVersion: byOs,
        attestationsByResult: byResult,
        alerts: alertLog.count(tenantId),
      };
    },
    async createProduct(tenantId, name, description) {
      const record = {
        t: 'product',
        tenantId,
        name,
        description,
        createdAtMs: clock.now(),
        productId: newId('p-', parseProductId),
        groupIds: DEFAULT_DEVICE_GROUPS.map(() => newId('g-', parseDeviceGroupId)),
      } as const;
      const created = await commit<ReturnType<typeof applyProduct>>(record);
      if (!created.ok) throw new OperatorError(created.error.code, created.error.message);
      const counts = await groupCounts(tenantId);
      return {
        product: productView(created.product),
        deviceGroups: created.groups.map((g) => groupView(g, counts)),
      };
    },
    listProducts(tenantId) {
      return products.products(tenantId).map(productView);
    },
    async createDeviceGroup(tenantId, productId, name, osFeed, updatePolicy) {
      const record = {
        t: 'group',
        tenantId,
        productId,
        name,
        osFeed,
        updatePolicy,
        groupId: newId('g-', parseDeviceGroupId),
      } as const;
      const created = await commit<ReturnType<typeof applyGroup>>(record);
      if (!created.ok) throw new OperatorError(created.error.code, created.error.message);
      return groupView(created.group, new Map());
    },
    async listDeviceGroups(tenantId, productId) {
      if (products.product(tenantId, productId) === undefined)
        throw new OperatorError('NOT_FOUND', 'no such product in your tenant');
      const counts = await groupCounts(tenantId);
      return products.groups(tenantId, productId).map((g) => groupView(g, counts));
    },
    async assignDevices(tenantId, deviceGroupId, deviceIds) {
      crossing(tenantId, deviceIds, 'AssignDevices');
      if (products.group(tenantId, deviceGroupId) === undefined) {
        throw new OperatorError('NOT_FOUND', 'no such device group in your tenant');
      }
      let assigned = 0;
      const joined: string[] = [];
      const rejected: { deviceId: string; code: string; message: string }[] = [];
      for (let i = 0; i < deviceIds.length; i += RECORD_BATCH) {
        const ids = deviceIds.slice(i, i + RECORD_BATCH);
        const outcomes = await commit<boolean[]>({
          t: 'assign',
          tenantId,
          groupId: deviceGroupId,
          deviceIds: ids,
        });
        outcomes.forEach((ok, k) => {
          if (ok) {
            assigned++;
            joined.push(ids[k] ?? '');
          } else
            rejected.push({
              deviceId: ids[k] ?? '',
              code: 'NOT_FOUND',
              message: 'no such device in your tenant; claim it first',
            });
        });
      }
      // Devices joining a group mid-rollout are picked up by its deployments' current wave.
      for (const d of deployments.values()) {
        if (d.tenantId === tenantId && d.groupId === deviceGroupId) await joinDeployment(d.id, joined);
      }
      return { assigned, rejected };
    },
    async createDeployment(tenantId, request) {
      const group = products.group(tenantId, request.deviceGroupId);
      if (group === undefined) throw new OperatorError('NOT_FOUND', 'no such device group in your tenant');
      const image = images.list(tenantId).find((i) => i.id === request.imageId);
      if (image === undefined)
        throw new OperatorError('NOT_FOUND', 'no such image in your tenant; upload it first');
      const id = newId('d-', parseDeploymentId);
      const rollout = initialRollout({
        deploymentId: id,
        groupId: group.id,
        image: {
          imageId: image.id,
          kind: image.kind,
          version: image.version,
          securityVersion: image.securityVersion,
        },
        config: request.config,
      });
      const ref = await commit<ActorRef<DeploymentMessage>>({
        t: 'deployment',
        id,
        tenantId,
        rollout: serializeRollout(rollout),
      });
      const members: string[] = [];
      await visitAll((devices) => {
        for (const r of devices.values())
          if (r.tenantId === tenantId && r.deviceGroupId === group.id) members.push(r.deviceId);
      });
      await joinDeployment(id, members);
      await applyToDeployment(id, { type: 'rollout.start' });
      return rolloutView(await readDeployment(ref), false);
    },
    async getDeployment(tenantId, deploymentId, includeDevices) {
      return rolloutView(await readDeployment(deploymentOf(tenantId, deploymentId)), includeDevices);
    },
    async controlDeployment(tenantId, deploymentId, action) {
      const ref = deploymentOf(tenantId, deploymentId);
      const msg: RolloutMessage =
        action === 'pause'
          ? { type: 'rollout.pause' }
          : action === 'resume'
            ? { type: 'rollout.resume' }
            : action === 'cancel'
              ? { type: 'rollout.cancel' }
              : { type: 'rollout.retry-failed' };
      await applyToDeployment(deploymentId, msg);
      return rolloutView(await readDeployment(ref), false);
    },
    watchDeployment(tenantId, deploymentId, onChange) {
      const ref = deploymentOf(tenantId, deploymentId);
      const watchers = deploymentWatchers.get(deploymentId);
      if (watchers === undefined) throw new OperatorError('INTERNAL', 'deployment has no watcher hub');
      // The snapshot (in the actor's turn) and change notifications (once per turn) both carry
      // the state current at that moment, so they may repeat one; each state is delivered once.
      let last: Rollout | null = null;
      const listener: RolloutListener = (r) => {
        if (r === last) return;
        last = r;
        onChange(watchViewOf(r));
      };
      const unsubscribe = watchers.add(listener);
      if (!ref.tell({ type: 'deployment.watch', listener })) {
        unsubscribe();
        throw new OperatorError('INTERNAL', 'deployment is unavailable; retry');
      }
      return unsubscribe;
    },
    async uploadImage(tenantId, upload) {
      if (images.find(tenantId, upload.kind, upload.name, upload.version) !== undefined) {
        throw new OperatorError(
          'ALREADY_EXISTS',
          `${upload.kind} image ${upload.name} ${upload.version} was already uploaded; images are immutable`,
        );
      }
      const repo = repos.get(tenantId);
      if (repo === undefined) throw new OperatorError('INTERNAL', 'tenant has no TUF repository');
      const record = {
        t: 'image',
        tenantId,
        id: newId('i-', parseImageId),
        kind: upload.kind,
        name: upload.name,
        version: upload.version,
        securityVersion: upload.securityVersion,
        atMs: clock.now(),
      } as const;
      // Content first: every shard fetches it when it applies the record.
      await journal.putBlob(`image-${record.id}`, upload.content).catch((e: unknown) => {
        throw new OperatorError('UNAVAILABLE', `the image content was not stored (${String(e)}); retry`);
      });
      const image = await commit<ImageRecord>(record);
      return { image: imageView(image), targetsVersion: repo.versions().targets };
    },
    listImages(tenantId) {
      return images.list(tenantId).map(imageView);
    },
    serviceInfo() {
      return {
        tufBaseUrl: tufServer?.url ?? '',
        rootCaPem: root.certificatePem,
        anchorWallMs,
        anchorSimMs,
        timeScale: opts.timeScale,
        partitions: opts.partitions,
        minSecurityVersion: opts.policy.minSecurityVersion,
        nonceTtlMs: opts.policy.nonceTtlMs,
        certificateLifetimeMs: opts.policy.certificateLifetimeMs,
        maxClockSkewMs: opts.policy.maxClockSkewMs,
        shardId: opts.shardId,
      };
    },
  };

  /** Every stored error report (all tenants), read back from the journal on every shard. */
  const errorStore = new ErrorReportStore();
  const errorReports = createErrorReportService({
    metrics,
    device: (deviceId) =>
      ask(partitionOf(deviceId, opts.partitions), (reply) => ({
        type: 'partition.visit',
        visit: (devices) => {
          const r = devices.get(deviceId);
          if (r === undefined)
            reply({ code: REJECT_CODES.UNKNOWN_DEVICE, message: 'no endorsement for this device' });
          else if (r.tenantId === null)
            reply({ code: REJECT_CODES.DEVICE_NOT_CLAIMED, message: 'device is not claimed by a tenant' });
          else if (r.compromised)
            reply({
              code: REJECT_CODES.DUPLICATE_IDENTITY,
              message:
                'identity is quarantined (seen live twice); its reports are not accepted until re-admitted',
            });
          else {
            const group = r.deviceGroupId === null ? undefined : products.group(r.tenantId, r.deviceGroupId);
            reply({ tenantId: r.tenantId, groupId: r.deviceGroupId, productId: group?.productId ?? null });
          }
        },
      })),
    has: (deviceId, reportId) => errorStore.has(deviceId, reportId),
    commit: (device, report) =>
      commit<'stored' | 'duplicate'>(
        {
          t: 'error-report',
          tenantId: device.tenantId,
          productId: device.productId,
          groupId: device.groupId,
          deviceId: report.deviceId,
          receivedAtMs: clock.now(),
          reportId: report.reportId,
          fromMs: report.fromMs,
          toMs: report.toMs,
          droppedEvents: report.droppedEvents,
          events: report.events.map((e) => ({ ...e })),
        },
        `error-${report.deviceId}-${report.reportId}`,
        'duplicate',
      ),
  });

  const updates = createUpdateService({
    clock,
    metrics,
    alerts,
    shardId: opts.shardId,
    device: (check) =>
      ask(partitionOf(check.deviceId, opts.partitions), (reply) => ({
        type: 'partition.visit',
        visit: (devices) => {
          const r = devices.get(check.deviceId);
          if (r === undefined) {
            reply({ code: REJECT_CODES.UNKNOWN_DEVICE, message: 'no endorsement for this device' });
          } else if (r.tenantId === null) {
            reply({ code: REJECT_CODES.DEVICE_NOT_CLAIMED, message: 'device is not claimed by a tenant' });
          } else if (r.compromised) {
            reply({
              code: REJECT_CODES.DUPLICATE_IDENTITY,
              message: 'identity is quarantined (seen live twice); it gets no updates until re-admitted',
            });
          } else {
            const apps = appVersions(check.installed);
            if (!sameApps(r.apps, apps)) {
              r.apps = apps;
              // For the version-mix gauges only: the check's answer does not wait for it.
              void ctx.persist(partitionOf(r.deviceId, opts.partitions), snapshotOf(r, null));
            }
            reply({ tenantId: r.tenantId, groupId: r.deviceGroupId });
          }
        },
      })),
    deployment: (id) => deployments.get(id),
    deploymentsOf: (tenantId, groupId) =>
      [...deployments.values()].filter((d) => d.tenantId === tenantId && d.groupId === groupId),
    readRollout: readDeployment,
    commitRollout,
    repo: (tenantId) => repos.get(tenantId),
    keepFresh,
    image: (tenantId, imageId) => images.list(tenantId).find((i) => i.id === imageId),
  });

  /** Applies one service-wide record (on every shard, in journal order); returns its result. */
  /** A tenant's call named devices another tenant owns: each owner is alerted (once per device a second). */
  const crossing = (caller: TenantId, deviceIds: readonly DeviceId[], call: string): void => {
    for (const deviceId of deviceIds) {
      const owner = ctx.deviceTenants.get(deviceId);
      if (owner === undefined || owner === caller) continue;
      alerts.refusal({
        tenantId: owner,
        type: 'TENANT_CROSSING',
        deviceId,
        atMs: clock.now(),
        message: `another tenant's ${call} named this device; it was refused`,
        evidence: { call, caller_tenant: caller, shard: opts.shardId },
      });
    }
  };
  /** The shard that counts and POSTs an alert: the one serving the partition its id hashes to. */
  const delivers = (alertId: string): boolean =>
    ownership?.isServed(createHash('sha256').update(alertId).digest().readUInt32BE(0) % opts.partitions) ===
    true;
  const applyAlert = (r: Extract<JournalRecord, { t: 'alert' }>, seq: number): void => {
    const tenantId = r.tenantId === null ? null : parseTenantId(r.tenantId);
    if (r.tenantId !== null && tenantId === null) throw new Error(`journal: alert ${r.id} names no tenant`);
    if (!(SEVERITIES as readonly string[]).includes(r.severity))
      throw new Error(`journal: alert ${r.id} has severity ${r.severity}`);
    const alert: Alert = {
      seq,
      id: r.id,
      tenantId,
      type: r.type,
      severity: r.severity as Severity,
      deviceId: r.deviceId,
      atMs: r.atMs,
      message: r.message,
      evidence: { ...r.evidence },
    };
    if (!alertLog.add(alert) || !delivers(alert.id)) return;
    // Refusals were counted where they were refused; detections once, here.
    if (!r.id.startsWith('a-')) metrics.alerts.inc({ type: r.type, severity: r.severity });
    webhooks.deliver(alert);
  };

  /** Applies one service-wide record (on every shard, in journal order); returns its result. */
  async function applyRecord(r: JournalRecord, local: boolean, seq: number): Promise<unknown> {
    switch (r.t) {
      case 'genesis':
      case 'boot':
        return undefined;
      case 'tenant':
        return applyTenant(r);
      case 'endorse':
        return applyEndorse(r);
      case 'claim':
        return applyClaim(r);
      case 'assign':
        return applyAssign(r);
      case 'product':
        return applyProduct(r);
      case 'group':
        return applyGroup(r);
      case 'image': {
        // A NATS hiccup must not make this replica skip the image: retry until the store answers.
        const content = await retrying(() => journal.getBlob(`image-${r.id}`), { attempts: 31, waitMs: 500 });
        if (content === null) throw new Error(`journal: image ${r.id} has no content blob`);
        return applyImage(r, content);
      }
      case 'tuf-refresh':
        return applyRefresh(r);
      case 'deployment': {
        const id = parseDeploymentId(r.id);
        const tenantId = parseTenantId(r.tenantId);
        const rollout = deserializeRollout(r.rollout);
        if (id === null || tenantId === null || !rollout.ok)
          throw new Error(`journal: bad deployment ${r.id}`);
        return spawnDeployment(id, tenantId, rollout.value);
      }
      case 'rollout': {
        const id = parseDeploymentId(r.id);
        const d = id === null ? undefined : deployments.get(id);
        if (d === undefined) throw new Error(`journal: rollout message for unknown deployment ${r.id}`);
        const msg = JSON.parse(r.msg) as RolloutMessage;
        if (msg.type === 'rollout.device-report' && FINAL_OUTCOMES.has(msg.outcome))
          alerts.observe({
            kind: 'update-result',
            atMs: msg.atMs,
            deviceId: msg.deviceId,
            tenantId: d.tenantId,
            deploymentId: d.id,
            component: d.component,
            version: d.version,
            outcome: msg.outcome as 'succeeded' | 'failed' | 'rolled-back',
          });
        return askActor<DeploymentMessage, RolloutError | null>(
          d.ref,
          `deployment ${r.id}`,
          (reply) => ({ type: 'deployment.committed', msg, atMs: r.atMs, local, reply }),
          Infinity,
        );
      }
      case 'error-report': {
        const result = errorStore.add(storedErrorReport(r));
        if (result === 'stored')
          alerts.observe({
            kind: 'error-report',
            atMs: r.receivedAtMs,
            deviceId: r.deviceId,
            tenantId: r.tenantId,
            productId: r.productId,
            groupId: r.groupId,
            events: r.events,
          });
        return result;
      }
      case 'alert':
        return applyAlert(r, seq);
      case 'webhook': {
        const tenantId = parseTenantId(r.tenantId);
        if (tenantId === null) throw new Error(`journal: webhook for bad tenant ${r.tenantId}`);
        return webhooks.configure(tenantId, r.url, r.secret);
      }
      default:
        return r satisfies never;
    }
  }

  // The follower: every shard reads the whole journal in order, from the first record, and keeps
  // reading. Service-wide records are applied (answering the local `commit` that wrote them);
  // partition appends by other shards update this shard's replica of those partitions.
  let appliedSeq = 0;
  const seqWaiters: { seq: number; resolve: () => void }[] = [];
  const applied = (seq: number): Promise<void> =>
    seq <= appliedSeq ? Promise.resolve() : new Promise((resolve) => seqWaiters.push({ seq, resolve }));
  let replayed = 0;
  // A client flooding the journal's subjects must not flood the log.
  const complainCorrupt = oncePerSecond();
  async function deliver(e: JournalEntry): Promise<void> {
    if (e.kind === 'service') {
      const waiters = committing.get(e.id);
      committing.delete(e.id);
      try {
        const result = await applyRecord(e.record, waiters !== undefined, e.seq);
        for (const w of waiters ?? []) w.resolve(result);
      } catch (err) {
        // Applying is deterministic, so every shard fails on this record alike and their states
        // still agree: skip it (stopping would only fail again on the same record after a restart).
        if (waiters !== undefined) for (const w of waiters) w.reject(err);
        else if (!(err instanceof OperatorError))
          console.error(`shard: journal record ${e.seq} (${e.record.t}) cannot be applied; skipped:`, err);
      }
    } else if (e.kind === 'corrupt') {
      metrics.journalCorrupt.inc({ log: e.partition === null ? 'service' : 'partition' });
      if (e.partition !== null) ownership?.skip(e.partition, e.seq);
      complainCorrupt(
        `shard: journal entry ${e.seq} on ${e.subject} is not a record (${e.problem}); skipped`,
      );
    } else if (ownership?.observe(e.partition, e.seq, e.batch) === true && e.batch.devices.length > 0) {
      const devices = e.batch.devices;
      await ask<void>(e.partition, (reply) => ({ type: 'partition.replicate', devices, reply }), Infinity);
    }
    appliedSeq = e.seq;
    replayed++;
    for (let i = seqWaiters.length - 1; i >= 0; i--) {
      const w = seqWaiters[i];
      if (w !== undefined && w.seq <= appliedSeq) {
        seqWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  let transport: Transport | null = null;
  let gateway: DeviceGateway | null = null;
  let leaseStore: LeaseStore | null = null;
  let follower: Follower | null = null;
  let leaseTimer: NodeJS.Timeout | null = null;
  let grpc: OperatorServer | null = null;
  let metricsServer: MetricsServer | null = null;
  let tufServer: TufHttpServer | null = null;
  const gauges = setInterval(() => void refreshGauges(), 2000);
  gauges.unref();
  const pruning = setInterval(() => alerts.prune(clock.now()), 10_000);
  pruning.unref();
  const seenApps = new Set<string>();
  const seenOs = new Set<string>();
  async function refreshGauges(): Promise<void> {
    const byState: Record<string, number> = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0]));
    const byOs: Record<string, number> = {};
    const byApp = new Map<string, number>();
    const now = clock.now();
    // Over the partitions this shard serves: summed over shards, every device counts once.
    await visitAll((devices) => {
      for (const r of devices.values()) {
        const s = deviceState(r, now);
        byState[s] = (byState[s] ?? 0) + 1;
        if (r.osVersion !== '') byOs[r.osVersion] = (byOs[r.osVersion] ?? 0) + 1;
        for (const [app, version] of Object.entries(r.apps)) {
          const key = `${app}\u0000${version}`;
          byApp.set(key, (byApp.get(key) ?? 0) + 1);
        }
      }
    }, ownership?.served().keys() ?? []).catch(() => undefined);
    // Versions no device runs any more drop to 0 rather than vanish, so graphs show the switch.
    for (const key of seenApps) if (!byApp.has(key)) byApp.set(key, 0);
    for (const os of seenOs) byOs[os] ??= 0;
    for (const [key, n] of byApp) {
      seenApps.add(key);
      const [app = '', version = ''] = key.split('\u0000');
      metrics.devicesByApp.set({ app, version }, n);
    }
    for (const [state, n] of Object.entries(byState)) metrics.devicesByState.set({ state }, n);
    for (const [os, n] of Object.entries(byOs)) {
      seenOs.add(os);
      metrics.devicesByOs.set({ os_version: os }, n);
    }
  }

  const complainLease = oncePerSecond();
  try {
    if (opts.journal !== null) {
      const bucket = `${opts.journal}-leases`;
      leaseStore = await duringStartup('open the lease bucket', () =>
        openKvLeaseStore({
          servers: opts.nats,
          bucket,
          connectionName: `${opts.shardId}-leases`,
          replicas: opts.replicas,
          onBadValue: (bad) => {
            metrics.leaseBadValues.inc({ kind: bad.kind });
            complainLease(
              `shard: lease bucket value ${bad.key} (revision ${bad.revision}) is not a ${bad.kind} record (${bad.problem}); skipped`,
            );
          },
          onWatchRestart: (cause) =>
            console.error(
              `shard: the lease watch ended (${cause instanceof Error ? cause.message : String(cause)}); opening it again`,
            ),
        }),
      );
    }
    let own: PartitionOwnership | null = null;
    const leases =
      leaseStore === null
        ? null
        : new LeaseManager({
            store: leaseStore,
            shard: incarnation,
            config: { ...opts.lease, partitions: opts.partitions },
            now: () => Date.now(),
            unsafeIgnoreDeadlines: !opts.fencing,
            observe: (e) => {
              if (e.kind === 'released') own?.lost(e.partition, 'released');
              else if (e.kind === 'lost') own?.lost(e.partition, e.reason);
            },
          });
    own = new PartitionOwnership({
      journal,
      incarnation,
      shardId: opts.shardId,
      partitions: opts.partitions,
      leases,
      fencing: opts.fencing,
      metrics,
      wallNow: () => performance.now(),
      applied,
      onServe: (p) => {
        gateway?.open(p);
        homeChanged(p);
      },
      onStop: (p) => {
        gateway?.close(p);
        homeChanged(p);
      },
    });
    ownership = own;
    const started = performance.now();
    follower = journal.follow(deliver, {
      onRestart: ({ next, behind }) => {
        metrics.journalFollowerRestarts.inc();
        console.error(`shard: journal follower silent ${behind} entries behind; re-created from seq ${next}`);
      },
    });
    follower.ended.catch(fatal);
    await follower.caughtUp;
    alerts.caughtUp();
    if (replayed > 2) {
      console.error(
        `shard: replayed ${replayed} journal records in ${Math.round(performance.now() - started)} ms (${[...tenants.values()].length} tenants, ${deployments.size} deployments)`,
      );
    }
    transport = await connectNatsTransport({ servers: opts.nats, name: opts.shardId, meter });
    gateway = serveDevices(transport, ctx, (p) => actors[p], updates, errorReports);
    if (leases === null) await own.takeAll();
    else {
      // The first tick takes free partitions at once; those of a shard that died wait for its
      // leases to run out. Ticks never overlap.
      await own.tick();
      await own.settled();
      let ticking = false;
      leaseTimer = setInterval(() => {
        if (ticking) return;
        ticking = true;
        void own.tick().finally(() => (ticking = false));
      }, opts.lease.tickMs);
    }
    await transport.flush();
    grpc = await startOperatorServer({ host: opts.grpcHost, port: opts.grpcPort, backend, metrics });
    tufServer = await serveTufRepositories({
      host: opts.grpcHost,
      port: opts.tufPort,
      repos: (tenantPath) => {
        const id = parseTenantId(tenantPath);
        return id === null ? undefined : repos.get(id);
      },
    });
    if (opts.metricsPort !== null)
      metricsServer = await meter.serveMetrics({ host: '127.0.0.1', port: opts.metricsPort });
  } catch (e) {
    clearInterval(gauges);
    clearInterval(pruning);
    webhooks.close();
    if (leaseTimer !== null) clearInterval(leaseTimer);
    follower?.stop();
    await Promise.allSettled([
      ownership?.close(),
      leaseStore?.close(),
      transport?.close(),
      grpc?.close(),
      tufServer?.close(),
      pool.close(),
      system.shutdown(),
    ]);
    await journal.close();
    throw e;
  }

  const grpcAddress = grpc.address;
  let closing: Promise<void> | null = null;
  return {
    shardId: opts.shardId,
    grpcAddress,
    metricsUrl: metricsServer?.url ?? null,
    tufUrl: tufServer.url,
    meter,
    rootCaPem: root.certificatePem,
    pool,
    close() {
      closing ??= (async () => {
        clearInterval(gauges);
        clearInterval(pruning);
        webhooks.close();
        if (leaseTimer !== null) clearInterval(leaseTimer);
        // Leases are given back first, so other shards take the partitions at once.
        await ownership?.close();
        gateway?.closeAll();
        await Promise.allSettled([grpc?.close(), transport?.close(), tufServer?.close()]);
        follower?.stop();
        await leaseStore?.close();
        await pool.close();
        await system.shutdown();
        await metricsServer?.close();
        await journal.close();
      })();
      return closing;
    },
  };
}

type Genesis = Extract<JournalRecord, { t: 'genesis' }>;

/**
 * The service's first record: read it, or write it if the journal is empty. Two shards starting
 * on an empty journal race; `begin` lets exactly one win and the other reads the winner's.
 */
async function openGenesis(journal: Journal, opts: ShardOptions, rng: Rng): Promise<Genesis> {
  let first = await journal.first();
  if (first === null) {
    const anchorWallMs = Date.now();
    const created: Genesis = {
      t: 'genesis',
      rootCa: storeCa(
        createRootCa({
          commonName: 'Sphere Security Service Root CA',
          notBeforeMs: anchorWallMs - 86_400_000,
          validityMs: 10 * 365 * 86_400_000,
        }),
      ),
      anchorWallMs,
      anchorSimMs: anchorWallMs,
      timeScale: opts.timeScale,
      nonceSecret: b64(rng.fork('nonce-secret').bytes(32)),
    };
    first = (await journal.begin(created)) ? created : await journal.first();
  }
  if (first?.t !== 'genesis')
    throw new Error(`journal "${opts.journal}" does not start with a genesis record`);
  if (first.timeScale !== opts.timeScale) {
    throw new Error(
      `journal "${opts.journal}" was written at --time-scale ${first.timeScale}, not ${opts.timeScale}; restart with that scale or use a fresh --journal`,
    );
  }
  return first;
}

function sameApps(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function deviceView(r: DeviceRecord, nowMs: number): Device {
  const certs = r.certificates;
  return {
    deviceId: r.deviceId,
    state: deviceState(r, nowMs),
    osVersion: r.osVersion,
    securityVersion: r.securityVersion,
    lastAttestation:
      r.lastAttestation === null
        ? undefined
        : {
            atMs: r.lastAttestation.atMs,
            ok: r.lastAttestation.ok,
            code: r.lastAttestation.code,
            message: r.lastAttestation.message,
          },
    updateCertificatePem: certs === null ? '' : toPem(certs.update, 'CERTIFICATE'),
    clientCertificatePem: certs === null ? '' : toPem(certs.client, 'CERTIFICATE'),
    certificatesNotAfterMs: Math.floor(certs?.notAfterMs ?? 0),
    lastSeenMs: Math.floor(r.lastSeenMs),
    bootCount: r.bootCount,
    attestationsOk: r.attestationsOk,
    attestationsFailed: r.attestationsFailed,
    deviceGroupId: r.deviceGroupId ?? '',
  };
}

function rolloutView(r: Rollout, includeDevices: boolean): RolloutView {
  const waves = new Map<number, Record<string, number>>();
  for (const d of rolloutGauges(r).devices) {
    const w = waves.get(d.wave) ?? {};
    w[d.state] = d.count;
    waves.set(d.wave, w);
  }
  return {
    deploymentId: r.deploymentId,
    deviceGroupId: r.groupId,
    imageId: r.image.imageId,
    state: r.state,
    currentWave: r.currentWave,
    waves: [...waves].map(([wave, devicesByState]) => ({ wave, devicesByState })),
    failures: r.failures,
    attempted: r.attempted,
    haltReason: r.halt?.reason ?? '',
    devices: includeDevices
      ? r.devices.map((d) => ({ deviceId: d.deviceId, wave: d.wave, state: d.state }))
      : [],
  };
}

function imageView(i: ImageRecord): ImageView {
  return {
    imageId: i.id,
    kind: i.kind,
    name: i.name,
    version: i.version,
    securityVersion: i.securityVersion,
    length: i.length,
    sha256: i.sha256,
    targetName: i.targetName,
    uploadedAtMs: Math.floor(i.uploadedAtMs),
  };
}

function productView(p: Product): ProductView {
  return {
    productId: p.id,
    name: p.name,
    description: p.description,
    createdAtMs: Math.floor(p.createdAtMs),
  };
}

function groupView(g: DeviceGroup, counts: ReadonlyMap<string, number>): DeviceGroupView {
  return {
    deviceGroupId: g.id,
    productId: g.productId,
    name: g.name,
    osFeed: g.osFeed,
    updatePolicy: g.updatePolicy,
    devices: counts.get(g.id) ?? 0,
  };
}

/** Records per journal entry for device batches (a record must stay well under 1 MiB). */
const RECORD_BATCH = 5000;
/** Devices per bulk join message (journaled as one rollout record: ~130 bytes per device). */
const JOIN_BATCH = 2000;

function storeCa(ca: CaIdentity): StoredCa {
  return {
    certificateDer: b64(ca.certificateDer),
    certificatePem: ca.certificatePem,
    subjectDer: b64(ca.subjectDer),
    keyId: ca.keyId,
    privateKeyPkcs8: b64(ca.privateKeyPkcs8),
    publicKey: b64(ca.publicKey),
  };
}

function restoreCa(s: StoredCa): CaIdentity {
  const privateKeyPkcs8 = unb64(s.privateKeyPkcs8);
  return {
    certificateDer: unb64(s.certificateDer),
    certificatePem: s.certificatePem,
    subjectDer: unb64(s.subjectDer),
    keyId: s.keyId,
    privateKey: createPrivateKey({ key: Buffer.from(privateKeyPkcs8), format: 'der', type: 'pkcs8' }),
    privateKeyPkcs8,
    publicKey: unb64(s.publicKey),
  };
}

/** A stored error report as the index keeps it (the journal record was validated when uploaded). */
function storedErrorReport(r: Extract<JournalRecord, { t: 'error-report' }>): StoredErrorReport {
  const tenantId = parseTenantId(r.tenantId);
  const deviceId = parseDeviceId(r.deviceId);
  if (tenantId === null || deviceId === null) throw new Error('journal: bad error-report record');
  return {
    tenantId,
    productId: r.productId as StoredErrorReport['productId'],
    groupId: r.groupId as StoredErrorReport['groupId'],
    deviceId,
    reportId: r.reportId,
    receivedAtMs: r.receivedAtMs,
    report: {
      reportId: r.reportId,
      deviceId,
      fromMs: r.fromMs,
      toMs: r.toMs,
      droppedEvents: r.droppedEvents,
      events: r.events.map((e) => ({ ...e, kind: e.kind as ErrorEventKind })),
    },
  };
}

/** Device report outcomes that end a device's part in a deployment (what detection reads). */
const FINAL_OUTCOMES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'rolled-back']);

/** A logger of at most one line a second (the rest are dropped; what they report is counted in metrics). */
function oncePerSecond(): (line: string) => void {
  let quietUntil = 0;
  return (line) => {
    const now = performance.now();
    if (now < quietUntil) return;
    quietUntil = now + 1000;
    console.error(line);
  };
}
