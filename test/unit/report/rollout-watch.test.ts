import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import {
  RolloutWatchPrinter,
  WATCH_EXIT,
  barCells,
  exitCodeOf,
  renderBar,
  renderHeader,
  renderRolloutWatch,
  runRolloutWatch,
} from '../../../loadgen/report/index.js';
import type { Rollout } from '../../../proto/gen/sphere/operator/v1/operator.js';
import type { RolloutUpdate } from '../../../services/operator-api/index.js';

const STATES = ['pending', 'downloading', 'installing', 'succeeded', 'failed', 'rolled_back'] as const;
type Counts = Partial<Record<(typeof STATES)[number], number>>;

/** Every state present, as the service sends it (zeros included). */
const byState = (c: Counts): Record<string, number> => Object.fromEntries(STATES.map((s) => [s, c[s] ?? 0]));

function view(over: Partial<Rollout> = {}, waves: Counts[] = [{}, {}, {}, {}]): Rollout {
  return {
    deploymentId: 'd-0123456789abcdef',
    deviceGroupId: 'g-0123456789abcdef',
    imageId: 'i-0123456789abcdef',
    state: 'running',
    currentWave: 2,
    waves: waves.map((c, wave) => ({ wave, devicesByState: byState(c) })),
    failures: 1,
    attempted: 7,
    haltReason: '',
    devices: [],
    ...over,
  };
}

const running = view({}, [{}, { succeeded: 2 }, { pending: 1, downloading: 1, succeeded: 1, failed: 1 }, {}]);

function sink(isTTY: boolean, columns = 120) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns, write: (t: string) => writes.push(t) } };
}

/** The stream a client would yield for these views. */
const updatesOf = (...views: Rollout[]): AsyncIterable<RolloutUpdate> =>
  Readable.from(
    views.map((rollout, i): RolloutUpdate => ({ sequence: i + 1, rollout })),
  ) as AsyncIterable<RolloutUpdate>;

