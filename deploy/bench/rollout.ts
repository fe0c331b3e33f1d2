/**
 * bench:rollout — a rollout of one image to N devices against a real local stack (nats-server + a
 * shard process), next to raw NATS request/reply throughput for the same bytes measured in the
 * same run: image bytes delivered per second, end to end (update check, chunked download over
 * NATS request/reply with protobuf, the shard's update service and deployment actor, TUF
 * verification in the device's security core, acknowledged reports), against what NATS alone
 * moves with the same chunk size, concurrency and connections. Prints figures and, last, one
 * machine-readable line:
 *
 *   BENCH rollout devices=<n> image_bytes=<n> rate_mib_s=<x> raw_mib_s=<y> ratio=<x/y> p99_download_ms=<z> ...
 *
 * Devices are a security core (provisioned with the tenant's TUF root, fetched over HTTP from the
 * shard like the factory would) and an update agent each, on a small pool of shared NATS
 * connections; no device attestation: each agent is kicked with `agent.device-attested`. Install,
 * restart and health check take no simulated time, so the figure is the transfer. At most
 * `--concurrency` devices download at once: the next device is kicked when one has its
 * `succeeded` report acknowledged (real fleets check at different times; 10,000 devices x 1 MiB
 * at once would be 10 GiB in flight).
 *
 * Usage: node [--expose-gc] dist/deploy/bench/rollout.js [--devices 10000] [--image-bytes 1048576]
 *        [--concurrency 200] [--pool 4] [--time-scale 1] [--raw-bytes <n>] [--no-raw]
 *        [--setup deployment-first|group-first] [--join-batch 500] [--no-journal] [--shard-cpu-prof <dir>]
 *        [--timeout-s 900]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import type { NatsConnection } from 'nats';
import { ActorSystem, connectNatsTransport, createRng } from '../../actors/runtime/index.js';
import type { ActorRef, Transport } from '../../actors/runtime/index.js';
import {
  appImage,
  attestOnce,
  manufactureIdentity,
  osImages,
  securityCoreDefinition,
} from '../../actors/security-core/index.js';
import { SessionSlot } from '../../actors/device/index.js';
import type { ManufacturedIdentity } from '../../actors/security-core/index.js';
import { DEFAULT_UPDATE_SHELL_BEHAVIOUR, updateAgentDefinition } from '../../actors/update-agent/index.js';
import type {
  UpdateAgentEvent,
  UpdateAgentShellMessage,
  UpdateShellBehaviour,
} from '../../actors/update-agent/index.js';
import { createOperatorClient } from '../../services/operator-api/index.js';
import type { OperatorClient } from '../../services/operator-api/index.js';
import type { Rollout } from '../../proto/gen/sphere/operator/v1/operator.js';
import { serviceClock } from '../../loadgen/runner/index.js';
import { getFreePort, startNatsServer } from '../local/nats.js';
import { spawnManaged } from '../local/processes.js';
import type { ManagedProcess } from '../local/processes.js';

const MIB = 1024 * 1024;
/** What the shard offers (services/shard/updates.ts OFFER_CHUNK_BYTES); devices ask for this much. */
const CHUNK_BYTES = 64 * 1024;
/** Devices per RegisterEndorsements / ClaimDevices call. */
const ENROLL_BATCH = 5000;
/**
 * Devices per AssignDevices call with `--setup deployment-first` (`--join-batch`); after each call
 * the bench reads the deployment back and checks every assigned device joined it.
 */
const JOIN_BATCH = 500;
const RAW_SUBJECT_PREFIX = 'bench.raw';
/**
 * Default size of the raw baseline: the rollout's bytes, at most 2 GiB (the rate is steady well
 * before; rates are compared, not times).
 */
const RAW_DEFAULT_CAP = 2 * 1024 * MIB;
const REQUEST_TIMEOUT_MS = 60_000;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds the whole machine has been busy so far (all processes), from /proc/stat (Linux). */
function machineBusySeconds(): number {
  try {
    const f =
      readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
    return busy / 100;
  } catch {
    return Number.NaN;
  }
}

/** Resident and peak resident memory of a process in MiB, from /proc (Linux). */
function rssMiB(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { rss: Number.NaN, peak: Number.NaN };
  }
}

/** Nearest-rank percentile of an unsorted sample (NaN when empty). */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : 'n/a';

/** Sum of the samples of `name` whose labels include `labels`, from Prometheus exposition text (NaN: none). */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = Number.NaN;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    total = Number.isNaN(total) ? v : total + v;
  }
  return total;
}

