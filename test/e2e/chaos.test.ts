/**
 * Chaos end to end: the local stack (deploy/local/stack.ts) on a 3-node nats-server cluster with
 * 2 shard processes, every link through a chaos proxy, runs a scenario whose timeline holds every
 * fault kind once (test/e2e/fixtures/chaos-small.yaml), and the verdict passes; then, with the
 * shards' fencing turned off (--unsafe-no-fencing), a shard cut off from NATS past its lease
 * (test/e2e/fixtures/chaos-unfenced.yaml) makes the verdict's single-owner check fail (exit 99).
 * Neither run may leave a process behind, restarted ones included.
 *
 * About 2.5 minutes of wall time (a 90 s and a 40 s scenario, plus start and verdict).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { distPath, pidAlive, repoRoot, useProcesses } from '../fixtures/processes.js';
import type { ChaosEvent } from '../../deploy/chaos/controller.js';
import type { RunSummary } from '../../loadgen/report/index.js';
import type { FaultSpan, Verdict } from '../../loadgen/verdict/index.js';

const runsDir = mkdtempSync(join(tmpdir(), 'sphere-chaos-e2e-'));
afterAll(() => rmSync(runsDir, { recursive: true, force: true }));

const procs = useProcesses();

/** `/proc/<pid>/stat` fields after the command name: [state, ppid, ..., starttime at index 19]. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Every live descendant of `root`, with its start time (to tell a reused pid apart). */
function descendants(root: number): Map<number, string> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1] ?? -1);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const found = new Map<number, string>();
  const queue = [...(children.get(root) ?? [])];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    const start = statFields(pid)?.[19];
    if (start !== undefined) found.set(pid, start);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** Whether `pid` still runs the process seen earlier (`start`: its start time, when known). */
function stillRunning(pid: number, start: string | undefined): boolean {
  if (!pidAlive(pid)) return false;
  return start === undefined || statFields(pid)?.[19] === start;
}

interface StackJson {
  nats: { nodes?: { name: string; pid: number }[]; pid?: number };
  shards: { pid: number }[];
  runner: { pid: number } | null;
}

interface ChaosTimeline {
  faults: FaultSpan[];
  events: ChaosEvent[];
}

interface StackRun {
  code: number | null;
  /** The stack's whole output (its own lines, the runner's report and the verdict). */
  output: string;
  runDir: string;
  summary: RunSummary;
  verdict: Verdict;
  timeline: ChaosTimeline;
  /** Every process of the run: seen under the stack while it ran, in stack.json, in the NATS logs. */
  processes: Map<number, string | undefined>;
}

/**
 * Runs the stack on `scenario` to completion (with `args`, without Prometheus), watching the
 * process tree under it; returns its exit code, output and result files.
 */
async function runStack(name: string, scenario: string, args: readonly string[] = []): Promise<StackRun> {
  const runs = join(runsDir, name);
  const stack = procs.spawn(
    `stack-${name}`,
    process.execPath,
    [distPath('deploy/local/stack.js'), scenario, '--no-prometheus', ...args],
    { cwd: repoRoot, env: { ...process.env, SPHERE_RUNS_DIR: runs } },
  );
  const processes = new Map<number, string | undefined>();
  const watch = setInterval(() => {
    for (const [pid, start] of descendants(stack.pid)) processes.set(pid, start);
  }, 250);
  const exit = await stack.exited.finally(() => clearInterval(watch));
  const output = stack.output().join('\n');
  const [run] = readdirSync(runs);
  if (run === undefined) throw new Error(`the stack wrote no run directory:\n${output}`);
  const runDir = join(runs, run);
  const results = join(runDir, 'results');
  const read = <T>(file: string): T => {
    try {
      return JSON.parse(readFileSync(join(results, file), 'utf8')) as T;
    } catch (e) {
      throw new Error(`${file}: ${String(e)} (exit code ${exit.code ?? 'null'}); stack output:\n${output}`);
    }
  };
  // Pids the stack itself recorded, and every nats-server incarnation (each logs "[pid] ... Starting").
  const state = JSON.parse(readFileSync(join(runDir, 'stack.json'), 'utf8')) as StackJson;
  const recorded = [
    ...(state.nats.nodes ?? []).map((n) => n.pid),
    ...state.shards.map((s) => s.pid),
    ...(state.runner === null ? [] : [state.runner.pid]),
  ];
  for (const file of readdirSync(runDir).filter((f) => /^nats-\d+\.log$/.test(f)))
    for (const m of readFileSync(join(runDir, file), 'utf8').matchAll(/^\[(\d+)\] .*Starting nats-server/gm))
      recorded.push(Number(m[1]));
  for (const pid of recorded) if (pid > 0 && !processes.has(pid)) processes.set(pid, undefined);
  return {
    code: exit.code,
    output,
    runDir,
    summary: read<RunSummary>('summary.json'),
    verdict: read<Verdict>('verdict.json'),
    timeline: read<ChaosTimeline>('chaos-timeline.json'),
    processes,
  };
}

