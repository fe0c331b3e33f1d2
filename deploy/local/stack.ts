/**
 * Local stack launcher: nats-server (JetStream) + shard process(es) + the scenario runner.
 *
 *   node dist/deploy/local/stack.js [scenario.yaml] [--shards 1] [--workers N] [--keep-running]
 *                                   [--no-run] [--ready-timeout 60] [--no-prometheus] [--help]
 *
 * Writes `.runs/<timestamp>/{nats,shard-N,runner}.log`, `admin.token` (0600) and `stack.json`
 * (URLs, ports, pids, log paths). When a `prometheus` binary is found ($PROMETHEUS, $PATH, /usr/bin),
 * it scrapes the shards and the runner with the rules of deploy/prometheus/ (see ./prometheus.ts).
 *
 * Exit code: the scenario runner's (0 pass, 99 threshold failed, other = error), 130 on Ctrl-C,
 * 1 when the stack could not be started. Nothing is left running afterwards.
 *
 * Environment (for tests and tooling): SPHERE_SHARD_MAIN / SPHERE_RUNNER_MAIN override the entry
 * points (default dist/services/shard/main.js, dist/loadgen/cli.js); SPHERE_RUNS_DIR overrides
 * `.runs`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getFreePort, NatsServerNotFoundError, startNatsServer } from './nats.js';
import type { NatsServerHandle } from './nats.js';
import { installShutdownHandlers, spawnManaged } from './processes.js';
import type { ManagedProcess, Stoppable } from './processes.js';
import {
  findPrometheus,
  PROMETHEUS_MISSING_HINT,
  queryRollouts,
  queryVersionMix,
  renderPrometheusRollouts,
  renderVersionMix,
  startPrometheus,
} from './prometheus.js';
import type { PrometheusHandle, PrometheusTarget } from './prometheus.js';
import { readFile } from 'node:fs/promises';
import { createPromMeter } from '../../actors/runtime/index.js';
import type { MetricsServer } from '../../actors/runtime/index.js';
import { FLEET_STARTED } from '../../loadgen/runner/index.js';
import type { RunHistory } from '../../loadgen/runner/index.js';
import type { RunSummary } from '../../loadgen/report/index.js';
import { compileChaosFault, loadScenarioFile } from '../../loadgen/scenario/index.js';
import type { Scenario } from '../../loadgen/scenario/index.js';
import { errorBudgets, judge, readStoredHistory, renderVerdict } from '../../loadgen/verdict/index.js';
import type { FaultSpan, Verdict } from '../../loadgen/verdict/index.js';
import type { ChaosFault } from '../../loadgen/scenario/index.js';
import { openJetStreamJournal } from '../../services/journal/index.js';
import { ChaosController } from '../chaos/controller.js';
import type { ChaosProcess } from '../chaos/controller.js';
import { serveChaosControl } from '../chaos/control.js';
import { startFabric } from '../chaos/fabric.js';
import type { Fabric } from '../chaos/fabric.js';

/** Shard flags that make the service run the scenario's clock and policy. */
function shardFlagsFor(s: Scenario): string[] {
  return [
    '--time-scale',
    String(s.timeScale),
    '--nonce-ttl-ms',
    String(s.service.nonceTtlMs),
    '--cert-lifetime-ms',
    String(s.service.certificateLifetimeMs),
    '--min-security-version',
    String(s.service.minSecurityVersion),
    '--max-clock-skew-ms',
    String(s.service.maxClockSkewMs),
    '--device-rate-burst',
    String(s.service.deviceRateLimit.burst),
    '--device-rate-per-hour',
    String(s.service.deviceRateLimit.perHour),
    '--seed',
    `${s.seed}/shard`,
  ];
}

/** Reads one shard's `sphere_shard_partitions_owned`; `null` when it does not answer (dead, paused). */
async function ownedBy(url: string, id: string, timeoutMs = 300): Promise<number | null> {
  try {
    const text = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) }).then((r) => r.text());
    const m = new RegExp(`^sphere_shard_partitions_owned\\{shard="${id}"\\} (\\d+)`, 'm').exec(text);
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/**
 * Polls the shards' `sphere_shard_partitions_owned` until every shard serves some partitions and
 * together they serve all, unchanged over two polls (or 30 s pass); returns the last counts.
 */
