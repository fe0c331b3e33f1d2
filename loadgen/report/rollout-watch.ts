/**
 * `sphere rollout watch`: a deployment's progress as one bar per wave, redrawn in place on a
 * terminal and printed as one block per update in logs (CI). Rendering is a pure function of
 * the rollout view; the printer owns the terminal, the runner the exit code.
 */
import type { Rollout, RolloutWave } from '../../proto/gen/sphere/operator/v1/operator.js';
import type { RolloutUpdate } from '../../services/operator-api/index.js';

/** Exit codes of `rollout watch`: 3 means the watch worked but the rollout did not complete. */
export const WATCH_EXIT = { completed: 0, error: 1, usage: 2, stopped: 3, interrupted: 130 } as const;

/** Bar glyphs, left to right in the bar in this order. */
export const BAR_GLYPHS = {
  succeeded: '█',
  failed: '✗',
  rolledBack: '↺',
  inProgress: '▒',
  pending: '·',
} as const;
type BarPart = keyof typeof BAR_GLYPHS;

/** Printed once above the first block: what the glyphs mean. */
export const ROLLOUT_LEGEND =
  `${BAR_GLYPHS.succeeded} succeeded  ${BAR_GLYPHS.failed} failed  ${BAR_GLYPHS.rolledBack} rolled back  ` +
  `${BAR_GLYPHS.inProgress} downloading/installing  ${BAR_GLYPHS.pending} pending`;

/** Count columns: the service's device states (`devices_by_state` keys) and their headings. */
const STATE_COLUMNS = [
  ['pending', 'pending'],
  ['downloading', 'downloading'],
  ['installing', 'installing'],
  ['succeeded', 'succeeded'],
  ['failed', 'failed'],
  ['rolled_back', 'rolled-back'],
] as const;

const MIN_BAR = 10;
const MAX_BAR = 40;

const n = (v: number): string => Math.round(v).toLocaleString('en-US');

/** A wave's devices by bar part. */
export function barParts(byState: Readonly<Record<string, number>>): Record<BarPart, number> {
  const c = (s: string): number => byState[s] ?? 0;
  return {
    succeeded: c('succeeded'),
    failed: c('failed'),
    rolledBack: c('rolled_back'),
    inProgress: c('downloading') + c('installing'),
    pending: c('pending'),
  };
}

/**
 * Cells per part for a bar of `width` cells: proportional (largest remainder, so the cells add up
 * to `width` exactly), except that every part with a device gets at least one cell, so one
 * failure among thousands still shows. All zeros: all zeros.
 */
export function barCells(parts: Readonly<Record<BarPart, number>>, width: number): Record<BarPart, number> {
  const keys = Object.keys(BAR_GLYPHS) as BarPart[];
  const total = keys.reduce((sum, k) => sum + parts[k], 0);
  const cells = Object.fromEntries(keys.map((k) => [k, 0])) as Record<BarPart, number>;
  if (total === 0 || width <= 0) return cells;
  const exact = keys.map((k) => (parts[k] * width) / total);
  keys.forEach((k, i) => (cells[k] = Math.floor(exact[i] ?? 0)));
  let left = width - keys.reduce((sum, k) => sum + cells[k], 0);
  const byRemainder = keys.map((k, i) => ({ k, r: (exact[i] ?? 0) - cells[k] })).sort((a, b) => b.r - a.r);
  for (const { k } of byRemainder) {
    if (left === 0) break;
    cells[k]++;
    left--;
  }
  for (const k of keys) {
    if (parts[k] === 0 || cells[k] > 0) continue;
    const donor = keys.reduce((best, j) => (cells[j] > cells[best] ? j : best), keys[0] ?? k);
    if (cells[donor] <= 1) break; // narrower than the number of parts; cannot happen at MIN_BAR
    cells[donor]--;
    cells[k]++;
  }
  return cells;
}

/** The bar itself: `width` glyphs. */
export function renderBar(byState: Readonly<Record<string, number>>, width: number): string {
  const cells = barCells(barParts(byState), width);
  return (Object.keys(BAR_GLYPHS) as BarPart[]).map((k) => BAR_GLYPHS[k].repeat(cells[k])).join('');
}

const total = (byState: Readonly<Record<string, number>>): number =>
  Object.values(byState).reduce((sum, v) => sum + v, 0);

/** Number of waves in the deployment (the view lists every configured wave, plus wave 0). */
export function waveCount(view: Rollout): number {
  return view.waves.reduce((max, w) => Math.max(max, w.wave), 0);
}

/** `deployment d-… · image i-… · running · wave 2/3 · failures 1/7 attempted`. */
export function renderHeader(view: Rollout): string {
  const state =
    view.state === 'halted' && view.haltReason !== '' ? `halted (${view.haltReason})` : view.state;
  return [
    `deployment ${view.deploymentId}`,
    `image ${view.imageId}`,
    state,
    `wave ${view.currentWave}/${waveCount(view)}`,
    `failures ${n(view.failures)}/${n(view.attempted)} attempted`,
  ].join(' · ');
}

/** Options of {@link renderRolloutWatch}. */
export interface RolloutRenderOptions {
  /** Terminal columns; the bar narrows to fit (default 100). */
  readonly width?: number;
}

/**
 * The display of one rollout view: a header line, a column heading, then one line per wave
 * (marker `▸` on the current one) with its bar and device counts per state, and a line for
 * devices not yet in a wave when there are any. No colour, no control characters.
 */
