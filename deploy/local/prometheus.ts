/**
 * Optional Prometheus for the local stack: finds a `prometheus` binary, copies the repo's
 * `deploy/prometheus/` config (prometheus.yml + rules) into a run directory, writes the file_sd
 * targets (`targets/sphere.json`) and starts the server as a managed process.
 *
 * Only node builtins (and ./processes.js, ./nats.js) are imported: tests use this file directly.
 */
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getFreePort } from './nats.js';
import { findExecutable } from './executables.js';
import { spawnManaged } from './processes.js';
import type { ExitInfo, ManagedProcess, Stoppable } from './processes.js';

/** Directories searched (after `$PROMETHEUS` and `$PATH`) for a `prometheus` binary. */
export const PROMETHEUS_SEARCH_DIRS: readonly string[] = ['/usr/bin', '/usr/local/bin', '/usr/sbin'];

/** One line for the stack's output when no binary was found. */
export const PROMETHEUS_MISSING_HINT =
  'prometheus not found ($PROMETHEUS, $PATH, /usr/bin): install it with `sudo apt-get install -y prometheus` ' +
  '(or set PROMETHEUS=/path/to/prometheus) to get metrics, rules and alerts; continuing without it.';

/**
 * Locate the `prometheus` binary. `$PROMETHEUS` (non-empty) is authoritative: returned when it is
 * an executable file, otherwise `null`. Without it, `$PATH` then {@link PROMETHEUS_SEARCH_DIRS}.
 */
export function findPrometheus(): string | null {
  return findExecutable('prometheus', 'PROMETHEUS', PROMETHEUS_SEARCH_DIRS);
}

