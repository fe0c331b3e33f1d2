/**
 * bench:failover — how fast the sharded service comes back, on the real chaos stack (3 NATS
 * nodes with JetStream R3, 3 shard processes, 2,000 devices attesting continuously; scenario
 * deploy/bench/failover.yaml):
 *
 * - takeover after a shard's death: from `kill -9` of a shard until the two others serve all 64
 *   partitions (sampled from their `sphere_shard_partitions_owned` every 250 ms), against the
 *   lease TTL (a dead shard's lease must expire before anyone may take over: the floor);
 * - takeover after a shard is cut off from NATS (same measure);
 * - re-attestation after a heal: from the end of a partition of every device link until 99% of the
 *   devices that lost service are certified again, against the p99 attestation latency measured in
 *   the same run (what one attestation costs when nothing is broken).
 *
 * Last line:  BENCH failover takeover_ms=.. lease_ttl_ms=.. ratio=.. cut_takeover_ms=.. heal_p99_ms=.. attest_p99_ms=.. heal_ratio=.. affected=..
 *
 * Usage: node dist/deploy/bench/failover.js [--keep]   (--keep: leave the run directory)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { RunSummary } from '../../loadgen/report/index.js';
import { CHAOS_DEFAULTS, loadScenarioFile } from '../../loadgen/scenario/index.js';
import type { FaultSpan, Verdict } from '../../loadgen/verdict/index.js';
import { spawnManaged } from '../local/processes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false } } });
const runs = mkdtempSync(join(tmpdir(), 'sphere-bench-failover-'));
const scenario = join(root, 'deploy/bench/failover.yaml');
const LEASE_TTL_MS = (await loadScenarioFile(scenario)).chaos?.leaseTtlMs ?? CHAOS_DEFAULTS.leaseTtlMs;

const say = (s: string): void => void process.stdout.write(`${s}\n`);
say(`bench:failover: running ${scenario} on the chaos stack (about 2 minutes)...`);
const t0 = performance.now();
const stack = spawnManaged(
  'stack',
  process.execPath,
  [join(root, 'dist/deploy/local/stack.js'), scenario, '--no-prometheus'],
  { cwd: root, env: { ...process.env, SPHERE_RUNS_DIR: runs } },
);
const exit = await stack.exited;
const [dir] = readdirSync(runs);
if (dir === undefined || exit.code !== 0) {
  process.stderr.write(
    `${stack.tail(60).join('\n')}\nbench:failover: the stack run failed (exit ${exit.code ?? exit.signal})\n`,
  );
  process.exit(1);
}
const results = join(runs, dir, 'results');
const read = <T>(f: string): T => JSON.parse(readFileSync(join(results, f), 'utf8')) as T;
const verdict = read<Verdict>('verdict.json');
const summary = read<RunSummary>('summary.json');
const faults = read<{ faults: FaultSpan[] }>('chaos-timeline.json').faults;
const byLabel = (prefix: string): FaultSpan | undefined => faults.find((f) => f.label.startsWith(prefix));
const kill = byLabel('kill shard-1');
const cut = byLabel('partition shard-2');
const heal = verdict.recoveries.find((r) => r.fault.startsWith('partition devices'));
const takeover = kill?.takeoverMs ?? null;
const cutTakeover = cut?.takeoverMs ?? null;
const healP99 = heal?.p99Ms ?? null;
const attestP99 = summary.latency.attest.p99;
const fmt = (ms: number | null): string => (ms === null ? 'never' : `${(ms / 1000).toFixed(2)} s`);

say(
  `verdict: ${verdict.pass ? 'PASS' : 'FAIL'} (${
    verdict.checks
      .filter((c) => !c.pass)
      .map((c) => c.id)
      .join(', ') || 'all checks passed'
  })`,
);
say(
  `run took ${((performance.now() - t0) / 1000).toFixed(0)} s wall; devices attested at the end ${summary.devices.attested}/${summary.devices.total}`,
);
say('');
say(`takeover after kill -9 of shard-1     ${fmt(takeover)}   (lease TTL ${fmt(LEASE_TTL_MS)}: the floor)`);
say(`takeover after shard-2 cut from NATS  ${fmt(cutTakeover)}`);
say(
  `re-attested after the device links healed: ${heal?.recovered ?? 0} of ${heal?.affected ?? 0} devices that lost service;`,
);
say(
  `  p50 ${fmt(heal?.p50Ms ?? null)}, p99 ${fmt(healP99)}, max ${fmt(heal?.maxMs ?? null)}   (p99 attestation latency of the run ${attestP99 === null ? '-' : `${attestP99.toFixed(0)} ms`})`,
);
if (values.keep) say(`run directory kept: ${join(runs, dir)}`);
else rmSync(runs, { recursive: true, force: true });
const num = (x: number | null): string => (x === null ? 'NaN' : x.toFixed(0));
say(
  `BENCH failover takeover_ms=${num(takeover)} lease_ttl_ms=${LEASE_TTL_MS} ratio=${takeover === null ? 'NaN' : (takeover / LEASE_TTL_MS).toFixed(2)} ` +
    `cut_takeover_ms=${num(cutTakeover)} heal_p99_ms=${num(healP99)} attest_p99_ms=${num(attestP99)} ` +
    `heal_ratio=${healP99 === null || attestP99 === null || attestP99 === 0 ? 'NaN' : (healP99 / attestP99).toFixed(2)} affected=${heal?.affected ?? 0} verdict=${verdict.pass ? 'pass' : 'fail'}`,
);
process.exit(verdict.pass ? 0 : 99);
