import { spawnSync } from 'node:child_process';
import type { SpawnSyncReturns } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPromMeter } from '../../../actors/runtime/index.js';
import type { MetricsServer } from '../../../actors/runtime/index.js';
import { findPrometheus, startPrometheus } from '../../../deploy/local/prometheus.js';
import type { PrometheusHandle } from '../../../deploy/local/prometheus.js';
import { repoRoot } from '../../fixtures/processes.js';

// Checks deploy/prometheus (config, rules, rule unit tests) with promtool, the Grafana dashboard's
// queries against the metric contract, and a real Prometheus scraping a prom-client registry
// through the file_sd targets written by deploy/local/prometheus.ts.

const PROM_DIR = join(repoRoot, 'deploy/prometheus');
const DASHBOARD = join(repoRoot, 'deploy/grafana/sphere-fleet.json');

function findPromtool(): string | null {
  const override = process.env['PROMTOOL'];
  if (override !== undefined && override !== '') return existsSync(override) ? override : null;
  const dirs = [
    ...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''),
    '/usr/bin',
    '/usr/local/bin',
  ];
  for (const d of dirs) if (existsSync(join(d, 'promtool'))) return join(d, 'promtool');
  return null;
}

function promtool(args: string[], cwd = repoRoot): SpawnSyncReturns<string> {
  const bin = findPromtool();
  if (bin === null)
    throw new Error(
      'promtool not found ($PROMTOOL, $PATH, /usr/bin): install it with `sudo apt-get install -y prometheus` ' +
        '(Debian ships promtool in the prometheus package); CI installs it.',
    );
  return spawnSync(bin, args, { cwd, encoding: 'utf8', timeout: 60_000 });
}

function expectOk(r: SpawnSyncReturns<string>): void {
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.error, out).toBeUndefined();
  expect(r.status, out).toBe(0);
}

const ymlIn = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yml'))
    .sort()
    .map((f) => join(dir, f));

// Metric names the dashboard may use: the shard/loadgen/rollout contract and our recording rules.
const CONTRACT_METRICS = [
  'sphere_attestations_total',
  'sphere_attestation_duration_seconds_bucket',
  'sphere_challenges_total',
  'sphere_certificates_issued_total',
  'sphere_devices',
  'sphere_devices_by_os_version',
  'sphere_alerts_total',
  'sphere_request_duration_seconds_bucket',
  'sphere_grpc_requests_total',
  'sphere_shard_partitions_owned',
  'sphere_attestations_in_flight',
  'sphere_crypto_pool_queue_depth',
  'sphere_crypto_pool_utilization',
  'sphere_loadgen_attestations_total',
  'sphere_loadgen_attest_latency_seconds_bucket',
  'sphere_loadgen_devices',
  'sphere_rollout_devices',
  'sphere_rollout_state',
  'sphere_rollout_current_wave',
  'sphere_rollout_wave_transitions_total',
  'sphere_update_installs_total',
  'sphere_devices_by_version',
];
const RECORDING_RULES = [
  'sphere:attestations:rate1m',
  'sphere:attestations_rejected:ratio_rate5m',
  'sphere:attestation_latency_seconds:p50_1m',
  'sphere:attestation_latency_seconds:p99_1m',
  'sphere:loadgen_attest_latency_seconds:p99_1m',
  'sphere:alerts:rate1m',
  'sphere:request_latency_seconds:p99_1m',
  'sphere:rollout_devices:by_state',
  'sphere:rollout_devices:final',
  'sphere:rollout_failure_ratio',
  'sphere:update_installs:rate5m',
];
const ALERTS = [
  'SphereRolloutHalted',
  'SphereRolloutStalled',
  'SphereRolloutFailureRateHigh',
  'SphereAttestationRejectionsHigh',
  'SphereSecurityAlerts',
  'SphereCryptoPoolSaturated',
  'SphereShardDown',
  'SpherePartitionTwoOwners',
  'SphereAlertWebhookFailing',
];

interface Panel {
  type: string;
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
}

const dashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
function dashboardExprs(d: Dashboard): { title: string; expr: string }[] {
  const out: { title: string; expr: string }[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? [])
        if (t.expr !== undefined) out.push({ title: p.title ?? '', expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
}

describe('prometheus - behaviour', () => {
  describe('promtool', () => {
    it('check config: prometheus.yml is valid (with a targets dir present, in a temp copy)', () => {
      const dir = mkdtempSync(join(tmpdir(), 'sphere-promcfg-'));
      try {
        cpSync(join(PROM_DIR, 'prometheus.yml'), join(dir, 'prometheus.yml'));
        cpSync(join(PROM_DIR, 'rules'), join(dir, 'rules'), { recursive: true });
        mkdirSync(join(dir, 'targets'));
        writeFileSync(
          join(dir, 'targets', 'sphere.json'),
          JSON.stringify([{ targets: ['127.0.0.1:9464'], labels: { role: 'shard' } }]),
        );
        const r = promtool(['check', 'config', 'prometheus.yml'], dir);
        expectOk(r);
        expect(r.stdout).toMatch(/SUCCESS: 2 rule files found/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('check config: the repo copy is valid as is', () => {
      expectOk(promtool(['check', 'config', join(PROM_DIR, 'prometheus.yml')]));
    });

    it('check rules: every rules file is valid', () => {
      const files = ymlIn(join(PROM_DIR, 'rules'));
      expect(files.map((f) => f.split('/').pop())).toEqual(['alerts.yml', 'recording.yml']);
      for (const f of files) expectOk(promtool(['check', 'rules', f]));
    });

    it('test rules: every unit test file passes', () => {
      const files = ymlIn(join(PROM_DIR, 'tests'));
      expect(files.length).toBeGreaterThanOrEqual(2);
      const r = promtool(['test', 'rules', ...files]);
      expectOk(r);
      expect(r.stdout).not.toMatch(/FAILED/);
    });

    it('rules define the documented recording rules and alerts, and every alert has unit tests', () => {
      const recording = readFileSync(join(PROM_DIR, 'rules/recording.yml'), 'utf8');
      const alerts = readFileSync(join(PROM_DIR, 'rules/alerts.yml'), 'utf8');
      const tests = ymlIn(join(PROM_DIR, 'tests'))
        .map((f) => readFileSync(f, 'utf8'))
        .join('\n');
      const recorded = [...recording.matchAll(/^\s*- record: (\S+)/gm)].map((m) => m[1]);
      expect(recorded.sort()).toEqual([...RECORDING_RULES].sort());
      const alertNames = [...alerts.matchAll(/^\s*- alert: (\S+)/gm)].map((m) => m[1]);
      expect(alertNames.sort()).toEqual([...ALERTS].sort());
      for (const a of ALERTS) {
        // A firing case (non-empty exp_alerts) and a quiet case (exp_alerts: []).
        const blocks = tests.split(/\n\s*- eval_time:/).filter((b) => b.includes(`alertname: ${a}\n`));
        expect(
          blocks.some((b) => /exp_alerts:\s*\[\]/.test(b)),
          `${a}: no not-firing case`,
        ).toBe(true);
        expect(
          blocks.some((b) => /exp_alerts:\s*\n\s*- exp_labels/.test(b)),
          `${a}: no firing case`,
        ).toBe(true);
      }
      for (const r of [
        'sphere:attestations:rate1m',
        'sphere:rollout_failure_ratio',
        'sphere:update_installs:rate5m',
      ])
        expect(tests, `no unit test for ${r}`).toContain(`expr: ${r}\n`);
    });
  });

  describe('grafana dashboard', () => {
    it('parses, has the three rows and a datasource input/variable', () => {
      const d = dashboard();
      expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
      expect(d.panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
        'Attestation',
        'Rollouts',
        'Service',
      ]);
      const vars = d.templating.list.map((v) => `${v.name}:${v.type}`);
      expect(vars).toContain('DS_PROMETHEUS:datasource');
      expect(vars).toContain('deployment:query');
      const raw = readFileSync(DASHBOARD, 'utf8');
      expect(raw).toContain('"uid": "${DS_PROMETHEUS}"');
    });

    it('only queries contract metrics and defined recording rules', () => {
      const exprs = dashboardExprs(dashboard());
      expect(exprs.length).toBeGreaterThan(20);
      const allowed = new Set([...CONTRACT_METRICS, ...RECORDING_RULES]);
      const used = new Set<string>();
      for (const { title, expr } of exprs) {
        const names = [...expr.matchAll(/sphere:[a-z_:0-9]+|sphere_[a-z_]+/g)].map((m) => m[0]);
        // Scrape health (`up`) is the only non-sphere series a panel may show.
        if (names.length === 0)
          expect(expr, `panel "${title}" queries no sphere metric`).toMatch(/^up\{job=~"sphere-/);
        for (const n of names) {
          expect(allowed.has(n), `panel "${title}" uses unknown metric ${n}`).toBe(true);
          used.add(n);
        }
      }
      // The rollout row really uses the rollout contract and the deployment variable.
      for (const n of ['sphere_rollout_devices', 'sphere_rollout_state', 'sphere_rollout_current_wave'])
        expect(used.has(n), n).toBe(true);
      expect(exprs.filter((e) => e.expr.includes('deployment=~"$deployment"')).length).toBeGreaterThanOrEqual(
        4,
      );
    });
  });

  describe('real scrape', () => {
    const binary = findPrometheus();
    const cleanup: (() => Promise<unknown>)[] = [];
    afterAll(async () => {
      for (const c of cleanup.reverse()) await c().catch(() => undefined);
    });

    it.skipIf(binary === null)(
      binary === null
        ? 'SKIPPED: no prometheus binary ($PROMETHEUS, $PATH, /usr/bin); install with `apt-get install prometheus`'
        : 'a real Prometheus scrapes a prom-client registry through the file_sd targets',
      async () => {
        if (binary === null) return;
        const meter = createPromMeter();
        meter
          .counter({ name: 'sphere_attestations_total', help: 'x', labelNames: ['result', 'reason'] })
          .inc({ result: 'ok', reason: 'OK' }, 3);
        meter.gauge({ name: 'sphere_crypto_pool_utilization', help: 'x' }).set(0.25);
        const server: MetricsServer = await meter.serveMetrics({ port: 0 });
        cleanup.push(() => server.close());
        const runDir = mkdtempSync(join(tmpdir(), 'sphere-prom-'));
        cleanup.push(() => {
          rmSync(runDir, { recursive: true, force: true });
          return Promise.resolve();
        });
        const prom: PrometheusHandle = await startPrometheus({
          binary,
          sourceDir: PROM_DIR,
          runDir,
          targets: [{ address: `127.0.0.1:${server.port}`, role: 'shard', labels: { stack: 'test' } }],
          readyTimeoutMs: 20_000,
        });
        cleanup.push(() => prom.stop());
        expect(readFileSync(prom.files.targetsFile, 'utf8')).toContain(`127.0.0.1:${server.port}`);

        const get = async (path: string): Promise<{ status: string; data: unknown }> => {
          const res = await fetch(`${prom.url}${path}`);
          return (await res.json()) as { status: string; data: unknown };
        };
        interface Target {
          labels: Record<string, string>;
          health: string;
          lastError: string;
        }
        const deadline = Date.now() + 20_000;
        let targets: Target[] = [];
        for (;;) {
          targets = (
            ((await get('/api/v1/targets')).data as { activeTargets: Target[] }).activeTargets ?? []
          ).filter((t) => t.labels['job'] === 'sphere-shard');
          if (targets.some((t) => t.health === 'up')) break;
          if (Date.now() > deadline) throw new Error(`target never up: ${JSON.stringify(targets)}`);
          await new Promise((r) => setTimeout(r, 250));
        }
        // Only the shard job picked it up (role relabeling), with the file_sd labels attached.
        expect(targets).toHaveLength(1);
        expect(targets[0]?.labels).toMatchObject({ job: 'sphere-shard', role: 'shard', stack: 'test' });

        const query = async (
          q: string,
        ): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
          const r = await get(`/api/v1/query?query=${encodeURIComponent(q)}`);
          expect(r.status).toBe('success');
          return (r.data as { result: { metric: Record<string, string>; value: [number, string] }[] }).result;
        };
        const up = await query('up');
        expect(up).toHaveLength(1);
        expect(up[0]?.metric['job']).toBe('sphere-shard');
        expect(up[0]?.value[1]).toBe('1');
        const att = await query('sphere_attestations_total');
        expect(att[0]?.value[1]).toBe('3');

        // Rules are loaded from the copied config.
        const rules = (await get('/api/v1/rules')).data as { groups: { rules: { name: string }[] }[] };
        const names = rules.groups.flatMap((g) => g.rules.map((r) => r.name));
        for (const n of [...RECORDING_RULES, ...ALERTS]) expect(names).toContain(n);

        // Every dashboard query is valid PromQL for this Prometheus.
        for (const { title, expr } of dashboardExprs(dashboard())) {
          const r = await get(
            `/api/v1/query?query=${encodeURIComponent(expr.replaceAll('$deployment', '.*'))}`,
          );
          expect(r.status, `panel "${title}": ${expr}`).toBe('success');
        }
      },
      30_000,
    );
  });
});