async function waitForBalance(shards: readonly { url: string; id: string }[]): Promise<string[]> {
  const read = async (s: { url: string; id: string }): Promise<number> =>
    (await ownedBy(s.url, s.id, 5000)) ?? 0;
  const until = Date.now() + 30_000;
  let last = '';
  let counts: number[] = [];
  while (Date.now() < until) {
    counts = await Promise.all(shards.map(read));
    const key = counts.join(',');
    if (counts.every((n) => n > 0) && key === last) break;
    last = key;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return counts.map((n, i) => `${shards[i]?.id ?? i} ${n}`);
}

/**
 * The verdict: the runner's history and summary (from `outDir`), the journal read back from the
 * NATS nodes directly (not through the faults), and the controller's fault timeline.
 */
async function judgeRun(
  outDir: string,
  faults: readonly FaultSpan[],
  fabric: Fabric | null,
  scenario: Scenario,
  replicas: number,
): Promise<Verdict> {
  const history = JSON.parse(await readFile(join(outDir, 'history.json'), 'utf8')) as RunHistory;
  const summary = JSON.parse(await readFile(join(outDir, 'summary.json'), 'utf8')) as RunSummary;
  const journal = await openJetStreamJournal({
    servers: fabric?.directUrls ?? '',
    name: 'sphere',
    connectionName: 'verdict',
    replicas,
  });
  try {
    const stored = await readStoredHistory(journal);
    return judge({ history, stored, summary, budgets: errorBudgets(scenario), faults });
  } finally {
    await journal.close();
  }
}

/** Partitions each shard served, sampled over the run (only changes are kept). */
interface OwnershipSample {
  readonly atMs: number;
  readonly owned: Readonly<Record<string, number>>;
}

/**
 * For each fault on a shard, how long until the other shards served all `partitions`, from the
 * ownership samples (the first sample at or after the fault where they did).
 */
function takeoverTimes(
  spans: readonly FaultSpan[],
  faults: readonly ChaosFault[],
  samples: readonly OwnershipSample[],
  partitions: number,
): FaultSpan[] {
  return spans.map((span) => {
    const f = faults.find((x) => `f${x.index}` === span.id);
    const a = f?.action;
    const shard =
      a === undefined
        ? null
        : a.kind === 'kill' || a.kind === 'pause'
          ? a.target.startsWith('shard-')
            ? a.target
            : null
          : a.kind === 'partition' && a.share === 1
            ? ([...a.between[0], ...a.between[1]].find((e) => e.startsWith('shard-')) ?? null)
            : null;
    if (shard === null) return span;
    const done = samples.find(
      (s) =>
        s.atMs >= span.startMs &&
        Object.entries(s.owned).reduce((n, [id, k]) => (id === shard ? n : n + k), 0) >= partitions,
    );
    return { ...span, takeoverMs: done === undefined ? null : done.atMs - span.startMs };
  });
}

const USAGE = `Usage: node dist/deploy/local/stack.js [scenario.yaml] [options]

Starts a local sphere-fleet stack (nats-server with JetStream, shard process(es)), runs the
scenario against it, stops everything and exits with the scenario runner's exit code
(0 = all thresholds passed, 99 = a threshold failed, 130 = interrupted).

Arguments:
  scenario.yaml          scenario to run (default: loadgen/examples/quickstart.yaml)

Options:
  --shards N             number of shard processes (default 1, or the scenario's chaos.shards).
                         They share the JetStream journal and split the 64 partitions by lease;
                         the stack waits until every shard serves its share. The runner's gRPC
                         client fails over between them.
  --nats-nodes N         NATS nodes (default 1, or the scenario's chaos.natsNodes). More than one
                         makes a cluster with JetStream replicas R3 (R2 with two nodes).
                         With a cluster or a chaos section every link (devices, shards, routes)
                         runs through a TCP proxy the chaos controller can cut, slow or reset.
  --no-chaos             run a chaos scenario's stack without injecting its faults (a baseline)
  --unsafe-no-fencing    TEST ONLY: shards neither fence partition appends nor respect lease
                         deadlines; the verdict's single-owner check should then fail
  --workers N            worker threads per shard (passed to the shard as --workers)
  --keep-running         keep the stack up after the scenario finished, until Ctrl-C
  --no-run               start the stack only (implies --keep-running)
  --ready-timeout SEC    how long to wait for each shard's READY line (default 60)
  --no-prometheus        don't start Prometheus (default: started when a \`prometheus\` binary is
                         found in $PROMETHEUS, $PATH or /usr/bin)
  -h, --help             show this help

Runtime files (logs, admin token, stack.json) go to .runs/<timestamp>/.

Environment: SPHERE_SHARD_MAIN, SPHERE_RUNNER_MAIN (entry point overrides), SPHERE_RUNS_DIR,
PROMETHEUS (path of the prometheus binary).`;

/** Walk up from this file to the directory holding package.json (works from dist/ and from source). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

function positiveInt(name: string, v: string | undefined, dflt: number | undefined): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

class UsageError extends Error {}

interface Cli {
  scenario: string;
  shards: number | undefined;
  natsNodes: number | undefined;
  noChaos: boolean;
  unsafeNoFencing: boolean;
  workers: number | undefined;
  keepRunning: boolean;
  noRun: boolean;
  readyTimeoutMs: number;
  prometheus: boolean;
}

function parseCli(argv: string[], root: string): Cli | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      shards: { type: 'string' },
      'nats-nodes': { type: 'string' },
      'no-chaos': { type: 'boolean', default: false },
      'unsafe-no-fencing': { type: 'boolean', default: false },
      workers: { type: 'string' },
      'keep-running': { type: 'boolean', default: false },
      'no-run': { type: 'boolean', default: false },
      'ready-timeout': { type: 'string' },
      'no-prometheus': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 1)
    throw new UsageError(`expected at most one scenario file, got: ${positionals.join(' ')}`);
  return {
    scenario: resolve(positionals[0] ?? join(root, 'loadgen/examples/quickstart.yaml')),
    shards: positiveInt('shards', values.shards, undefined),
    natsNodes: positiveInt('nats-nodes', values['nats-nodes'], undefined),
    noChaos: values['no-chaos'],
    unsafeNoFencing: values['unsafe-no-fencing'],
    workers: positiveInt('workers', values.workers, undefined),
    keepRunning: values['keep-running'] || values['no-run'],
    noRun: values['no-run'],
    readyTimeoutMs: (positiveInt('ready-timeout', values['ready-timeout'], 60) ?? 60) * 1000,
    prometheus: !values['no-prometheus'],
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

const say = (msg: string): void => void process.stdout.write(`${msg}\n`);
const fail = (msg: string): void => void process.stderr.write(`stack: ${msg}\n`);

/** Entry point; resolves with the process exit code. */
async function main(argv: string[]): Promise<number> {
  const root = findRoot();
  let cli: Cli | 'help';
  try {
    cli = parseCli(argv, root);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
    process.stderr.write(`\n${USAGE}\n`);
    return 2;
  }
  if (cli === 'help') {
    say(USAGE);
    return 0;
  }

  const shardMain = resolve(process.env['SPHERE_SHARD_MAIN'] || join(root, 'dist/services/shard/main.js'));
  const runnerMain = resolve(process.env['SPHERE_RUNNER_MAIN'] || join(root, 'dist/loadgen/cli.js'));
  const missing: string[] = [];
  if (!existsSync(shardMain))
    missing.push(`  ${relative(root, shardMain)}  (shard service, built from services/shard/main.ts)`);
  if (!cli.noRun && !existsSync(runnerMain))
    missing.push(`  ${relative(root, runnerMain)}  (scenario runner, built from loadgen/cli.ts)`);
  if (missing.length > 0) {
    fail(
      `missing entry point(s):\n${missing.join('\n')}\n` +
        'Build with `npm run build` (npm run quickstart builds automatically). If the source file does not exist\n' +
        'yet, that part of sphere-fleet has not been written.',
    );
    return 1;
  }
  if (!existsSync(cli.scenario)) {
    fail(`scenario file not found: ${cli.scenario}`);
    return 1;
  }
  let scenario: Scenario;
  try {
    scenario = await loadScenarioFile(cli.scenario);
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
    return 1;
  }

  const runDir = join(resolve(process.env['SPHERE_RUNS_DIR'] || join(root, '.runs')), timestamp());
  mkdirSync(runDir, { recursive: true });
  const tokenFile = join(runDir, 'admin.token');
  writeFileSync(tokenFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });

  const handles: Stoppable[] = [];
  let interrupted = false;
  const ctl = installShutdownHandlers(handles, {
    onSignal: (sig) => {
      interrupted = true;
      process.stderr.write(`\nstack: ${sig} received, stopping everything...\n`);
    },
  });

  const chaos = cli.noChaos ? null : scenario.chaos;
  const shardCount = cli.shards ?? scenario.chaos?.shards ?? 1;
  const natsNodes = cli.natsNodes ?? scenario.chaos?.natsNodes ?? 1;
  const replicas = Math.min(3, natsNodes);
  const shardNames = Array.from({ length: shardCount }, (_, i) => `shard-${i}`);

  // 1. NATS: one server, or a cluster whose every link runs through a chaos proxy.
  const natsLog = join(runDir, 'nats.log');
  let nats: NatsServerHandle | null = null;
  let fabric: Fabric | null = null;
  try {
    if (natsNodes > 1 || scenario.chaos !== null) {
      fabric = await startFabric({
        natsNodes,
        clients: ['devices', ...shardNames],
        seed: scenario.seed,
        logDir: runDir,
      });
      handles.push(fabric);
    } else {
      nats = await startNatsServer({ jetstream: true, logFile: natsLog, name: 'sphere-local' });
      handles.push(nats);
    }
  } catch (err) {
    fail(
      err instanceof NatsServerNotFoundError ? err.message : `could not start nats-server: ${String(err)}`,
    );
    await ctl.stopAll();
    return 1;
  }
  if (interrupted) return ctl.shutdown(130);
  const natsFor = (client: string): string => fabric?.natsFor(client) ?? nats?.url ?? '';

  // Machine-readable "where things are" (updated as processes start; tests use it to check for orphans).
  const state = {
    runDir,
    adminTokenFile: tokenFile,
    nats:
      fabric === null
        ? { url: nats?.url ?? '', pid: nats?.pid ?? -1, log: natsLog }
        : {
            url: fabric.directUrls,
            nodes: fabric.cluster.nodes.map((n) => ({
              name: `nats-${n.index}`,
              url: n.url,
              pid: n.pid(),
              monitor: `http://127.0.0.1:${n.monitorPort}`,
              log: join(runDir, `nats-${n.index}.log`),
            })),
            links: fabric.links.map((l) => ({ from: l.from, to: l.to, proxy: l.proxy.address })),
          },
    shards: [] as { pid: number; grpc: string; metrics: string; log: string }[],
    runner: null as null | { pid: number; metrics: string; log: string },
    prometheus: null as null | { pid: number; url: string; config: string; log: string },
    chaos: null as null | { metrics: string; control: string },
  };
  const writeState = (): void =>
    writeFileSync(join(runDir, 'stack.json'), `${JSON.stringify(state, null, 2)}\n`);
  writeState();

  // 2. Shards. Each slot can be killed and started again (same ports, a new incarnation).
  interface ShardSlot {
    readonly name: string;
    readonly grpcPort: number;
    readonly metricsPort: number;
    readonly log: string;
    proc: ManagedProcess;
    start(): ManagedProcess;
  }
  const shards: ShardSlot[] = [];
  for (const [i, name] of shardNames.entries()) {
    const grpcPort = await getFreePort();
    const metricsPort = await getFreePort();
    const log = join(runDir, `${name}.log`);
    const args = [
      shardMain,
      '--nats',
      natsFor(name),
      '--grpc-port',
      String(grpcPort),
      '--metrics-port',
      String(metricsPort),
      '--admin-token-file',
      tokenFile,
      '--shard-id',
      name,
      '--replicas',
      String(replicas),
    ];
    if (cli.workers !== undefined) args.push('--workers', String(cli.workers));
    if (scenario.chaos !== null) args.push('--lease-ttl-ms', String(scenario.chaos.leaseTtlMs));
    if (cli.unsafeNoFencing) args.push('--unsafe-no-fencing');
    args.push(...shardFlagsFor(scenario));
    const slot: ShardSlot = {
      name,
      grpcPort,
      metricsPort,
      log,
      proc: null as unknown as ManagedProcess,
      start: () => {
        const proc = spawnManaged(name, process.execPath, args, {
          cwd: root,
          ready: /^READY /,
          readyTimeoutMs: cli.readyTimeoutMs,
          logFile: log,
          env: { ...process.env, SPHERE_SHARD_INDEX: String(i), SPHERE_SHARD_COUNT: String(shardCount) },
        });
        slot.proc = proc;
        const entry = state.shards[i];
        if (entry !== undefined) entry.pid = proc.pid;
        return proc;
      },
    };
    slot.start();
    handles.push({ stop: () => slot.proc.stop(), kill: (sig) => slot.proc.kill(sig) });
    shards.push(slot);
    state.shards.push({
      pid: slot.proc.pid,
      grpc: `127.0.0.1:${grpcPort}`,
      metrics: `http://127.0.0.1:${metricsPort}/metrics`,
      log,
    });
  }
  writeState();
  try {
    await Promise.all(shards.map((s) => s.proc.ready));
  } catch (err) {
    if (interrupted) return ctl.shutdown(130);
    fail(err instanceof Error ? err.message : String(err));
    fail(`logs: ${runDir}`);
    await ctl.stopAll();
    return 1;
  }
  if (interrupted) return ctl.shutdown(130);
  if (shards.length > 1) {
    // Shards started together rebalance for a second or two (the first takes every free
    // partition, then hands the others their share): start the fleet once that settled.
    const balanced = await waitForBalance(
      shards.map((s) => ({ url: `http://127.0.0.1:${s.metricsPort}/metrics`, id: s.name })),
    );
    say(`shards: partitions owned ${balanced.join(' · ')}`);
  }

  const rel = (p: string): string => relative(process.cwd(), p) || '.';
  const first = shards[0];
  if (first === undefined) throw new Error('unreachable: no shard');
  // One shard is enough; with several the gRPC client fails over between them (any shard serves).
  const grpcAddr =
    shards.length === 1
      ? `127.0.0.1:${first.grpcPort}`
      : `ipv4:${shards.map((s) => `127.0.0.1:${s.grpcPort}`).join(',')}`;
  const runnerMetricsPort = await getFreePort();
  const runnerLog = join(runDir, 'runner.log');

  // Partition ownership per shard while the fleet runs (chaos stacks): the report's takeover times.
  const samples: OwnershipSample[] = [];
  let sampler: NodeJS.Timeout | null = null;
  const startSampling = (c: ChaosController): void => {
    let busy = false;
    let last = '';
    sampler = setInterval(() => {
      if (busy) return;
      busy = true;
      void Promise.all(shards.map((s) => ownedBy(`http://127.0.0.1:${s.metricsPort}/metrics`, s.name)))
        .then((counts) => {
          const owned: Record<string, number> = {};
          counts.forEach((n, i) => {
            const name = shards[i]?.name;
            if (n !== null && name !== undefined) owned[name] = n;
          });
          const key = JSON.stringify(owned);
          if (key !== last) samples.push({ atMs: c.elapsedMs(), owned });
          last = key;
        })
        .finally(() => (busy = false));
    }, 250);
  };
  const stopSampling = (): void => {
    if (sampler !== null) clearInterval(sampler);
    sampler = null;
  };

  // Set once the runner runs: reports a shard that dies when no fault killed it.
  let watchShard: (slot: ShardSlot) => void = () => undefined;

  // The chaos controller: plays the scenario's faults from the moment the fleet starts.
  let controller: ChaosController | null = null;
  let chaosMetrics: MetricsServer | null = null;
  let recoveryGauge: ((v: Verdict) => void) | null = null;
  if (fabric !== null) {
    const meter = createPromMeter({ defaultMetrics: false });
    const processes: ChaosProcess[] = [
      ...shards.map((slot) => ({
        name: slot.name,
        kill: () => slot.proc.kill('SIGKILL'),
        restart: async () => {
          await slot.proc.exited;
          const proc = slot.start();
          writeState();
          watchShard(slot);
          await proc.ready;
        },
        pause: () => slot.proc.kill('SIGSTOP'),
        resume: () => slot.proc.kill('SIGCONT'),
      })),
      // A restarted NATS node has a new pid: stack.json must name the live process.
      ...fabric.processes.map((p, i) => ({
        ...p,
        restart: async () => {
          await p.restart();
          const node = fabric?.cluster.nodes[i];
          const entry = 'nodes' in state.nats ? state.nats.nodes?.[i] : undefined;
          if (node !== undefined && entry !== undefined) entry.pid = node.pid();
          writeState();
        },
      })),
    ];
    controller = new ChaosController({ links: fabric.links, processes, meter, log: say });
    const recovery = meter.gauge({
      name: 'sphere_chaos_recovery_seconds',
      help: 'After each fault of the run (set when it ends): wall seconds until the devices that lost service were certified again (quantile 0.5, 0.99, 1), and until the other shards served every partition (quantile "takeover").',
      labelNames: ['fault', 'quantile'],
    });
    recoveryGauge = (v) => {
      for (const r of v.recoveries) {
        const set = (q: string, ms: number | null | undefined): void => {
          if (ms !== null && ms !== undefined) recovery.set({ fault: r.fault, quantile: q }, ms / 1000);
        };
        set('0.5', r.p50Ms);
        set('0.99', r.p99Ms);
        set('1', r.maxMs);
        set('takeover', r.takeoverMs);
      }
    };
    const c = controller;
    handles.push({ stop: () => c.stop(), kill: () => undefined });
    chaosMetrics = await meter.serveMetrics({ port: await getFreePort() });
    const control = await serveChaosControl(
      c,
      (input) => compileChaosFault(input, { shards: shardCount, natsNodes }),
      await getFreePort(),
    );
    handles.push({ stop: () => control.close(), kill: () => undefined });
    state.chaos = { metrics: chaosMetrics.url, control: control.url };
    writeState();
    const m = chaosMetrics;
    handles.push({ stop: () => m.close(), kill: () => undefined });
  }

  // 3. Prometheus (optional): scrapes the shards and the runner with deploy/prometheus/ rules.
  let prometheus: PrometheusHandle | null = null;
  let prometheusNote: string | null = null;
  if (cli.prometheus) {
    const binary = findPrometheus();
    if (binary === null) prometheusNote = PROMETHEUS_MISSING_HINT;
    else {
      // No extra target labels: the shard's own metrics carry `shard`; `instance` tells them apart.
      const targets: PrometheusTarget[] = shards.map((s) => ({
        address: `127.0.0.1:${s.metricsPort}`,
        role: 'shard',
      }));
      if (!cli.noRun) targets.push({ address: `127.0.0.1:${runnerMetricsPort}`, role: 'loadgen' });
      if (chaosMetrics !== null) targets.push({ address: new URL(chaosMetrics.url).host, role: 'chaos' });
      try {
        prometheus = await startPrometheus({
          binary,
          sourceDir: join(root, 'deploy/prometheus'),
          runDir,
          targets,
          logFile: join(runDir, 'prometheus.log'),
        });
        handles.push(prometheus);
        state.prometheus = {
          pid: prometheus.pid,
          url: prometheus.url,
          config: prometheus.files.configFile,
          log: prometheus.logFile,
        };
        writeState();
      } catch (err) {
        prometheusNote = `prometheus did not start (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); continuing without it, log ${rel(join(runDir, 'prometheus.log'))}`;
      }
    }
    if (interrupted) return ctl.shutdown(130);
  }

  say('');
  say('── sphere-fleet local stack ─────────────────────────────────────────');
  if (nats !== null) say(`  NATS         ${nats.url}   (JetStream, log ${rel(natsLog)})`);
  if (fabric !== null) {
    for (const n of fabric.cluster.nodes)
      say(
        `  nats-${n.index}       ${n.url}   (JetStream R${replicas}, monitor http://127.0.0.1:${n.monitorPort}, log ${rel(join(runDir, `nats-${n.index}.log`))})`,
      );
    say(`  links        ${fabric.links.length} TCP proxies (devices, shards and routes to every node)`);
  }
  for (const s of shards) {
    say(
      `  ${s.name.padEnd(12)} gRPC 127.0.0.1:${s.grpcPort}   metrics http://127.0.0.1:${s.metricsPort}/metrics`,
    );
    say(`               log ${rel(s.log)}`);
  }
  if (chaosMetrics !== null)
    say(
      `  chaos        ${chaos === null ? 'no faults (--no-chaos or no chaos section)' : `${chaos.faults.length} faults`}   metrics ${chaosMetrics.url}`,
    );
  if (cli.unsafeNoFencing)
    say('  UNSAFE       fencing is off (--unsafe-no-fencing): two shards may act for one partition');
  if (!cli.noRun) {
    say(`  runner       metrics http://127.0.0.1:${runnerMetricsPort}/metrics   log ${rel(runnerLog)}`);
    say(`  scenario     ${rel(cli.scenario)}`);
  }
  if (prometheus !== null)
    say(
      `  prometheus   ${prometheus.url}   (config ${rel(prometheus.files.dir)}, log ${rel(prometheus.logFile)})`,
    );
  else if (prometheusNote !== null) say(`  prometheus   ${prometheusNote}`);
  say(`  admin token  ${rel(tokenFile)}`);
  say(`  results      ${rel(join(runDir, 'results'))}`);
  say(`  state        ${rel(join(runDir, 'stack.json'))}`);
  say('─────────────────────────────────────────────────────────────────────');
  say('');

  let code = 0;
  if (!cli.noRun) {
    const outDir = join(runDir, 'results');
    mkdirSync(outDir, { recursive: true });
    const runnerStartedAt = Date.now();
    const runner = spawnManaged(
      'runner',
      process.execPath,
      [
        runnerMain,
        'run',
        cli.scenario,
        '--nats',
        natsFor('devices'),
        '--grpc',
        grpcAddr,
        '--admin-token-file',
        tokenFile,
        '--metrics-port',
        String(runnerMetricsPort),
        '--out',
        outDir,
      ],
      {
        cwd: root,
        passthrough: true,
        logFile: runnerLog,
        onLine: (line) => {
          if (controller === null || !line.startsWith(FLEET_STARTED)) return;
          if (chaos !== null) controller.play(chaos.faults);
          startSampling(controller);
        },
      },
    );
    handles.push(runner);
    state.runner = {
      pid: runner.pid,
      metrics: `http://127.0.0.1:${runnerMetricsPort}/metrics`,
      log: runnerLog,
    };
    writeState();
    // A shard dying mid-run is an error (unless a chaos fault killed it): stop the runner.
    watchShard = (slot) => {
      const proc = slot.proc;
      void proc.exited.then((info) => {
        if (runner.isRunning() && !interrupted && controller?.isDown(slot.name) !== true) {
          fail(
            `${proc.name} exited (code ${info.code ?? 'null'}, signal ${info.signal ?? 'none'}) during the run; see ${rel(slot.log)}`,
          );
          void runner.stop();
        }
      });
    };
    for (const s of shards) watchShard(s);
    const info = await runner.exited;
    if (interrupted) return ctl.shutdown(130);
    code = info.code ?? 1;
    if (controller !== null) {
      // End the timeline (faults meant to last stay), then judge the run on what was recorded.
      await controller.stop();
      stopSampling();
      const spans = takeoverTimes(controller.spans(), chaos?.faults ?? [], samples, 64);
      writeFileSync(
        join(outDir, 'chaos-timeline.json'),
        `${JSON.stringify({ faults: spans, events: controller.events(), ownership: samples }, null, 2)}\n`,
      );
      try {
        const verdict = await judgeRun(outDir, spans, fabric, scenario, replicas);
        say('');
        say(renderVerdict(verdict));
        writeFileSync(join(outDir, 'verdict.json'), `${JSON.stringify(verdict, null, 2)}\n`);
        recoveryGauge?.(verdict);
        if (!verdict.pass && code === 0) code = 99;
      } catch (err) {
        fail(`could not judge the run: ${err instanceof Error ? err.message : String(err)}`);
        if (code === 0) code = 1;
      }
    }
    if (prometheus !== null) {
      // What Prometheus itself recorded of the rollouts (after one more scrape), so a user sees
      // the metrics pipeline end to end; also written to results/prometheus-rollouts.json.
      try {
        const rollouts = await queryRollouts(prometheus.url, Date.now());
        if (rollouts.length > 0) {
          say('');
          for (const line of renderPrometheusRollouts(prometheus.url, rollouts)) say(line);
          writeFileSync(join(outDir, 'prometheus-rollouts.json'), `${JSON.stringify(rollouts, null, 2)}\n`);
          const mix = await queryVersionMix(prometheus.url, runnerStartedAt, Date.now());
          for (const line of renderVersionMix(mix)) say(line);
          writeFileSync(join(outDir, 'prometheus-versions.json'), `${JSON.stringify(mix, null, 2)}\n`);
        }
      } catch (err) {
        say(
          `stack: could not read the rollouts back from Prometheus: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    say('');
    say(
      code === 0
        ? 'stack: scenario passed (exit 0)'
        : code === 99
          ? 'stack: scenario ran but a threshold or the verdict failed (exit 99)'
          : `stack: scenario runner failed (exit ${info.code ?? `signal ${info.signal ?? '?'}`}); log ${rel(runnerLog)}`,
    );
  }

  if (cli.keepRunning) {
    say('stack: keeping the stack running; press Ctrl-C to stop.');
    await new Promise<never>(() => {
      // Keep the event loop alive until a signal handler exits the process.
      setInterval(() => undefined, 1 << 30);
    });
  }
  await ctl.stopAll();
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`stack: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
