/**
 * fuzz:long — the long fuzzing campaign: every entry point of deploy/fuzz/entry-points.ts (the
 * table the CI suite runs), with at least 100,000 generated inputs each by default. The
 * over-the-wire entry points run against a nats-server and a shard process started here (one
 * stack for the device subjects and the operator API, one of its own for the journal). Prints,
 * per entry point, runs, failures and inputs per second; a failure's seed, path and
 * counterexample; and, last, one machine-readable line:
 *
 *   BENCH fuzz entry_points=<n> runs=<total> failures=<n> min_runs=<n> seconds=<s> known_bugs=<n>
 *
 * Exits 1 on any failure other than a known bug (deploy/fuzz/known-bugs.ts) still reproducing,
 * and when a known bug no longer reproduces (delete its entry then); 2 on bad usage.
 *
 * Usage: node dist/deploy/fuzz/campaign.js [--runs 100000] [--seed n] [--only name[,name]]
 *        [--path p] [--parallel 8] [--list]
 */
import { parseArgs } from 'node:util';
import { installShutdownHandlers } from '../local/processes.js';
import type { Stoppable } from '../local/processes.js';
import { DEFAULT_FUZZ_SEED, FUZZ_ENTRY_POINTS } from './entry-points.js';
import type { FuzzEntryPoint, FuzzNeeds, FuzzReport } from './entry-points.js';
import { startFuzzStack } from './stack.js';
import type { FuzzStack } from './stack.js';

const USAGE = `Usage: npm run fuzz:long -- [options]
  --runs <n>        generated inputs per entry point (default 100000)
  --seed <n>        fast-check seed (default ${DEFAULT_FUZZ_SEED})
  --only <names>    entry points to run: comma-separated names or name prefixes (e.g. codec.,wire.grpc)
  --path <p>        fast-check replay path (with --only and --seed, from a failure report)
  --parallel <n>    over-the-wire entry points: properties in flight at once (default 8)
  --list            print the entry points and exit`;

