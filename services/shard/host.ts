import { createHash, randomBytes } from 'node:crypto';
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
  deviceState,
  imageTargetName,
} from '../registry/index.js';
import type { DeviceGroup, DeviceRecord, DeviceRegistry, ImageRecord, Product } from '../registry/index.js';
import { createTufRepository, serveTufRepositories } from '../updates/tuf/index.js';
import { initialRollout, rolloutGauges } from '../rollouts/index.js';
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
  const anchorWallMs = Date.now();
  const anchorSimMs = anchorWallMs;
  const clock = createScaledClock({ timeScale: opts.timeScale, epochMs: anchorSimMs });
  const rng = createRng(opts.seed);
  const meter = createPromMeter({ defaultMetrics: true });
  const metrics = createServiceMetrics(meter);
  const pool = createCryptoPool({ workers: opts.workers, batchSize: opts.batchSize, meter });
  const tenants = new TenantRegistry();
  const alerts = new AlertLog();
  const now0 = clock.now();
  const root = createRootCa({
    commonName: 'Sphere Security Service Root CA',
    notBeforeMs: now0 - 86_400_000,
    validityMs: 10 * 365 * 86_400_000,
  });
  const ctx: ShardContext = {
    shardId: opts.shardId,
    clock,
    rng: rng.fork('decisions'),
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
    rng: rng.fork('actors'),
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

  /** Deployments by ID; each is an actor owning its rollout state. */
  const deployments = new Map<DeploymentId, DeploymentEntry>();
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
        reply: (e) => (e === null ? resolve() : reject(new OperatorError('CONFLICT', e.message))),
      });
      if (!accepted) reject(new OperatorError('INTERNAL', 'deployment is unavailable; retry'));
    });

  const adminToken = opts.adminToken;
  const backend: OperatorBackend = {
    authenticate(token): Caller | null {
      if (token === adminToken) return { kind: 'admin' };
      const tenant = tenants.byToken(token);
      return tenant === undefined ? null : { kind: 'tenant', tenantId: tenant.id };
    },
    createTenant(name) {
      const id = newId('t-', parseTenantId);
      const ca = createTenantCa(root, { tenantId: id, name, notBeforeMs: clock.now() - 86_400_000 });
      const apiToken = randomBytes(32).toString('base64url');
      tenants.add({ id, name, ca, createdAtMs: clock.now() }, apiToken);
      repos.set(id, createTufRepository({ nowMs: clock.now(), randomBytes: (n) => ctx.rng.bytes(n) }));
      pool.registerCaKey(ca.keyId, ca.privateKeyPkcs8);
      return Promise.resolve({
        tenantId: id,
        apiToken,
        tenantCaPem: ca.certificatePem,
        rootCaPem: root.certificatePem,
      });
    },
    async registerEndorsements(keys) {
      const devices = keys.map((publicKey, i) => {
        let key;
        try {
          key = publicKeyFromRaw(publicKey);
        } catch (cause) {
          throw new OperatorError(
            'MALFORMED_INPUT',
            `attestation_public_keys[${i}] is not a point on P-256`,
            { cause },
          );
        }
        const deviceId = parseDeviceId(deviceIdFromPublicKey(publicKey));
        if (deviceId === null) throw new OperatorError('INTERNAL', 'derived device ID is invalid');
        return { deviceId, publicKey: Uint8Array.from(publicKey), key };
      });
      let registered = 0;
      let alreadyKnown = 0;
      await Promise.all(
        [...byPartition(devices, (d) => d.deviceId)].map(([p, group]) =>
          ask<[number, number]>(p, (reply) => ({
            type: 'partition.endorse',
            devices: group,
            reply: (r, a) => reply([r, a]),
          })).then(([r, a]) => {
            registered += r;
            alreadyKnown += a;
          }),
        ),
      );
      return { registered, alreadyKnown };
    },
    async claimDevices(tenantId, deviceIds) {
      let claimed = 0;
      let alreadyYours = 0;
      const rejected: { deviceId: string; code: string; message: string }[] = [];
      await Promise.all(
        [...byPartition(deviceIds, (d) => d)].map(([p, ids]) =>
          ask<ClaimOutcome[]>(p, (reply) => ({
            type: 'partition.claim',
            tenantId,
            deviceIds: ids,
            reply,
          })).then((outcomes) =>
            outcomes.forEach((o, i) => {
              const deviceId = ids[i] ?? '';
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
            }),
          ),
        ),
      );
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
      const created = products.createProduct(
        { tenantId, name, description, createdAtMs: clock.now() },
        () => newId('p-', parseProductId),
        () => newId('g-', parseDeviceGroupId),
      );
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
    createDeviceGroup(tenantId, productId, name, osFeed, updatePolicy) {
      const created = products.createGroup({ tenantId, productId, name, osFeed, updatePolicy }, () =>
        newId('g-', parseDeviceGroupId),
      );
      if (!created.ok) throw new OperatorError(created.error.code, created.error.message);
      return Promise.resolve(groupView(created.group, new Map()));
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
      await Promise.all(
        [...byPartition(deviceIds, (d) => d)].map(([p, ids]) =>
          ask<boolean[]>(p, (reply) => ({
            type: 'partition.assign',
            tenantId,
            deviceGroupId,
            deviceIds: ids,
            reply,
          })).then((outcomes) =>
            outcomes.forEach((ok, i) => {
              if (ok) {
                assigned++;
                joined.push(ids[i] ?? '');
              } else
                rejected.push({
                  deviceId: ids[i] ?? '',
                  code: 'NOT_FOUND',
                  message: 'no such device in your tenant; claim it first',
                });
            }),
          ),
        ),
      );
      // Devices joining a group mid-rollout are picked up by its deployments' current wave.
      for (const d of deployments.values()) {
        if (d.tenantId !== tenantId || d.groupId !== deviceGroupId) continue;
        for (const deviceId of joined)
          d.ref.tell({ type: 'deployment.apply', msg: { type: 'rollout.device-joined', deviceId } });
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
      const watchers = new RolloutWatchers((n) => metrics.rolloutWatchers.set({ deployment: id }, n));
      deploymentWatchers.set(id, watchers);
      const ref = system.spawn(deploymentDefinition(rollout, { clock, metrics, watchers }));
      deployments.set(id, { id, tenantId, groupId: group.id, ref });
      const members: string[] = [];
      await visitAll((devices) => {
        for (const r of devices.values())
          if (r.tenantId === tenantId && r.deviceGroupId === group.id) members.push(r.deviceId);
      });
      for (const deviceId of members)
        ref.tell({ type: 'deployment.apply', msg: { type: 'rollout.device-joined', deviceId } });
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
    uploadImage(tenantId, upload) {
      if (images.find(tenantId, upload.kind, upload.name, upload.version) !== undefined) {
        throw new OperatorError(
          'ALREADY_EXISTS',
          `${upload.kind} image ${upload.name} ${upload.version} was already uploaded; images are immutable`,
        );
      }
      const repo = repos.get(tenantId);
      if (repo === undefined) throw new OperatorError('INTERNAL', 'tenant has no TUF repository');
      const targetName = imageTargetName(upload.kind, upload.name, upload.version);
      const now = clock.now();
      repo.addTarget(targetName, upload.content, {
        securityVersion: upload.securityVersion,
        kind: upload.kind,
        version: upload.version,
      });
      repo.publish(now);
      const record: ImageRecord = {
        id: newId('i-', parseImageId),
        tenantId,
        kind: upload.kind,
        name: upload.name,
        version: upload.version,
        securityVersion: upload.securityVersion,
        length: upload.content.length,
        sha256: createHash('sha256').update(upload.content).digest('hex'),
        targetName,
        uploadedAtMs: now,
      };
      images.add(record);
      return { image: imageView(record), targetsVersion: repo.versions().targets };
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
    image: (tenantId, imageId) => images.list(tenantId).find((i) => i.id === imageId),
  });

  let transport: Transport | null = null;
  let subs: Subscription[] = [];
  let grpc: OperatorServer | null = null;
  let metricsServer: MetricsServer | null = null;
  let tufServer: TufHttpServer | null = null;
  const gauges = setInterval(() => void refreshGauges(), 2000);
  gauges.unref();
  const seenApps = new Set<string>();
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
    for (const [key, n] of byApp) {
      seenApps.add(key);
      const [app = '', version = ''] = key.split('\u0000');
      metrics.devicesByApp.set({ app, version }, n);
    }
    for (const [state, n] of Object.entries(byState)) metrics.devicesByState.set({ state }, n);
    for (const [os, n] of Object.entries(byOs)) metrics.devicesByOs.set({ os_version: os }, n);
  }

  try {
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