/** Processes of `run` still alive a few seconds after the stack exited (should be none). */
async function leftBehind(run: StackRun): Promise<string[]> {
  const until = Date.now() + 5_000;
  let alive = [...run.processes].filter(([pid, start]) => stillRunning(pid, start));
  while (alive.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    alive = alive.filter(([pid, start]) => stillRunning(pid, start));
  }
  return alive.map(([pid]) => {
    try {
      return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`;
    } catch {
      return String(pid);
    }
  });
}

/** The handovers the single-owner check counted in the partition logs. */
function handovers(verdict: Verdict): number {
  const summary = verdict.checks.find((c) => c.id === 'single-owner')?.summary ?? '';
  const m = /([\d,]+) handovers/.exec(summary);
  if (m === null) throw new Error(`no handover count in the single-owner summary: ${summary}`);
  return Number(m[1]?.replace(/,/g, ''));
}

const CHECKS = [
  'healthy-attested',
  'single-owner',
  'no-cert-for-failed-evidence',
  'error-budget',
  'stored-once',
  'recovery',
];

/** The faults of chaos-small.yaml, in timeline order, as the controller labels them. */
const SMALL_FAULTS = [
  { label: 'partition shard-1 | nats', start: /^3 links: shard-1→nats-0 shard-1→nats-1 shard-1→nats-2$/ },
  { label: 'kill shard-0', start: /^SIGKILL$/, heal: 'restarted' },
  { label: 'kill nats-2', start: /^SIGKILL$/, heal: 'restarted' },
  { label: 'pause shard-1', start: /^SIGSTOP$/ },
  { label: 'partition devices | nats (50%)', start: /^3 links: devices→nats-0 / },
  { label: 'latency devices | nats 150±50 ms', start: /^3 links: devices→nats-0 / },
  { label: 'bandwidth devices | nats 20480 B/s', start: /^3 links: devices→nats-0 / },
  { label: 'loss devices | nats 20%', start: /^3 links: devices→nats-0 / },
  // A reset without `for` is a one-off: it starts and is over, no heal.
  { label: 'reset devices | nats', start: /^3 links: devices→nats-0 /, oneOff: true },
];

describe('e2e chaos', () => {
  it('e2e - every fault kind against a 3-node NATS cluster and 2 shards: the verdict passes, the shards take over, nothing is left running', async () => {
    const run = await runStack('small', join(repoRoot, 'test/e2e/fixtures/chaos-small.yaml'));
    const { verdict, timeline, summary } = run;
    expect(run.code, run.output).toBe(0);

    // The runner's own thresholds: hostile devices refused, the rollout completed through the faults.
    expect(summary.pass).toBe(true);
    expect(summary.run.aborted).toBeNull();
    expect(summary.rollouts.map((r) => [r.name, r.state, r.expectationMet])).toEqual([
      ['good-app', 'completed', true],
    ]);

    // The verdict: all six checks ran and passed.
    expect(verdict.checks.map((c) => c.id)).toEqual(CHECKS);
    for (const c of verdict.checks)
      expect(c.pass, `${c.id}: ${c.summary}\n${c.evidence.join('\n')}`).toBe(true);
    expect(verdict.pass).toBe(true);

    // The timeline: every fault started at its time, each (but the one-off reset) healed, no errors.
    expect(timeline.events.filter((e) => e.action === 'error')).toEqual([]);
    expect(timeline.faults.map((f) => f.label)).toEqual(SMALL_FAULTS.map((f) => f.label));
    for (const [i, f] of SMALL_FAULTS.entries()) {
      const id = `f${i}`;
      const events = timeline.events.filter((e) => e.fault === id);
      expect(
        events.map((e) => e.action),
        `${f.label}: ${JSON.stringify(events)}`,
      ).toEqual(f.oneOff === true ? ['start'] : ['start', 'heal']);
      expect(events[0]?.label).toBe(f.label);
      expect(events[0]?.detail).toMatch(f.start);
      if (f.heal !== undefined) expect(events[1]?.detail).toBe(f.heal);
      const span = timeline.faults[i];
      expect(span?.id).toBe(id);
      expect(span?.endMs, f.label).not.toBeNull();
      expect(span?.endMs ?? 0).toBeGreaterThanOrEqual(span?.startMs ?? Infinity);
    }
    // Non-overlapping: each fault healed before the next one started.
    for (const [i, f] of timeline.faults.entries()) {
      const next = timeline.faults[i + 1];
      if (next !== undefined) expect(f.endMs ?? Infinity, f.label).toBeLessThanOrEqual(next.startMs);
    }
    expect(verdict.faults.map((f) => f.id)).toEqual(timeline.faults.map((f) => f.id));

    // The kills were real: a second nats-2 and a second shard-0 process came up after them.
    const natsStarts = readFileSync(join(run.runDir, 'nats-2.log'), 'utf8').match(
      /^\[\d+\] .*Starting nats-server/gm,
    );
    expect(natsStarts?.length).toBe(2);
    expect(readFileSync(join(run.runDir, 'shard-0.log'), 'utf8').match(/^READY /gm)?.length).toBe(2);

    // The shard faults (cut off, killed, paused) moved partitions: each moves the faulted shard's
    // share (about 32 of the 64 partitions) to the other shard and, once healed, back. The
    // journal shows those takeovers, well beyond what the start-up split of 64 partitions makes.
    expect(handovers(verdict)).toBeGreaterThan(64);

    // Recovery: one entry per fault; the devices cut off from NATS lost service and all got it back.
    expect(verdict.recoveries.map((r) => r.fault)).toEqual(SMALL_FAULTS.map((f) => f.label));
    for (const r of verdict.recoveries) expect(r.recovered, r.fault).toBe(r.affected);
    const devicesCut = verdict.recoveries.find((r) => r.fault === 'partition devices | nats (50%)');
    expect(devicesCut?.affected).toBeGreaterThan(0);

    // Nothing left running: NATS nodes (restarted nats-2 included), shards (restarted shard-0
    // included), the runner.
    expect(run.processes.size).toBeGreaterThanOrEqual(3 + 2 + 1 + 2);
    expect(await leftBehind(run)).toEqual([]);
  }, 300_000);

  it('e2e - with fencing off, a shard cut off from NATS past its lease acts for partitions another shard took over: single-owner fails, exit 99', async () => {
    const run = await runStack('unfenced', join(repoRoot, 'test/e2e/fixtures/chaos-unfenced.yaml'), [
      '--unsafe-no-fencing',
    ]);
    const { verdict } = run;
    expect(run.code, run.output).toBe(99);
    expect(run.output).toContain('UNSAFE       fencing is off');
    // The thresholds held: exit 99 is the verdict's.
    expect(summaryFailures(run.summary)).toEqual([]);
    expect(verdict.pass).toBe(false);
    expect(timelineErrors(run)).toEqual([]);

    const owner = verdict.checks.find((c) => c.id === 'single-owner');
    expect(owner?.pass, owner?.summary).toBe(false);
    const stale = /, (\d+) appends by an owner the partition had moved away from$/.exec(owner?.summary ?? '');
    expect(Number(stale?.[1] ?? 0), owner?.summary).toBeGreaterThan(0);
    const evidence = owner?.evidence ?? [];
    expect(evidence.length).toBeGreaterThan(0);
    for (const line of evidence.filter((l) => !l.startsWith('... and ')))
      expect(line).toMatch(
        /^partition \d+: seq \d+ written by shard-\d+-\S+ \(\d+ devices\) after shard-\d+-\S+ took over at seq \d+$/,
      );
    // shard-1 is the one cut off: it is the stale owner.
    expect(
      evidence.some((l) => / written by shard-1-/.test(l)),
      evidence.join('\n'),
    ).toBe(true);

    expect(await leftBehind(run)).toEqual([]);
  }, 240_000);
});

function summaryFailures(summary: RunSummary): string[] {
  return summary.thresholds.results.filter((r) => !r.pass).map((r) => `${r.metric} ${r.expression}`);
}

function timelineErrors(run: StackRun): ChaosEvent[] {
  return run.timeline.events.filter((e) => e.action === 'error');
}
