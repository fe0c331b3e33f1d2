/**
 * Registers one vitest test per fuzzed entry point of deploy/fuzz/entry-points.ts: the CI size
 * (`ciRuns`) and the fixed seed, unless FUZZ_RUNS / FUZZ_SEED / FUZZ_PATH say otherwise. An
 * entry point with a known bug is `it.fails`: it must keep failing until the bug is fixed.
 */
import { it } from 'vitest';
import { fuzzOptionsFromEnv } from '../../deploy/fuzz/entry-points.js';
import type { FuzzEntryPoint } from '../../deploy/fuzz/entry-points.js';
import type { FuzzTarget } from '../../deploy/fuzz/target.js';

/** With FUZZ_RUNS set a run is as long as asked; otherwise vitest's own timeout applies. */
const timeout = process.env['FUZZ_RUNS'] === undefined ? undefined : 24 * 3_600_000;

export function fuzzIt(entry: FuzzEntryPoint, target: () => FuzzTarget | null): void {
  const body = async (): Promise<void> => {
    const report = await entry.run(fuzzOptionsFromEnv(entry), target());
    for (const note of report.notes) console.warn(`${entry.name}: ${note}`);
    if (report.failed) throw new Error(report.message);
  };
  if (entry.knownBug === undefined) it(`${entry.name} - ${entry.contract}`, body, timeout);
  else it.fails(`${entry.name} - still fails (${entry.knownBug})`, body, timeout);
}
