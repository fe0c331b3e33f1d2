import { describe, expect, test } from 'vitest';
import { ProgressPrinter, formatProgressLine } from '../../../loadgen/report/index.js';
import type { ProgressSnapshot } from '../../../loadgen/report/index.js';

const snapshot: ProgressSnapshot = {
  simulatedMs: 43_200_000,
  durationMs: 172_800_000,
  wallElapsedMs: 15_000,
  devices: { total: 2000, powered: 2000, attested: 1960, failed: 20, backoff: 3 },
  attestations: 1980,
  p99AttestMs: 41.4,
};

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 120, write: (text: string) => writes.push(text) } };
}

describe('progress', () => {
  test('progress - one line with simulated/wall time, device counts, rate and p99', () => {
    const line = formatProgressLine(snapshot);
    expect(line).toBe(
      'sim 12h/2d  25% | wall 15s | on 2,000/2,000 ok 1,960 fail 20 backoff 3 | 132 att/s | p99 41ms',
    );
    expect(line).not.toMatch(/[\r\n\x1b]/);
  });

  test('progress - explicit rate wins; no data shows "-"; width is respected', () => {
    const line = formatProgressLine({ ...snapshot, attestRatePerSec: 2.25, p99AttestMs: null });
    expect(line).toContain('| 2.3 att/s | p99 -');
    expect(formatProgressLine(snapshot, 40)).toHaveLength(40);
    expect(formatProgressLine({ ...snapshot, wallElapsedMs: 0, simulatedMs: 0, attestations: 0 })).toMatch(
      /^sim 0s\/2d {3}0% \| wall 0s .*\| 0\.0 att\/s/,
    );
  });

  test('progress - rollouts are appended compactly: name, state, wave reached', () => {
    const line = formatProgressLine(
      {
        ...snapshot,
        rollouts: [
          { name: 'bad-app', state: 'halted', currentWave: 2, totalWaves: 3 },
          { name: 'good-app', state: 'not-started', currentWave: 0, totalWaves: 3 },
        ],
      },
      200,
    );
    expect(line).toMatch(/\| p99 41ms \| bad-app halted 2\/3, good-app not-started 0\/3$/);
    expect(formatProgressLine({ ...snapshot, rollouts: [] })).toBe(formatProgressLine(snapshot));
    expect(
      formatProgressLine(
        { ...snapshot, rollouts: [{ name: 'x', state: 'running', currentWave: 1, totalWaves: 2 }] },
        100,
      ).length,
    ).toBeLessThanOrEqual(100);
  });

  test('printer - on a TTY rewrites the line in place and ends with a newline', () => {
    const { writes, stream } = sink(true);
    const printer = new ProgressPrinter({ stream });
    printer.update(snapshot);
    printer.update({ ...snapshot, simulatedMs: 86_400_000 });
    printer.done();
    expect(writes).toHaveLength(3);
    expect(writes[0]?.startsWith('\r\x1b[2Ksim 12h/2d')).toBe(true);
    expect(writes[1]?.startsWith('\r\x1b[2Ksim 1d/2d')).toBe(true);
    expect(writes[2]).toBe('\n');
  });

  test('printer - clear erases the live line on a TTY so a log line starts clean; no-op otherwise', () => {
    const tty = sink(true);
    const printer = new ProgressPrinter({ stream: tty.stream });
    printer.clear(); // nothing shown yet
    printer.update(snapshot);
    printer.clear();
    printer.clear(); // already clear
    printer.done();
    expect(tty.writes.slice(1)).toEqual(['\r\x1b[2K']);
    const plain = sink(false);
    const logged = new ProgressPrinter({ stream: plain.stream });
    logged.update(snapshot);
    logged.clear();
    expect(plain.writes).toHaveLength(1);
  });

  test('printer - without a TTY prints plain lines at most once per interval, and the final one', () => {
    const { writes, stream } = sink(false);
    let now = 0;
    const printer = new ProgressPrinter({ stream, intervalMs: 5_000, now: () => now });
    printer.update(snapshot); // printed (first)
    now = 1_000;
    printer.update(snapshot); // suppressed
    now = 5_000;
    printer.update(snapshot); // printed
    now = 6_000;
    printer.done({ ...snapshot, simulatedMs: snapshot.durationMs }); // always printed
    expect(writes).toHaveLength(3);
    for (const w of writes) {
      expect(w.endsWith('\n')).toBe(true);
      expect(w).not.toMatch(/[\r\x1b]/);
    }
    expect(writes[2]).toContain('sim 2d/2d 100%');
  });
});
