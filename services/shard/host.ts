import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
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
  Subscription,
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
import { DEFAULT_POLICY, NonceBook, defaultReferenceValues } from '../attestation/index.js';
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
import type { DeviceGroup, DeviceRecord, DeviceRegistry, ImageRecord, Product } from '../registry/index.js';
import { createTufRepository, serveTufRepositories } from '../updates/tuf/index.js';
import {
  deserializeRollout,
  initialRollout,
  rolloutGauges,
  serializeRollout,
  transition,
} from '../rollouts/index.js';
import { b64, memoryJournal, openJetStreamJournal, unb64 } from '../journal/index.js';
import type { JournalRecord, StoredCa } from '../journal/index.js';
import type { Rollout, RolloutMessage } from '../rollouts/index.js';
import { RolloutWatchers, deploymentDefinition } from './deployment-actor.js';
import { appVersions, createUpdateService } from './updates.js';
import type { DeploymentEntry } from './updates.js';
import type { DeploymentMessage, RolloutListener } from './deployment-actor.js';
import type { TufHttpServer, TufRepository } from '../updates/tuf/index.js';
import type { ShardContext } from './context.js';
import { AdmissionControl } from './admission.js';
import { serveDevices } from './device-gateway.js';
import { partitionDefinition } from './partition-actor.js';
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

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/**
 * Starts a security-service shard: crypto pool, one actor per partition, the NATS device
 * gateway, the operator gRPC API and /metrics. Owns every partition (sharding arrives with
 * issue 4). State is in memory.
 */