function fail(message: string): never {
  console.error(`fuzz:long: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function integer(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min)
    fail(`--${name} must be an integer of at least ${min}, got ${raw}`);
  return n;
}

/** Suppresses repeats of a process warning (the YAML parser warns about odd keys the fuzzer makes). */
function dedupeWarnings(): () => number {
  const seen = new Set<string>();
  let suppressed = 0;
  const emit = process.emitWarning.bind(process);
  process.emitWarning = (warning: string | Error, ...rest: never[]) => {
    const key = String(warning).slice(0, 60);
    if (seen.has(key) || seen.size > 50) suppressed++;
    else {
      seen.add(key);
      emit(warning, ...rest);
    }
  };
  return () => suppressed;
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        runs: { type: 'string' },
        seed: { type: 'string' },
        only: { type: 'string', multiple: true },
        path: { type: 'string' },
        parallel: { type: 'string' },
        list: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  if (values.list === true) {
    for (const e of FUZZ_ENTRY_POINTS) console.log(`${pad(e.name, 44)} ${pad(e.needs, 8)} ${e.contract}`);
    return;
  }
  const runs = integer('runs', values.runs, 100_000, 1);
  const seed = integer('seed', values.seed, DEFAULT_FUZZ_SEED, -(2 ** 31));
  const parallel = integer('parallel', values.parallel, 8, 1);
  const only = (values.only ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '');
  const selected = FUZZ_ENTRY_POINTS.filter(
    (e) => only.length === 0 || only.some((o) => e.name === o || e.name.startsWith(o)),
  );
  if (selected.length === 0) fail(`no entry point matches --only ${only.join(',')} (see --list)`);
  const suppressedWarnings = dedupeWarnings();

  const handles: Stoppable[] = [];
  const shutdown = installShutdownHandlers(handles, {
    onSignal: () => console.error('fuzz:long: stopping…'),
  });
  const stacks = new Map<Exclude<FuzzNeeds, 'none'>, FuzzStack>();
  const stackFor = async (needs: Exclude<FuzzNeeds, 'none'>): Promise<FuzzStack> => {
    const have = stacks.get(needs);
    if (have !== undefined) return have;
    const started = performance.now();
    // The journal entry point writes into its journal (and may stop its shard): a stack of its own.
    const stack = await startFuzzStack(needs === 'journal' ? 'fuzzjournal' : 'sphere', (s) =>
      handles.push(s),
    );
    handles.push(stack);
    stacks.set(needs, stack);
    console.log(
      `  (started nats-server + shard for "${needs}" in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    return stack;
  };

  console.log(
    `fuzz:long · ${selected.length} entry points · ${runs.toLocaleString('en-US')} inputs each · seed ${seed}` +
      (values.path === undefined ? '' : ` · path ${values.path}`),
  );
  const t0 = performance.now();
  const results: { entry: FuzzEntryPoint; report: FuzzReport; unexpected: boolean }[] = [];
  for (const entry of selected) {
    let report: FuzzReport;
    try {
      const target = entry.needs === 'none' ? null : (await stackFor(entry.needs)).target;
      report = await entry.run(
        { seed, numRuns: runs, parallel, ...(values.path === undefined ? {} : { path: values.path }) },
        target,
      );
    } catch (e) {
      report = {
        name: entry.name,
        failed: true,
        runs: 0,
        seconds: 0,
        message: `${entry.name}: could not run: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        notes: [],
      };
    }
    const known = entry.knownBug !== undefined;
    // A known bug must keep reproducing; anything else must not fail.
    const unexpected = known ? !report.failed : report.failed;
    results.push({ entry, report, unexpected });
    const rate = report.seconds > 0 ? Math.round(report.runs / report.seconds) : 0;
    const verdict = known
      ? report.failed
        ? 'known bug reproduced'
        : 'KNOWN BUG NO LONGER REPRODUCES'
      : report.failed
        ? 'FAILED'
        : 'ok';
    console.log(
      `${unexpected ? '✗' : '✓'} ${pad(entry.name, 44)} runs=${pad(String(report.runs), 7)} failures=${report.failed ? 1 : 0} ` +
        `inputs/s=${pad(String(rate), 7)} seconds=${report.seconds.toFixed(1)}  ${verdict}`,
    );
    for (const note of report.notes) console.log(`    note: ${note}`);
    if (report.failed) console.log(report.message.replace(/^/gm, '    '));
    const stack = entry.needs === 'none' ? undefined : stacks.get(entry.needs);
    if (stack !== undefined && report.failed) {
      const state = stack.target.shardRunning() ? 'running' : 'exited';
      const tail = stack.shardTail().map((l) => `      ${l}`);
      console.log(`    the shard (${state}), last lines:\n${tail.join('\n')}`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const failures = results.filter((r) => r.unexpected).length;
  const knownBugs = results.filter((r) => r.entry.knownBug !== undefined && r.report.failed).length;
  const counted = results.filter((r) => r.entry.knownBug === undefined);
  const total = results.reduce((n, r) => n + r.report.runs, 0);
  const minRuns = counted.length === 0 ? 0 : Math.min(...counted.map((r) => r.report.runs));
  if (suppressedWarnings() > 0) console.log(`(${suppressedWarnings()} repeated process warnings not shown)`);
  if (failures > 0) {
    console.log(
      `\n${failures} failure(s): replay one with --only <name> --seed <seed> --path <path> from its report.`,
    );
  }
  console.log(
    `BENCH fuzz entry_points=${results.length} runs=${total} failures=${failures} min_runs=${minRuns} ` +
      `seconds=${seconds.toFixed(1)} known_bugs=${knownBugs}`,
  );
  await shutdown.stopAll();
  shutdown.uninstall();
  process.exit(failures > 0 ? 1 : 0);
}

main().catch((e: unknown) => {
  console.error('fuzz:long failed:', e);
  process.exit(1);
});