export function renderRolloutWatch(view: Rollout, opts: RolloutRenderOptions = {}): string[] {
  const waves = [...view.waves].filter((w) => w.wave > 0).sort((a, b) => a.wave - b.wave);
  const unassigned = view.waves.find((w) => w.wave === 0);
  const rows: { wave: string; w: RolloutWave; opened: boolean }[] = waves.map((w) => ({
    wave: String(w.wave),
    w,
    opened: w.wave <= view.currentWave,
  }));
  if (unassigned !== undefined && total(unassigned.devicesByState) > 0)
    rows.push({ wave: '-', w: unassigned, opened: false });

  const countOf = (w: RolloutWave, key: string): string => n(w.devicesByState[key] ?? 0);
  const columns: { title: string; cell: (w: RolloutWave) => string }[] = [
    { title: 'devices', cell: (w) => n(total(w.devicesByState)) },
    ...STATE_COLUMNS.map(([key, title]) => ({ title, cell: (w: RolloutWave) => countOf(w, key) })),
  ];
  const widths = columns.map((c) => Math.max(c.title.length, ...rows.map((r) => c.cell(r.w).length)));
  const waveWidth = Math.max(4, ...rows.map((r) => r.wave.length));
  const countsWidth = widths.reduce((sum, w) => sum + w + 2, 0);
  // marker + space + wave + 2 spaces + bar + counts
  const barWidth = Math.max(
    MIN_BAR,
    Math.min(MAX_BAR, (opts.width ?? 100) - 2 - waveWidth - 2 - countsWidth),
  );

  const counts = (cell: (i: number) => string): string =>
    columns.map((_, i) => `  ${cell(i).padStart(widths[i] ?? 0)}`).join('');
  const lines = [renderHeader(view)];
  lines.push(
    `  ${'wave'.padStart(waveWidth)}  ${'progress'.padEnd(barWidth)}${counts((i) => columns[i]?.title ?? '')}`,
  );
  for (const r of rows) {
    const marker = r.w.wave === view.currentWave && r.w.wave > 0 ? '▸' : ' ';
    const devices = total(r.w.devicesByState);
    const bar =
      r.wave === '-'
        ? 'not yet in a wave'.padEnd(barWidth)
        : !r.opened && devices === 0
          ? 'not opened'.padEnd(barWidth)
          : devices === 0
            ? 'no devices'.padEnd(barWidth)
            : renderBar(r.w.devicesByState, barWidth);
    lines.push(
      `${marker} ${r.wave.padStart(waveWidth)}  ${bar}${counts((i) => columns[i]?.cell(r.w) ?? '')}`,
    );
  }
  return lines;
}

/** Where {@link RolloutWatchPrinter} writes: a stream with optional TTY facts. */
export interface WatchOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/**
 * Shows successive rollout views. On a TTY each view replaces the previous block (cursor up over
 * the lines it printed, clear to the end of the screen); otherwise each view is printed as its
 * own block followed by a blank line, which is what a log file should hold.
 */
export class RolloutWatchPrinter {
  readonly #out: WatchOutput;
  readonly #tty: boolean;
  #shownLines = 0;

  constructor(out: WatchOutput, opts: { tty?: boolean } = {}) {
    this.#out = out;
    this.#tty = opts.tty ?? out.isTTY === true;
  }

  show(view: Rollout): void {
    const columns = this.#out.columns;
    // One column short of the terminal: a line that fills it exactly wraps on some terminals,
    // and a wrapped line would make the cursor-up count wrong.
    const width = columns !== undefined && columns > 20 ? columns - 1 : 100;
    const lines = renderRolloutWatch(view, { width }).map((l) =>
      this.#tty && l.length > width ? l.slice(0, width) : l,
    );
    const redraw = this.#tty && this.#shownLines > 0 ? `\x1b[${this.#shownLines}A\r\x1b[0J` : '';
    this.#out.write(`${redraw}${lines.join('\n')}\n${this.#tty ? '' : '\n'}`);
    this.#shownLines = lines.length;
  }
}

/** The exit code a rollout's last state maps to: completed 0, halted or cancelled 3, else `null`. */
export function exitCodeOf(state: string): number | null {
  if (state === 'completed') return WATCH_EXIT.completed;
  if (state === 'halted' || state === 'cancelled') return WATCH_EXIT.stopped;
  return null;
}

/** How a watch ended. */
export interface WatchOutcome {
  readonly exitCode: number;
  /** One line for the person watching. */
  readonly message: string;
  readonly last: Rollout | null;
}

/**
 * Shows every update until the stream ends and maps the last state to an exit code. A stream
 * that ends before a final state (the server went away) is an error. Errors thrown by `updates`
 * propagate; `interrupted()` tells a cancellation by the user apart from an early end.
 */
export async function runRolloutWatch(
  updates: AsyncIterable<RolloutUpdate>,
  printer: RolloutWatchPrinter,
  interrupted: () => boolean = () => false,
): Promise<WatchOutcome> {
  let last: Rollout | null = null;
  for await (const u of updates) {
    printer.show(u.rollout);
    last = u.rollout;
  }
  if (interrupted()) return { exitCode: WATCH_EXIT.interrupted, message: 'interrupted', last };
  if (last === null)
    return { exitCode: WATCH_EXIT.error, message: 'the stream ended without a message', last };
  const code = exitCodeOf(last.state);
  if (code === null) {
    return {
      exitCode: WATCH_EXIT.error,
      message: `the stream ended while the rollout was ${last.state}; watch again`,
      last,
    };
  }
  const why = last.state === 'halted' && last.haltReason !== '' ? `halted: ${last.haltReason}` : last.state;
  return { exitCode: code, message: `${code === 0 ? '✓' : '✗'} rollout ${why}`, last };
}