async function shardMetrics(url: string | null): Promise<string> {
  if (url === null) return '';
  try {
    const res = await fetch(url);
    return res.ok ? await res.text() : '';
  } catch {
    return '';
  }
}

function rolloutCounts(r: Rollout | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const w of r?.waves ?? [])
    for (const [state, n] of Object.entries(w.devicesByState)) out[state] = (out[state] ?? 0) + n;
  return out;
}
const population = (r: Rollout | undefined) => Object.values(rolloutCounts(r)).reduce((a, b) => a + b, 0);

interface DeviceRecord {
  kickedAt: number;
  checkedAt: number;
  lastChunkAt: number;
  doneAt: number;
  bytes: number;
}

/** Step durations of zero (simulated): the figure is the transfer, not simulated waits. */
const BENCH_UPDATES: UpdateShellBehaviour = {
  ...DEFAULT_UPDATE_SHELL_BEHAVIOUR,
  chunkBytes: CHUNK_BYTES,
  // No second check during the run.
  checkEveryMs: 7 * 24 * 3_600_000,
  resumeAfterMs: 100,
  installMs: 0,
  appRestartMs: 0,
  osRebootMs: 0,
  healthCheckMs: 0,
  retry: { initialMs: 100, maxMs: 2000, multiplier: 2, jitter: 0.2 },
};

interface RolloutFigures {
  readonly elapsedMs: number;
  readonly bytes: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly downloadMs: number[];
  readonly totalMs: number[];
  readonly checkFailures: number;
  readonly noOffer: number;
  readonly reportRetries: number;
  readonly chunkEvents: number;
  readonly cpu: { bench: number; shard: number; nats: number };
  /** CPU seconds used by every other process on the machine meanwhile (noise). */
  readonly otherCpu: number;
  /** Share of the rollout the bench's event loop was busy (1: the device side is the limit). */
  readonly benchElu: number;
  readonly benchRss: { before: number; spawned: number; peak: number; after: number };
  /** After the rollout (after a full GC when node runs with --expose-gc). */
  readonly benchHeap: { heapUsed: number; arrayBuffers: number; gc: boolean };
  readonly shardRss: { rss: number; peak: number };
  readonly timeline: string[];
  readonly timedOut: boolean;
}

interface RawFigures {
  readonly elapsedMs: number;
  readonly bytes: number;
  readonly downloads: number;
  readonly downloadMs: number[];
  readonly cpu: { bench: number; responder: number; nats: number };
  /** CPU seconds used by every other process on the machine meanwhile (noise). */
  readonly otherCpu: number;
  /** Share of the run the requesters' event loop was busy. */
  readonly elu: number;
}

/**
 * Raw NATS baseline: `downloads` image downloads, `concurrency` at a time over `pool` connections,
 * each as sequential `chunk`-byte requests to a responder process holding the image.
 */
async function rawBaseline(opts: {
  natsUrl: string;
  natsPid: number;
  imageBytes: number;
  downloads: number;
  concurrency: number;
  pool: number;
  chunk: number;
}): Promise<RawFigures> {
  const responder = spawnManaged(
    'raw-responder',
    process.execPath,
    [
      join(root, 'dist/deploy/bench/raw-responder.js'),
      '--nats',
      opts.natsUrl,
      '--image-bytes',
      String(opts.imageBytes),
    ],
    { ready: /^READY/, readyTimeoutMs: 30_000 },
  );
  const conns: NatsConnection[] = [];
  try {
    await responder.ready;
    for (let i = 0; i < opts.pool; i++)
      conns.push(
        await connect({ servers: opts.natsUrl, name: `bench-raw-requester-${i}`, noAsyncTraces: true }),
      );
    let next = 0;
    let bytes = 0;
    const downloadMs: number[] = [];
    const stream = async (s: number): Promise<void> => {
      const nc = conns[s % conns.length];
      if (nc === undefined) throw new Error('no connection');
      const req = new Uint8Array(8);
      const view = new DataView(req.buffer);
      while (next < opts.downloads) {
        const device = next++;
        const t0 = performance.now();
        for (let offset = 0; offset < opts.imageBytes; offset += opts.chunk) {
          view.setUint32(0, offset);
          view.setUint32(4, Math.min(opts.chunk, opts.imageBytes - offset));
          const reply = await nc.request(`${RAW_SUBJECT_PREFIX}.${device % 64}`, req, {
            timeout: REQUEST_TIMEOUT_MS,
          });
          bytes += reply.data.length;
        }
        downloadMs.push(performance.now() - t0);
      }
    };
    const cpu0 = {
      bench: cpuSeconds(process.pid),
      responder: cpuSeconds(responder.pid),
      nats: cpuSeconds(opts.natsPid),
      machine: machineBusySeconds(),
    };
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(opts.concurrency, opts.downloads) }, (_, s) => stream(s)),
    );
    const elapsedMs = performance.now() - t0;
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const cpu = {
      bench: cpuSeconds(process.pid) - cpu0.bench,
      responder: cpuSeconds(responder.pid) - cpu0.responder,
      nats: cpuSeconds(opts.natsPid) - cpu0.nats,
    };
    return {
      elapsedMs,
      elu,
      bytes,
      downloads: downloadMs.length,
      downloadMs,
      cpu,
      otherCpu: machineBusySeconds() - cpu0.machine - cpu.bench - cpu.responder - cpu.nats,
    };
  } finally {
    await Promise.allSettled(conns.map((c) => c.close()));
    await responder.stop();
  }
}