export async function startShard(opts: ShardOptions): Promise<Shard> {
  const journal =
    opts.journal === null
      ? memoryJournal()
      : await openJetStreamJournal({
          servers: opts.nats,
          name: opts.journal,
          connectionName: `${opts.shardId}-journal`,
        });
  const history: JournalRecord[] = [];
  try {
    await journal.replay((r) => void history.push(r));
  } catch (e) {
    await journal.close();
    throw e;
  }
  // The service's identity and simulated time come from the journal's first record, so a
  // restarted shard keeps its root CA and its clock runs on from where it was.
  const first = history[0];
  const genesis = first?.t === 'genesis' ? first : null;
  if (genesis !== null && genesis.timeScale !== opts.timeScale) {
    await journal.close();
    throw new Error(
      `journal "${opts.journal}" was written at --time-scale ${genesis.timeScale}, not ${opts.timeScale}; restart with that scale or use a fresh --journal`,
    );
  }
  const anchorWallMs = genesis?.anchorWallMs ?? Date.now();
  const anchorSimMs = genesis?.anchorSimMs ?? anchorWallMs;
  const clock = createScaledClock({
    timeScale: opts.timeScale,
    epochMs: anchorSimMs + (Date.now() - anchorWallMs) * opts.timeScale,
  });
  const rng = createRng(opts.seed);
  // Each start of a shard on a journal draws from its own fork (the journal grows by a `boot`
  // record every start): identifiers and nonces must never repeat what an earlier process issued.
  const bootRng = rng.fork(`boot/${history.length}`);
  const meter = createPromMeter({ defaultMetrics: true });
  const metrics = createServiceMetrics(meter);
  const pool = createCryptoPool({ workers: opts.workers, batchSize: opts.batchSize, meter });
  const tenants = new TenantRegistry();
  const alerts = new AlertLog();
  const root =
    genesis !== null
      ? restoreCa(genesis.rootCa)
      : createRootCa({
          commonName: 'Sphere Security Service Root CA',
          notBeforeMs: anchorSimMs - 86_400_000,
          validityMs: 10 * 365 * 86_400_000,
        });
  if (genesis === null) {
    await journal.append({
      t: 'genesis',
      rootCa: storeCa(root),
      anchorWallMs,
      anchorSimMs,
      timeScale: opts.timeScale,
    });
  }
  await journal.append({ t: 'boot', shardId: opts.shardId, atWallMs: Date.now() });
  const ctx: ShardContext = {
    shardId: opts.shardId,
    clock,
    rng: bootRng.fork('decisions'),
    policy: opts.policy,
    references: defaultReferenceValues(),
    tenants,
    alerts,
    nonces: new NonceBook(rng.fork('nonce-secret').bytes(32), opts.policy.nonceTtlMs),
    crypto: pool,
    admission: new AdmissionControl({ maxInFlight: opts.maxInFlight }),
    timeScale: opts.timeScale,
    metrics,
    partitions: opts.partitions,
    wallNow: () => performance.now(),
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
  metrics.partitionsOwned.set({ shard: opts.shardId }, actors.length);

  /** Runs `make(reply)` in the partition's turn and resolves with what it replies. */
  const ask = <T>(partition: number, make: (reply: (v: T) => void) => PartitionMessage): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const ref = actors[partition];
      if (ref === undefined || !ref.tell(make(resolve))) {
        reject(new OperatorError('INTERNAL', `partition ${partition} is unavailable or full; retry`));
      }
    });
  const visitAll = (visit: (devices: DeviceRegistry) => void): Promise<void[]> =>
    Promise.all(
      actors.map((_, p) =>
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

  // State changes. Each is a journal record applied by one function, live and on replay, so a
  // restarted shard that replays the journal ends in the same state. Live, a change is applied,
  // then stored, then answered (TUF changes are stored first: see keepFresh).
  const fatal = (e: unknown): never => {
    // Memory and journal would disagree from here on; stop so a restart replays a consistent state.
    console.error('shard: the journal refused a record; stopping (a restart replays the journal):', e);
    process.exit(75);
  };
  const store = (record: JournalRecord): Promise<void> => journal.append(record).catch(fatal);

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
        ask<[number, number]>(p, (reply) => ({
          type: 'partition.endorse',
          devices: group,
          reply: (n, a) => reply([n, a]),
        })).then(([n, a]) => {
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
        ask<T[]>(p, (reply) => make(group, reply)).then((results) =>
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
    const record = { t: 'tuf-refresh', tenantId, atMs: now } as const;
    const done = store(record)
      .then(() => applyRefresh(record))
      .finally(() => refreshing.delete(tenantId));
    refreshing.set(tenantId, done);
    return done;
  };

  /** Deployments by ID; each is an actor owning its rollout state. */
  const deployments = new Map<DeploymentId, DeploymentEntry>();
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
        persist: (msg, atMs) => store({ t: 'rollout', id, msg: JSON.stringify(msg), atMs }),
      }),
    );
    deployments.set(id, { id, tenantId, groupId: rollout.groupId, ref });
    return ref;
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
  const applyToDeployment = (ref: ActorRef<DeploymentMessage>, msg: RolloutMessage): Promise<void> =>
    new Promise((resolve, reject) => {
      const accepted = ref.tell({
        type: 'deployment.apply',
        msg,
        // Answered once stored, like device reports.
        reply: (e, stored) => {
          if (e === null) stored.then(resolve, reject);
          else reject(new OperatorError('CONFLICT', e.message));
        },
      });
      if (!accepted) reject(new OperatorError('INTERNAL', 'deployment is unavailable; retry'));
    });

  /**
   * Adds devices to a deployment's population in a few bulk messages (one per device would
   * overflow the actor's mailbox for a large group and is quadratic in the engine).
   */
  const joinDeployment = async (
    ref: ActorRef<DeploymentMessage>,
    deviceIds: readonly string[],
  ): Promise<void> => {
    for (let i = 0; i < deviceIds.length; i += JOIN_BATCH)
      await applyToDeployment(ref, {
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
      const ca = applyTenant(record);
      await store(record);
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
        const [n, a] = await applyEndorse(record);
        await store(record);
        registered += n;
        alreadyKnown += a;
      }
      return { registered, alreadyKnown };
    },
    async claimDevices(tenantId, deviceIds) {
      let claimed = 0;
      let alreadyYours = 0;
      const rejected: { deviceId: string; code: string; message: string }[] = [];
      for (let i = 0; i < deviceIds.length; i += RECORD_BATCH) {
        const ids = deviceIds.slice(i, i + RECORD_BATCH);
        const record = { t: 'claim', tenantId, deviceIds: ids } as const;
        const outcomes = await applyClaim(record);
        await store(record);
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
      return ask<Device | null>(partitionOf(deviceId, opts.partitions), (reply) => ({
        type: 'partition.visit',
        visit: (devices) => {
          const r = devices.get(deviceId);
          reply(r === undefined || r.tenantId !== tenantId ? null : deviceView(r, clock.now()));
        },
      }));
    },
    listAlerts(tenantId, q) {
      const page = alerts.list({ tenantId, ...q });
      return {
        alerts: page.alerts.map((a) => ({
          id: a.id,
          type: a.type,
          severity: a.severity,
          deviceId: a.deviceId,
          atMs: a.atMs,
          message: a.message,
          evidence: { ...a.evidence },
        })),
        nextSeq: page.nextSeq,
      };
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
        alerts: alerts.count(tenantId),
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
      const created = applyProduct(record);
      if (!created.ok) throw new OperatorError(created.error.code, created.error.message);
      await store(record);
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
      const created = applyGroup(record);
      if (!created.ok) throw new OperatorError(created.error.code, created.error.message);
      await store(record);
      return groupView(created.group, new Map());
    },
    async listDeviceGroups(tenantId, productId) {
      if (products.product(tenantId, productId) === undefined)
        throw new OperatorError('NOT_FOUND', 'no such product in your tenant');
      const counts = await groupCounts(tenantId);
      return products.groups(tenantId, productId).map((g) => groupView(g, counts));
    },
    async assignDevices(tenantId, deviceGroupId, deviceIds) {
      if (products.group(tenantId, deviceGroupId) === undefined) {
        throw new OperatorError('NOT_FOUND', 'no such device group in your tenant');
      }
      let assigned = 0;
      const joined: string[] = [];
      const rejected: { deviceId: string; code: string; message: string }[] = [];
      for (let i = 0; i < deviceIds.length; i += RECORD_BATCH) {
        const ids = deviceIds.slice(i, i + RECORD_BATCH);
        const record = { t: 'assign', tenantId, groupId: deviceGroupId, deviceIds: ids } as const;
        const outcomes = await applyAssign(record);
        await store(record);
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
        if (d.tenantId === tenantId && d.groupId === deviceGroupId) await joinDeployment(d.ref, joined);
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
      // Stored before the actor journals its first message, so a replay finds it first.
      await store({ t: 'deployment', id, tenantId, rollout: serializeRollout(rollout) });
      const ref = spawnDeployment(id, tenantId, rollout);
      const members: string[] = [];
      await visitAll((devices) => {
        for (const r of devices.values())
          if (r.tenantId === tenantId && r.deviceGroupId === group.id) members.push(r.deviceId);
      });
      await joinDeployment(ref, members);
      await applyToDeployment(ref, { type: 'rollout.start' });
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
      await applyToDeployment(ref, msg);
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
      // Stored before it is published: devices must never see metadata the journal lacks.
      await journal.putBlob(`image-${record.id}`, upload.content).catch(fatal);
      await store(record);
      const image = applyImage(record, upload.content);
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
            r.apps = appVersions(check.installed);
            reply({ tenantId: r.tenantId, groupId: r.deviceGroupId });
          }
        },
      })),
    deployment: (id) => deployments.get(id),
    deploymentsOf: (tenantId, groupId) =>
      [...deployments.values()].filter((d) => d.tenantId === tenantId && d.groupId === groupId),
    readRollout: readDeployment,
    repo: (tenantId) => repos.get(tenantId),
    keepFresh,
    image: (tenantId, imageId) => images.list(tenantId).find((i) => i.id === imageId),
  });

  /** Rebuilds the state from the journal (everything after genesis), then resumes deployments. */
  async function replay(records: readonly JournalRecord[]): Promise<void> {
    const rollouts = new Map<DeploymentId, { tenantId: TenantId; rollout: Rollout }>();
    for (const r of records) {
      switch (r.t) {
        case 'genesis':
        case 'boot':
          break;
        case 'tenant':
          applyTenant(r);
          break;
        case 'endorse':
          await applyEndorse(r);
          break;
        case 'claim':
          await applyClaim(r);
          break;
        case 'assign':
          await applyAssign(r);
          break;
        case 'product':
          applyProduct(r);
          break;
        case 'group':
          applyGroup(r);
          break;
        case 'image': {
          const content = await journal.getBlob(`image-${r.id}`);
          if (content === null) throw new Error(`journal: image ${r.id} has no content blob`);
          applyImage(r, content);
          break;
        }
        case 'tuf-refresh':
          applyRefresh(r);
          break;
        case 'deployment': {
          const id = parseDeploymentId(r.id);
          const tenantId = parseTenantId(r.tenantId);
          const rollout = deserializeRollout(r.rollout);
          if (id === null || tenantId === null || !rollout.ok)
            throw new Error(`journal: bad deployment ${r.id}`);
          rollouts.set(id, { tenantId, rollout: rollout.value });
          break;
        }
        case 'rollout': {
          const id = parseDeploymentId(r.id);
          const d = id === null ? undefined : rollouts.get(id);
          if (d === undefined) throw new Error(`journal: rollout message for unknown deployment ${r.id}`);
          const stepped = transition(d.rollout, JSON.parse(r.msg) as RolloutMessage, { nowMs: r.atMs });
          if (stepped.ok) d.rollout = stepped.value[0];
          break;
        }
        default:
          r satisfies never;
      }
    }
    for (const [id, d] of rollouts) {
      // A tick re-arms the wait between waves (and opens a wave whose wait ended meanwhile).
      spawnDeployment(id, d.tenantId, d.rollout).tell({ type: 'deployment.tick' });
    }
    if (records.length > 0) {
      console.error(
        `shard: replayed ${records.length} journal records (${[...tenants.values()].length} tenants, ${rollouts.size} deployments)`,
      );
    }
  }

  let transport: Transport | null = null;
  let subs: Subscription[] = [];
  let grpc: OperatorServer | null = null;
  let metricsServer: MetricsServer | null = null;
  let tufServer: TufHttpServer | null = null;
  const gauges = setInterval(() => void refreshGauges(), 2000);
  gauges.unref();
  const seenApps = new Set<string>();
  const seenOs = new Set<string>();
  async function refreshGauges(): Promise<void> {
    const byState: Record<string, number> = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0]));
    const byOs: Record<string, number> = {};
    const byApp = new Map<string, number>();
    const now = clock.now();
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
    }).catch(() => undefined);
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

  try {
    await replay(history.slice(genesis === null ? 0 : 1));
    transport = await connectNatsTransport({ servers: opts.nats, name: opts.shardId, meter });
    subs = serveDevices(transport, ctx, (p) => actors[p], updates);
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
    await Promise.allSettled([
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
        for (const s of subs) s.unsubscribe();
        await Promise.allSettled([grpc?.close(), transport?.close(), tufServer?.close()]);
        await pool.close();
        await system.shutdown();
        await metricsServer?.close();
        await journal.close();
      })();
      return closing;
    },
  };
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