describe('rollout watch rendering', () => {
  test('rollout watch - header names deployment, image, state, wave of waves and failures/attempted', () => {
    expect(renderHeader(running)).toBe(
      'deployment d-0123456789abcdef · image i-0123456789abcdef · running · wave 2/3 · failures 1/7 attempted',
    );
    expect(
      renderHeader(view({ state: 'halted', haltReason: 'error-count', failures: 2000, attempted: 4000 })),
    ).toBe(
      'deployment d-0123456789abcdef · image i-0123456789abcdef · halted (error-count) · wave 2/3 · failures 2,000/4,000 attempted',
    );
  });

  test('rollout watch - one line per wave with bar and counts per state; current wave marked; unopened waves say so', () => {
    const lines = renderRolloutWatch(running, { width: 120 });
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(
      /^ {2}wave {2}progress +devices {2}pending {2}downloading {2}installing {2}succeeded {2}failed {2}rolled-back$/,
    );
    expect(lines[2]).toMatch(/^ {5}1 {2}█+ +2 +0 +0 +0 +2 +0 +0$/);
    expect(lines[3]).toMatch(/^▸ {4}2 {2}█+✗+▒+·+ +4 +1 +1 +0 +1 +1 +0$/);
    expect(lines[4]).toMatch(/^ {5}3 {2}not opened +0 +0 +0 +0 +0 +0 +0$/);
    // Columns line up: every line is as wide as the heading.
    for (const l of lines.slice(2)) expect(l.length).toBe(lines[1]?.length);
    expect(lines.join('')).not.toMatch(/[\r\n\x1b]/);
  });

  test('rollout watch - devices not yet in a wave get their own line; an opened empty wave says so', () => {
    const lines = renderRolloutWatch(view({ currentWave: 1 }, [{ pending: 3 }, {}, {}]));
    expect(lines.at(-1)).toMatch(/^ {5}- {2}not yet in a wave +3 +3 +0/);
    expect(lines[2]).toMatch(/^▸ {4}1 {2}no devices/);
  });

  test('rollout watch - the bar fills its width, narrows with the terminal, and stays between 10 and 40', () => {
    const wide = renderRolloutWatch(running, { width: 200 });
    const narrow = renderRolloutWatch(running, { width: 95 });
    const tiny = renderRolloutWatch(running, { width: 20 });
    const barOf = (lines: string[]): string => /^. +\d+ {2}(\S+)/u.exec(lines[3] ?? '')?.[1] ?? '';
    expect([...barOf(wide)]).toHaveLength(40);
    expect(narrow[1]?.length).toBe(95);
    expect([...barOf(narrow)]).toHaveLength(12);
    expect([...barOf(tiny)]).toHaveLength(10);
  });

  test('rollout watch - bar cells are proportional, add up to the width, and every non-empty part shows', () => {
    expect(renderBar(byState({ succeeded: 1, pending: 1 }), 10)).toBe('█████·····');
    expect(renderBar(byState({ succeeded: 9_999, failed: 1 }), 10)).toBe('█████████✗');
    expect(renderBar(byState({ rolled_back: 1, installing: 1, downloading: 2 }), 8)).toBe('↺↺▒▒▒▒▒▒');
    for (const [parts, width] of [
      [{ succeeded: 3, failed: 3, rolledBack: 3, inProgress: 3, pending: 3 }, 10],
      [{ succeeded: 1000, failed: 1, rolledBack: 1, inProgress: 1, pending: 1 }, 10],
      [{ succeeded: 7, failed: 0, rolledBack: 0, inProgress: 2, pending: 5 }, 33],
    ] as const) {
      const cells = barCells(parts, width);
      expect(Object.values(cells).reduce((a, b) => a + b, 0)).toBe(width);
      for (const k of Object.keys(parts) as (keyof typeof parts)[])
        expect(cells[k] > 0, k).toBe(parts[k] > 0);
    }
    expect(
      Object.values(barCells({ succeeded: 0, failed: 0, rolledBack: 0, inProgress: 0, pending: 0 }, 10)),
    ).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('rollout watch printer and outcome', () => {
  test('printer - on a TTY each view redraws the previous block in place', () => {
    const { writes, out } = sink(true);
    const printer = new RolloutWatchPrinter(out);
    printer.show(running);
    printer.show(view({ state: 'completed', currentWave: 3 }));
    expect(writes).toHaveLength(2);
    expect(writes[0]?.startsWith('deployment ')).toBe(true);
    const shown = (writes[0] ?? '').split('\n').length - 1;
    expect(writes[1]?.startsWith(`\x1b[${shown}A\r\x1b[0Jdeployment `)).toBe(true);
    expect(writes[1]).toContain('· completed ·');
  });

  test('printer - without a TTY each view is its own block followed by a blank line', () => {
    const { writes, out } = sink(false);
    const printer = new RolloutWatchPrinter(out);
    printer.show(running);
    printer.show(running);
    expect(writes).toHaveLength(2);
    expect(writes.join('')).not.toContain('\x1b');
    expect(writes[1]).toBe(writes[0]);
    expect(writes[0]?.endsWith('\n\n')).toBe(true);
  });

  test('outcome - completed exits 0, halted and cancelled exit 3, anything else is not final', () => {
    expect(exitCodeOf('completed')).toBe(0);
    expect(exitCodeOf('halted')).toBe(WATCH_EXIT.stopped);
    expect(exitCodeOf('cancelled')).toBe(3);
    for (const s of ['scheduled', 'running', 'paused', 'waiting']) expect(exitCodeOf(s)).toBeNull();
  });

  test('outcome - runRolloutWatch shows every update and maps the last state to the exit code', async () => {
    const { writes, out } = sink(false);
    const halted = view({ state: 'halted', haltReason: 'error-share' });
    const r = await runRolloutWatch(updatesOf(running, halted), new RolloutWatchPrinter(out));
    expect(writes).toHaveLength(2);
    expect(r).toMatchObject({ exitCode: 3, message: '✗ rollout halted: error-share', last: halted });
    const ok = await runRolloutWatch(updatesOf(view({ state: 'completed' })), new RolloutWatchPrinter(out));
    expect(ok).toMatchObject({ exitCode: 0, message: '✓ rollout completed' });
  });

  test('outcome - a stream that ends early is an error, unless the user interrupted it', async () => {
    const { out } = sink(false);
    expect(await runRolloutWatch(updatesOf(running), new RolloutWatchPrinter(out))).toMatchObject({
      exitCode: 1,
      message: expect.stringContaining('while the rollout was running') as unknown,
    });
    expect((await runRolloutWatch(updatesOf(), new RolloutWatchPrinter(out))).exitCode).toBe(1);
    expect(
      (await runRolloutWatch(updatesOf(running), new RolloutWatchPrinter(out), () => true)).exitCode,
    ).toBe(130);
  });
});