/** Creates the tenant, enrolls the devices, groups them, uploads the image, creates the deployment. */
async function prepare(opts: {
  admin: OperatorClient;
  identities: readonly ManufacturedIdentity[];
  imageBytes: number;
  setup: 'deployment-first' | 'group-first';
  joinBatch: number;
  log: (line: string) => void;
}): Promise<{ tenantId: string; tenant: OperatorClient; deploymentId: string }> {
  const { admin, identities, log } = opts;
  const t = await admin.createTenant('bench-rollout');
  const tenant = admin.withToken(t.apiToken);
  const ids = identities.map((i) => i.deviceId);
  for (let i = 0; i < identities.length; i += ENROLL_BATCH) {
    const slice = identities.slice(i, i + ENROLL_BATCH);
    const e = await admin.registerEndorsements(slice.map((d) => d.attestationPublicKey));
    if (e.registered + e.alreadyKnown !== slice.length)
      throw new Error(`endorsement incomplete: ${JSON.stringify(e)}`);
    const c = await tenant.claimDevices(slice.map((d) => d.deviceId));
    if (c.rejected.length > 0) throw new Error(`claim refused: ${c.rejected[0]?.message ?? ''}`);
  }
  const product = await tenant.createProduct('bench-rollout');
  const productId = product.product?.productId ?? '';
  const group = await tenant.createDeviceGroup({ productId, name: 'Bench rollout' });
  const groupId = group.deviceGroup?.deviceGroupId ?? '';
  const t0 = performance.now();
  const image = await tenant.uploadImage({
    kind: 'app',
    name: 'blinky',
    version: '2.0.0',
    content: new Uint8Array(randomBytes(opts.imageBytes)),
  });
  const imageId = image.image?.imageId ?? '';
  log(`image ${imageId}: ${fmt(opts.imageBytes)} bytes uploaded in ${fmt(performance.now() - t0)} ms`);
  const deploy = () =>
    tenant.createDeployment({
      deviceGroupId: groupId,
      imageId,
      waves: [{ size: { $case: 'share', value: 1 } }],
      // Running until every device succeeded (each report is checked against the wave), then completed.
      successThreshold: 1,
      errorCount: Math.max(1, identities.length),
    });
  const assign = async (batch: number, after: (done: number) => Promise<void>) => {
    for (let i = 0; i < ids.length; i += batch) {
      const r = await tenant.assignDevices(groupId, ids.slice(i, i + batch));
      if (r.rejected.length > 0) throw new Error(`assign refused: ${r.rejected[0]?.message ?? ''}`);
      await after(Math.min(ids.length, i + batch));
    }
  };
  let deploymentId: string;
  const t1 = performance.now();
  if (opts.setup === 'group-first') {
    // What an operator does: a populated group, then the deployment (every member joins it).
    await assign(ENROLL_BATCH, () => Promise.resolve());
    const created = await deploy();
    deploymentId = created.rollout?.deploymentId ?? '';
  } else {
    // The deployment first (on an empty group it completes at once and keeps serving its group:
    // each device assigned afterwards joins its last wave and is offered the image right away),
    // then the devices in batches, each checked to have joined.
    const created = await deploy();
    deploymentId = created.rollout?.deploymentId ?? '';
    await assign(opts.joinBatch, async (done) => {
      const r = await tenant.getDeployment(deploymentId, false);
      const n = population(r.rollout);
      if (n !== done) throw new Error(`deployment population ${n} after ${done} devices assigned`);
    });
  }
  const r = await tenant.getDeployment(deploymentId, false);
  const n = population(r.rollout);
  log(
    `deployment ${deploymentId} (${opts.setup}): state ${r.rollout?.state ?? '?'}, population ${fmt(n)}, ` +
      `${JSON.stringify(rolloutCounts(r.rollout))}, set up in ${fmt((performance.now() - t1) / 1000, 1)} s`,
  );
  if (n !== identities.length)
    throw new Error(`deployment population ${n}, expected ${identities.length} (devices lost on the way)`);
  return { tenantId: t.tenantId, tenant, deploymentId };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '10000' },
      'image-bytes': { type: 'string', default: String(MIB) },
      concurrency: { type: 'string', default: '200' },
      pool: { type: 'string', default: '4' },
      'time-scale': { type: 'string', default: '1' },
      'raw-bytes': { type: 'string' },
      setup: { type: 'string', default: 'group-first' },
      'join-batch': { type: 'string', default: String(JOIN_BATCH) },
      'shard-cpu-prof': { type: 'string' },
      'timeout-s': { type: 'string', default: '900' },
      'no-raw': { type: 'boolean' },
      'no-journal': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    console.log(
      'Usage: npm run bench:rollout -- [--devices 10000] [--image-bytes 1048576] [--concurrency 200] [--pool 4]\n' +
        '       [--time-scale 1] [--raw-bytes <n> (default devices x image bytes, at most 2 GiB)] [--no-raw]\n' +
        '       [--setup deployment-first|group-first] [--join-batch 500] [--no-journal]\n' +
        '       [--shard-cpu-prof <dir>] [--timeout-s 900]',
    );
    return;
  }
  const devices = Number(values.devices);
  const imageBytes = Number(values['image-bytes']);
  const concurrency = Math.min(devices, Number(values.concurrency));
  const pool = Number(values.pool);
  const timeScale = Number(values['time-scale']);
  const setup = values.setup;
  if (setup !== 'deployment-first' && setup !== 'group-first')
    throw new Error(`--setup must be deployment-first or group-first, got "${setup}"`);
  const rawBytes =
    values['raw-bytes'] === undefined
      ? Math.min(devices * imageBytes, RAW_DEFAULT_CAP)
      : Number(values['raw-bytes']);
  const timeoutMs = Number(values['timeout-s']) * 1000;
  for (const [flag, v] of Object.entries({ devices, imageBytes, concurrency, pool, timeScale, rawBytes })) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`bad value for ${flag}: ${String(v)}`);
  }
  const log = (line: string) => console.log(line);

  const nats = await startNatsServer({ jetstream: true });
  // The raw baseline runs first, while this process holds no fleet: 10,000 agents' state makes
  // every major GC slower, and the baseline measures NATS, not this process's heap.
  let raw: RawFigures | null = null;
  if (values['no-raw'] !== true) {
    log(
      `raw NATS baseline: ${fmt(rawBytes / MIB)} MiB as ${fmt(Math.ceil(rawBytes / imageBytes))} downloads...`,
    );
    try {
      raw = await rawBaseline({
        natsUrl: nats.url,
        natsPid: nats.pid,
        imageBytes,
        downloads: Math.max(1, Math.ceil(rawBytes / imageBytes)),
        concurrency,
        pool,
        chunk: CHUNK_BYTES,
      });
    } catch (e) {
      await nats.stop();
      throw e;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'sphere-bench-rollout-'));
  const tokenFile = join(dir, 'admin.token');
  const token = randomBytes(24).toString('hex');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const grpcPort = await getFreePort();
  const profDir = values['shard-cpu-prof'];
  const shard: ManagedProcess = spawnManaged(
    'shard',
    process.execPath,
    [
      ...(profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(profDir)]),
      join(root, 'dist/services/shard/main.js'),
      '--nats',
      nats.url,
      '--grpc-port',
      String(grpcPort),
      '--metrics-port',
      '0',
      '--admin-token-file',
      tokenFile,
      '--workers',
      '1',
      '--time-scale',
      String(timeScale),
      // The shard keeps its state (deployments, device reports) in a JetStream journal by default.
      ...(values['no-journal'] === true ? ['--no-journal'] : []),
    ],
    { ready: /^READY /, readyTimeoutMs: 30_000 },
  );
  let system: ActorSystem | null = null;
  const links: Promise<Transport>[] = [];
  let admin: OperatorClient | null = null;
  try {
    await shard.ready;
    const metricsUrl =
      /metrics=(\S+)/.exec(shard.tail().find((l) => l.startsWith('READY ')) ?? '')?.[1] ?? null;
    admin = createOperatorClient(`127.0.0.1:${grpcPort}`, token);
    const info = await admin.getServiceInfo();

    const benchRssBefore = process.memoryUsage().rss / MIB;
    let t = performance.now();
    const identities = Array.from({ length: devices }, (_, i) => manufactureIdentity(`bench-rollout-${i}`));
    log(`manufactured ${fmt(devices)} device identities in ${fmt((performance.now() - t) / 1000, 1)} s`);
    t = performance.now();
    const { tenantId, tenant, deploymentId } = await prepare({
      admin,
      identities,
      imageBytes,
      setup,
      joinBatch: Number(values['join-batch']),
      log,
    });
    log(`tenant, enrollment, group, image and deployment in ${fmt((performance.now() - t) / 1000, 1)} s`);
    const res = await fetch(`${info.tufBaseUrl}/${tenantId}/metadata/1.root.json`);
    if (!res.ok) throw new Error(`GET 1.root.json: ${res.status}`);
    const updateRoot = new Uint8Array(await res.arrayBuffer());

    for (let i = 0; i < pool; i++)
      links.push(connectNatsTransport({ servers: nats.url, name: `bench-rollout-${i}` }));
    await Promise.all(links);
    system = new ActorSystem({ clock: serviceClock(info), rng: createRng('bench-rollout'), name: 'bench' });

    // Per-device records and the pacer: at most `concurrency` devices between kick and done.
    const rec: DeviceRecord[] = Array.from({ length: devices }, () => ({
      kickedAt: 0,
      checkedAt: 0,
      lastChunkAt: 0,
      doneAt: 0,
      bytes: 0,
    }));
    let bytes = 0;
    let chunkEvents = 0;
    let succeeded = 0;
    let failed = 0;
    let checkFailures = 0;
    let noOffer = 0;
    let reportRetries = 0;
    let nextKick = 0;
    let finished = 0;
    let allDone: () => void = () => undefined;
    const done = new Promise<void>((r) => (allDone = r));
    const agents: ActorRef<UpdateAgentShellMessage>[] = [];
    const kick = () => {
      const i = nextKick++;
      const agent = agents[i];
      const r = rec[i];
      if (agent === undefined || r === undefined) return;
      r.kickedAt = performance.now();
      agent.tell({ type: 'agent.device-attested' });
    };
    const finish = (r: DeviceRecord) => {
      r.doneAt = performance.now();
      finished++;
      if (nextKick < devices) kick();
      if (finished === devices) allDone();
    };
    const observe = (i: number, e: UpdateAgentEvent) => {
      const r = rec[i];
      if (r === undefined) return;
      switch (e.kind) {
        case 'check':
          if (!e.ok) checkFailures++;
          else if (e.offers === 0) {
            // Not offered (yet): ask again shortly rather than at the next regular check.
            noOffer++;
            setTimeout(() => agents[i]?.tell({ type: 'update.check-due' }), 100);
          } else r.checkedAt = performance.now();
          return;
        case 'chunk':
          r.bytes += e.bytes;
          bytes += e.bytes;
          chunkEvents++;
          r.lastChunkAt = performance.now();
          return;
        case 'report':
          if (!e.acked) {
            reportRetries++;
            return;
          }
          if (r.doneAt !== 0) return;
          if (e.outcome === 'succeeded') {
            succeeded++;
            finish(r);
          } else if (e.outcome === 'failed' || e.outcome === 'rolled-back') {
            failed++;
            finish(r);
          }
          return;
        case 'os-deferred': // the bench rolls out an app image
          return;
        default:
          e satisfies never;
      }
    };

    // Every request after attestation is bound to the device's session: attest each device once
    // (outside the measured window), as a device does before its first update check.
    t = performance.now();
    const sessions = identities.map(() => new SessionSlot());
    const attestRng = createRng('bench-rollout/boot-ids');
    const clock = serviceClock(info);
    const firmware = [...osImages('25.10'), appImage({ name: 'blinky', version: '1.0.0' })];
    let nextAttest = 0;
    await Promise.all(
      Array.from({ length: Math.min(64, devices) }, async () => {
        for (let i = nextAttest++; i < devices; i = nextAttest++) {
          const identity = identities[i];
          const slot = sessions[i];
          if (identity === undefined || slot === undefined) break;
          slot.current = await attestOnce({
            transport: await (links[i % pool] ?? Promise.reject(new Error('no link'))),
            identity,
            images: firmware,
            osVersion: '25.10',
            securityVersion: 5,
            partitions: info.partitions,
            deviceTimeMs: clock.now(),
            timeoutMs: REQUEST_TIMEOUT_MS,
            bootId: attestRng.bytes(16),
          });
        }
      }),
    );
    log(
      `attested ${fmt(devices)} devices (sessions for their agents) in ${fmt((performance.now() - t) / 1000, 1)} s`,
    );

    t = performance.now();
    for (let i = 0; i < devices; i++) {
      const identity = identities[i];
      const link = links[i % pool];
      const session = sessions[i];
      if (identity === undefined || link === undefined || session === undefined)
        throw new Error(`no identity for device ${i}`);
      const core = system.spawn(securityCoreDefinition(`core:${i}`, identity, { updateRoot }));
      agents.push(
        system.spawn(
          updateAgentDefinition({
            name: `agent:${i}`,
            deviceId: identity.deviceId,
            installed: [
              { kind: 'os', name: 'azure-sphere-os', version: '25.10', securityVersion: 5 },
              { kind: 'app', name: 'blinky', version: '1.0.0', securityVersion: 1 },
            ],
            fault: null,
            defective: () => false,
            behaviour: BENCH_UPDATES,
            core,
            device: () => null,
            link: { connect: () => link },
            session,
            partitions: info.partitions,
            requestTimeoutMs: REQUEST_TIMEOUT_MS,
            observe: (e) => observe(i, e),
          }),
        ),
      );
    }
    await system.whenIdle();
    const benchRssSpawned = process.memoryUsage().rss / MIB;
    log(
      `spawned ${fmt(devices)} security cores + update agents in ${fmt((performance.now() - t) / 1000, 1)} s ` +
        `(bench RSS ${fmt(benchRssBefore)} → ${fmt(benchRssSpawned)} MiB)`,
    );

    const metricsBefore = await shardMetrics(metricsUrl);
    const cpu0 = {
      bench: cpuSeconds(process.pid),
      shard: cpuSeconds(shard.pid),
      nats: cpuSeconds(nats.pid),
      machine: machineBusySeconds(),
    };
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    for (let k = 0; k < concurrency; k++) kick();
    const timeline: string[] = [];
    let benchRssPeak = benchRssSpawned;
    let lastBytes = 0;
    let lastAt = t0;
    let timedOut = false;
    const sampler = setInterval(() => {
      benchRssPeak = Math.max(benchRssPeak, process.memoryUsage().rss / MIB);
    }, 200);
    const progress = setInterval(() => {
      const now = performance.now();
      const line =
        `  ${fmt((now - t0) / 1000, 1)} s: ${fmt(finished)}/${fmt(devices)} devices done, ` +
        `${fmt(bytes / MIB)} MiB, ${fmt((bytes - lastBytes) / MIB / ((now - lastAt) / 1000), 1)} MiB/s now, ` +
        `${fmt(nextKick - finished)} in flight`;
      lastBytes = bytes;
      lastAt = now;
      timeline.push(line);
      log(line);
    }, 5000);
    const timer = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([done, timer.then(() => (timedOut = true))]);
    const elapsedMs = (rec.reduce((m, r) => Math.max(m, r.doneAt), 0) || performance.now()) - t0;
    clearInterval(progress);
    clearInterval(sampler);
    const benchElu = performance.eventLoopUtilization(elu0).utilization;
    const cpu = {
      bench: cpuSeconds(process.pid) - cpu0.bench,
      shard: cpuSeconds(shard.pid) - cpu0.shard,
      nats: cpuSeconds(nats.pid) - cpu0.nats,
    };
    const otherCpu = machineBusySeconds() - cpu0.machine - cpu.bench - cpu.shard - cpu.nats;
    const shardRss = rssMiB(shard.pid);
    // Only now: a forced full GC before or during the rollout makes it slower (V8 then sets the
    // next major GC close to the fleet's live heap, and major GCs, which mark the whole fleet, are
    // much of the device side's cost).
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const memAfter = process.memoryUsage();
    const benchRssAfter = memAfter.rss / MIB;
    const metricsAfter = await shardMetrics(metricsUrl);
    const final = await tenant.getDeployment(deploymentId, false);
    const served =
      metricValue(metricsAfter, 'sphere_update_bytes_served_total') -
      (metricValue(metricsBefore, 'sphere_update_bytes_served_total') || 0);
    const dropped = metricValue(metricsAfter, 'sphere_actor_dropped_total');
    const figures: RolloutFigures = {
      elapsedMs,
      bytes,
      succeeded,
      failed,
      downloadMs: rec.filter((r) => r.doneAt > 0).map((r) => r.lastChunkAt - r.checkedAt),
      totalMs: rec.filter((r) => r.doneAt > 0).map((r) => r.doneAt - r.kickedAt),
      checkFailures,
      noOffer,
      reportRetries,
      chunkEvents,
      cpu,
      otherCpu,
      benchElu,
      benchRss: {
        before: benchRssBefore,
        spawned: benchRssSpawned,
        peak: benchRssPeak,
        after: benchRssAfter,
      },
      benchHeap: {
        heapUsed: memAfter.heapUsed / MIB,
        arrayBuffers: memAfter.arrayBuffers / MIB,
        gc: gc !== undefined,
      },
      shardRss,
      timeline,
      timedOut,
    };
    log(
      `deployment at the end: ${final.rollout?.state ?? '?'} ${JSON.stringify(rolloutCounts(final.rollout))}; ` +
        `shard served ${fmt(served / MIB)} MiB; shard actor messages dropped: ${Number.isNaN(dropped) ? 0 : dropped}`,
    );

    await system.shutdown();
    system = null;
    await Promise.allSettled(links.map((l) => l.then((c) => c.close())));
    links.length = 0;
    admin.close();
    admin = null;
    await shard.stop();

    report({ devices, imageBytes, concurrency, pool, timeScale, setup, rollout: figures, raw });
  } finally {
    await system?.shutdown();
    await Promise.allSettled(links.map((l) => l.then((c) => c.close())));
    admin?.close();
    await shard.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(o: {
  devices: number;
  imageBytes: number;
  concurrency: number;
  pool: number;
  timeScale: number;
  setup: string;
  rollout: RolloutFigures;
  raw: RawFigures | null;
}): void {
  const { rollout: f, raw } = o;
  const sec = f.elapsedMs / 1000;
  const rate = f.bytes / MIB / sec;
  const done = f.succeeded + f.failed;
  const rawRate = raw === null ? Number.NaN : raw.bytes / MIB / (raw.elapsedMs / 1000);
  const ratio = rate / rawRate;
  const p = (xs: number[], q: number) => percentile(xs, q);
  const chunks = Math.max(1, f.chunkEvents);
  const us = (cpuSec: number) => fmt((cpuSec / chunks) * 1e6);
  console.log('');
  console.log(
    `rollout: ${fmt(o.devices)} devices × ${fmt(o.imageBytes)} bytes, ${fmt(CHUNK_BYTES / 1024)} KiB chunks, ` +
      `concurrency ${o.concurrency} devices, ${o.pool} shared NATS connections, time scale ${o.timeScale}, setup ${o.setup}`,
  );
  console.log(
    `  ${fmt(f.succeeded)} succeeded, ${fmt(f.failed)} failed${f.timedOut ? `, TIMED OUT with ${fmt(o.devices - done)} unfinished` : ''} ` +
      `in ${fmt(sec, 2)} s (first kick → last 'succeeded' report acknowledged)`,
  );
  console.log(
    `  image bytes delivered: ${fmt(f.bytes / MIB, 1)} MiB = ${fmt(rate, 1)} MiB/s; ${fmt(done / sec, 1)} devices/s`,
  );
  console.log(
    `  per device, download (check reply → last chunk): p50 ${fmt(p(f.downloadMs, 50))} ms, p90 ${fmt(p(f.downloadMs, 90))} ms, ` +
      `p99 ${fmt(p(f.downloadMs, 99))} ms, max ${fmt(Math.max(...f.downloadMs))} ms`,
  );
  console.log(
    `  per device, total (kick → 'succeeded' acknowledged): p50 ${fmt(p(f.totalMs, 50))} ms, p99 ${fmt(p(f.totalMs, 99))} ms`,
  );
  console.log(
    `  retries: ${f.checkFailures} failed checks, ${f.noOffer} checks without an offer, ${f.reportRetries} unacknowledged reports`,
  );
  console.log(
    `  CPU: bench ${fmt(f.cpu.bench, 2)} s, shard ${fmt(f.cpu.shard, 2)} s, nats-server ${fmt(f.cpu.nats, 2)} s ` +
      `(per 64 KiB chunk: ${us(f.cpu.bench)} / ${us(f.cpu.shard)} / ${us(f.cpu.nats)} µs; ` +
      `${fmt((f.cpu.bench + f.cpu.shard + f.cpu.nats) / sec, 2)} cores busy); bench event loop ${fmt(f.benchElu * 100)}% busy; ` +
      `other processes on the machine: ${fmt(Math.max(0, f.otherCpu / sec), 2)} cores`,
  );
  console.log(
    `  memory: bench RSS ${fmt(f.benchRss.before)} MiB before the fleet, ${fmt(f.benchRss.spawned)} MiB spawned, ` +
      `peak ${fmt(f.benchRss.peak)} MiB, ${fmt(f.benchRss.after)} MiB after; ` +
      `shard RSS ${fmt(f.shardRss.rss)} MiB (peak ${fmt(f.shardRss.peak)} MiB)`,
  );
  console.log(
    `  bench after the rollout${f.benchHeap.gc ? ' (after a full GC)' : ''}: JS heap ${fmt(f.benchHeap.heapUsed)} MiB ` +
      `(${fmt((f.benchHeap.heapUsed * 1024) / o.devices, 1)} KiB/device), ` +
      `ArrayBuffers ${fmt(f.benchHeap.arrayBuffers)} MiB (${fmt((f.benchHeap.arrayBuffers * 1024) / o.devices, 1)} KiB/device)`,
  );
  if (raw !== null) {
    const rsec = raw.elapsedMs / 1000;
    const rchunks = Math.max(1, raw.bytes / CHUNK_BYTES);
    const rus = (cpuSec: number) => fmt((cpuSec / rchunks) * 1e6);
    console.log(
      `raw NATS request/reply: ${fmt(raw.bytes / MIB, 1)} MiB (${fmt(raw.downloads)} downloads) in ${fmt(rsec, 2)} s = ${fmt(rawRate, 1)} MiB/s; ` +
        `download p50 ${fmt(p(raw.downloadMs, 50))} ms, p99 ${fmt(p(raw.downloadMs, 99))} ms`,
    );
    console.log(
      `  CPU: requesters ${fmt(raw.cpu.bench, 2)} s, responder ${fmt(raw.cpu.responder, 2)} s, nats-server ${fmt(raw.cpu.nats, 2)} s ` +
        `(per chunk: ${rus(raw.cpu.bench)} / ${rus(raw.cpu.responder)} / ${rus(raw.cpu.nats)} µs); ` +
        `requesters' event loop ${fmt(raw.elu * 100)}% busy; other processes on the machine: ${fmt(Math.max(0, raw.otherCpu / rsec), 2)} cores`,
    );
    console.log(`ratio rollout / raw: ${fmt(ratio, 2)}`);
  }
  console.log(
    `BENCH rollout devices=${o.devices} image_bytes=${o.imageBytes} rate_mib_s=${rate.toFixed(1)} ` +
      `raw_mib_s=${rawRate.toFixed(1)} ratio=${ratio.toFixed(2)} p99_download_ms=${p(f.downloadMs, 99).toFixed(0)} ` +
      `p50_download_ms=${p(f.downloadMs, 50).toFixed(0)} devices_per_s=${(done / sec).toFixed(1)} ` +
      `elapsed_s=${sec.toFixed(2)} succeeded=${f.succeeded} failed=${f.failed} concurrency=${o.concurrency} ` +
      `pool=${o.pool} shard_cpu_s=${f.cpu.shard.toFixed(2)} bench_cpu_s=${f.cpu.bench.toFixed(2)} ` +
      `nats_cpu_s=${f.cpu.nats.toFixed(2)} bench_elu=${f.benchElu.toFixed(2)} bench_rss_mib=${f.benchRss.peak.toFixed(0)} ` +
      `other_cores=${(f.otherCpu / sec).toFixed(2)} raw_other_cores=${raw === null ? 'NaN' : (raw.otherCpu / (raw.elapsedMs / 1000)).toFixed(2)} ` +
      `bench_array_buffers_mib=${f.benchHeap.arrayBuffers.toFixed(0)} timed_out=${f.timedOut}`,
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error('bench:rollout failed:', e);
    process.exit(1);
  },
);