/** A scrape target for the file_sd targets file. */
export interface PrometheusTarget {
  /** `host:port` serving `/metrics`. */
  readonly address: string;
  /** What serves it: a shard, the loadgen, or the stack's chaos controller. */
  readonly role: 'shard' | 'loadgen' | 'chaos';
  /** Extra target labels (e.g. `{ shard: '0' }`). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Where {@link writePrometheusConfig} put things. */
export interface PrometheusConfigFiles {
  readonly dir: string;
  readonly configFile: string;
  readonly targetsFile: string;
}

/** The file_sd JSON for `targets` (one target group per target). */
export function targetsJson(targets: readonly PrometheusTarget[]): string {
  const groups = targets.map((t) => ({
    targets: [t.address],
    labels: { ...t.labels, role: t.role },
  }));
  return `${JSON.stringify(groups, null, 2)}\n`;
}

/** (Re)writes `<dir>/targets/sphere.json`; Prometheus picks up changes within its refresh interval. */
export function writeTargets(dir: string, targets: readonly PrometheusTarget[]): string {
  mkdirSync(join(dir, 'targets'), { recursive: true });
  const file = join(dir, 'targets', 'sphere.json');
  writeFileSync(file, targetsJson(targets));
  return file;
}

/**
 * Copies `<sourceDir>/prometheus.yml` and `<sourceDir>/rules/*.yml` into `dir` and writes the
 * targets file next to them (the config reads `targets/*.json` relative to itself).
 */
export function writePrometheusConfig(
  sourceDir: string,
  dir: string,
  targets: readonly PrometheusTarget[],
): PrometheusConfigFiles {
  mkdirSync(join(dir, 'rules'), { recursive: true });
  const configFile = join(dir, 'prometheus.yml');
  copyFileSync(join(sourceDir, 'prometheus.yml'), configFile);
  for (const f of readdirSync(join(sourceDir, 'rules')))
    if (f.endsWith('.yml') || f.endsWith('.yaml'))
      copyFileSync(join(sourceDir, 'rules', f), join(dir, 'rules', f));
  const targetsFile = writeTargets(dir, targets);
  return { dir, configFile, targetsFile };
}

/** Options for {@link startPrometheus}. */
export interface StartPrometheusOptions {
  /** Path of the binary (see {@link findPrometheus}). */
  readonly binary: string;
  /** Directory holding prometheus.yml and rules/ (the repo's `deploy/prometheus`). */
  readonly sourceDir: string;
  /** Config copy + targets go to `configDir`; default `<runDir>/prometheus-config`. */
  readonly runDir: string;
  readonly configDir?: string;
  /** TSDB directory; default `<runDir>/prometheus`. */
  readonly dataDir?: string;
  readonly targets: readonly PrometheusTarget[];
  /** Output of the server; default `<runDir>/prometheus.log`. */
  readonly logFile?: string;
  /** Default 30 000 ms. */
  readonly readyTimeoutMs?: number;
}

/** A running Prometheus. `stop()` is graceful (SIGTERM, SIGKILL after 5 s) and idempotent. */
export interface PrometheusHandle extends Stoppable {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly files: PrometheusConfigFiles;
  readonly dataDir: string;
  readonly logFile: string;
  readonly proc: ManagedProcess;
  /** Replace the scraped targets. */
  setTargets(targets: readonly PrometheusTarget[]): void;
  stop(): Promise<ExitInfo>;
}

/**
 * Writes the config into the run directory and starts Prometheus on a free 127.0.0.1 port;
 * resolves once it logs "Server is ready to receive web requests". Rejects (with the last output
 * lines) if it exits first or is not ready in time; a port race is retried up to 3 times.
 */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<PrometheusHandle> {
  const files = writePrometheusConfig(
    opts.sourceDir,
    opts.configDir ?? join(opts.runDir, 'prometheus-config'),
    opts.targets,
  );
  const dataDir = opts.dataDir ?? join(opts.runDir, 'prometheus');
  const logFile = opts.logFile ?? join(opts.runDir, 'prometheus.log');
  mkdirSync(dataDir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const port = await getFreePort();
    let portInUse = false;
    const proc = spawnManaged(
      'prometheus',
      opts.binary,
      [
        `--config.file=${files.configFile}`,
        `--storage.tsdb.path=${dataDir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=info',
      ],
      {
        cwd: files.dir,
        ready: /Server is ready to receive web requests/,
        readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
        logFile,
        onLine: (line) => {
          if (/address already in use/i.test(line)) portInUse = true;
        },
      },
    );
    try {
      await proc.ready;
    } catch (err) {
      await proc.stop();
      if (portInUse && attempt < 3) continue;
      throw err;
    }
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      pid: proc.pid,
      files,
      dataDir,
      logFile,
      proc,
      setTargets: (targets) => void writeTargets(files.dir, targets),
      stop: () => proc.stop(),
      kill: (signal) => proc.kill(signal),
    };
  }
}

/** One rollout as Prometheus recorded it (`sphere_rollout_*` series of the shards). */
export interface PrometheusRollout {
  readonly deployment: string;
  readonly state: string;
  readonly currentWave: number;
  /** Devices by state per wave (wave 0: not yet assigned to a wave), zero counts left out. */
  readonly waves: ReadonlyArray<{
    readonly wave: number;
    readonly devices: Readonly<Record<string, number>>;
  }>;
}

interface PromVector {
  readonly status: string;
  readonly data?: {
    readonly result: ReadonlyArray<{ metric: Record<string, string>; value: [number, string] }>;
  };
}

async function instantQuery(url: string, query: string): Promise<PromVector['data'] & object> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as PromVector;
  if (body.status !== 'success' || body.data === undefined)
    throw new Error(`prometheus query ${query} failed`);
  return body.data;
}

/**
 * Reads the rollouts from Prometheus's own storage (what its scrapes recorded), waiting until it
 * has scraped once after `afterMs` (wall) so the final states are in. Empty when no shard exported
 * a rollout.
 */
export async function queryRollouts(
  url: string,
  afterMs: number,
  timeoutMs = 15_000,
): Promise<PrometheusRollout[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = await instantQuery(url, 'max(timestamp(sphere_rollout_current_wave))');
    // Rollout series exist from a deployment's creation on: none means the run had no rollouts.
    if (fresh.result.length === 0) return [];
    const at = Number(fresh.result[0]?.value[1] ?? 0) * 1000;
    if (at >= afterMs || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const [states, waves, devices] = await Promise.all([
    instantQuery(url, 'sphere_rollout_state == 1'),
    instantQuery(url, 'sphere_rollout_current_wave'),
    instantQuery(url, 'sphere_rollout_devices > 0'),
  ]);
  const byDeployment = new Map<
    string,
    { state: string; currentWave: number; waves: Map<number, Record<string, number>> }
  >();
  const entry = (d: string) => {
    let e = byDeployment.get(d);
    if (e === undefined) byDeployment.set(d, (e = { state: '?', currentWave: 0, waves: new Map() }));
    return e;
  };
  for (const s of states.result) entry(s.metric['deployment'] ?? '?').state = s.metric['state'] ?? '?';
  for (const w of waves.result) entry(w.metric['deployment'] ?? '?').currentWave = Number(w.value[1]);
  for (const d of devices.result) {
    const e = entry(d.metric['deployment'] ?? '?');
    const wave = Number(d.metric['wave'] ?? 0);
    const counts = e.waves.get(wave) ?? {};
    counts[d.metric['state'] ?? '?'] = Number(d.value[1]);
    e.waves.set(wave, counts);
  }
  return [...byDeployment]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([deployment, e]) => ({
      deployment,
      state: e.state,
      currentWave: e.currentWave,
      waves: [...e.waves].sort(([a], [b]) => a - b).map(([wave, counts]) => ({ wave, devices: counts })),
    }));
}

/** Devices per OS or app version as Prometheus recorded them over a run: the most at any scrape, and the last. */
export interface PrometheusVersionMix {
  /** `os <version>` or `app <name> <version>`. */
  readonly version: string;
  readonly most: number;
  readonly last: number;
}

/**
 * Reads `sphere_devices_by_os_version` and `sphere_devices_by_app_version` over `[fromMs, toMs]`
 * (wall) from Prometheus's storage: how the version mix moved while the rollouts ran.
 */
export async function queryVersionMix(
  url: string,
  fromMs: number,
  toMs: number,
): Promise<PrometheusVersionMix[]> {
  const step = Math.max(1, Math.ceil((toMs - fromMs) / 1000 / 500));
  const range = async (query: string) => {
    const params = new URLSearchParams({
      query,
      start: String(fromMs / 1000),
      end: String(toMs / 1000),
      step: String(step),
    });
    const res = await fetch(`${url}/api/v1/query_range?${params.toString()}`);
    const body = (await res.json()) as {
      status: string;
      data?: { result: ReadonlyArray<{ metric: Record<string, string>; values: [number, string][] }> };
    };
    if (body.status !== 'success' || body.data === undefined)
      throw new Error(`prometheus query ${query} failed`);
    return body.data.result;
  };
  const [os, apps] = await Promise.all([
    range('sum by (os_version) (sphere_devices_by_os_version)'),
    range('sum by (app, version) (sphere_devices_by_app_version)'),
  ]);
  const mix = (label: string, values: readonly [number, string][]): PrometheusVersionMix => ({
    version: label,
    most: Math.max(0, ...values.map(([, v]) => Number(v))),
    last: Number(values.at(-1)?.[1] ?? 0),
  });
  return [
    ...os.map((r) => mix(`os ${r.metric['os_version'] ?? '?'}`, r.values)),
    ...apps.map((r) => mix(`app ${r.metric['app'] ?? '?'} ${r.metric['version'] ?? '?'}`, r.values)),
  ].sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }));
}

/** Lines for the version mix in the stack's closing block. */
export function renderVersionMix(mix: readonly PrometheusVersionMix[]): string[] {
  if (mix.length === 0) return [];
  const width = Math.max(...mix.map((m) => m.version.length));
  return [
    'Devices by version (most at any scrape → last):',
    ...mix.map((m) => `  ${m.version.padEnd(width)}  ${String(m.most).padStart(6)} → ${m.last}`),
  ];
}

/** Lines for the stack's closing "what Prometheus saw" block. */
export function renderPrometheusRollouts(url: string, rollouts: readonly PrometheusRollout[]): string[] {
  const lines = [
    `Prometheus (${url}) recorded ${rollouts.length} rollout${rollouts.length === 1 ? '' : 's'}:`,
  ];
  for (const r of rollouts) {
    lines.push(`  ${r.deployment}  ${r.state}  (current wave ${r.currentWave})`);
    for (const w of r.waves) {
      const counts = Object.entries(w.devices)
        .map(([state, n]) => `${state} ${n}`)
        .join(' · ');
      lines.push(`    ${w.wave === 0 ? 'unassigned' : `wave ${w.wave}`}  ${counts}`);
    }
  }
  return lines;
}
