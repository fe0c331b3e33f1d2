/**
 * The live progress line: one line of text per snapshot, rewritten in place on a terminal and
 * printed as plain periodic lines in logs (CI), where carriage returns would be noise.
 */
import { formatDuration } from '../scenario/index.js';

/** What the loadgen knows mid-run. Times: `simulatedMs`/`durationMs` simulated, `wallElapsedMs` wall. */
export interface ProgressSnapshot {
  readonly simulatedMs: number;
  readonly durationMs: number;
  readonly wallElapsedMs: number;
  readonly devices: {
    readonly total: number;
    readonly powered: number;
    readonly attested: number;
    readonly failed: number;
    readonly backoff: number;
  };
  /** Completed attestations so far (accepted or rejected). */
  readonly attestations: number;
  /** Attestations per wall second over a recent window; default: the average since start. */
  readonly attestRatePerSec?: number;
  /** p99 attest latency so far in wall ms, `null` before the first reply. */
  readonly p99AttestMs: number | null;
  /** Rollouts of the scenario, if any: shown compactly at the end of the line. */
  readonly rollouts?: readonly ProgressRollout[];
}

/** A rollout as the progress line shows it: `bad-app halted 2/3`. */
export interface ProgressRollout {
  readonly name: string;
  /** The deployment state, or `not-started`. */
  readonly state: string;
  readonly currentWave: number;
  readonly totalWaves: number;
}

/**
 * One progress line, e.g.
 * `sim 12h/48h  25% | wall 15.0s | on 2,000/2,000 ok 1,960 fail 20 backoff 3 | 132/s | p99 41ms`,
 * followed by `| bad-app halted 2/3, good-app running 1/3` when the snapshot has rollouts.
 * No colour, no control characters; at most `width` characters (default 100).
 */
export function formatProgressLine(snapshot: ProgressSnapshot, width = 100): string {
  const { devices } = snapshot;
  const percent =
    snapshot.durationMs > 0
      ? Math.min(100, Math.floor((snapshot.simulatedMs / snapshot.durationMs) * 100))
      : 0;
  const rate =
    snapshot.attestRatePerSec ??
    (snapshot.wallElapsedMs > 0 ? snapshot.attestations / (snapshot.wallElapsedMs / 1_000) : 0);
  const p99 =
    snapshot.p99AttestMs === null ? '-' : `${Math.round(snapshot.p99AttestMs).toLocaleString('en-US')}ms`;
  const n = (value: number): string => Math.round(value).toLocaleString('en-US');
  const line =
    `sim ${formatDuration(snapshot.simulatedMs)}/${formatDuration(snapshot.durationMs)} ${String(percent).padStart(3)}%` +
    ` | wall ${formatDuration(snapshot.wallElapsedMs)}` +
    ` | on ${n(devices.powered)}/${n(devices.total)} ok ${n(devices.attested)} fail ${n(devices.failed)}` +
    ` backoff ${n(devices.backoff)}` +
    ` | ${rate < 10 ? rate.toFixed(1) : n(rate)} att/s | p99 ${p99}` +
    (snapshot.rollouts === undefined || snapshot.rollouts.length === 0
      ? ''
      : ` | ${snapshot.rollouts.map((r) => `${r.name} ${r.state} ${r.currentWave}/${r.totalWaves}`).join(', ')}`);
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`;
}

/** Where {@link ProgressPrinter} writes: a stream with optional TTY facts. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Options for {@link ProgressPrinter}. */
export interface ProgressPrinterOptions {
  /** Default `process.stderr`. */
  readonly stream?: ProgressStream;
  /** Rewrite in place? Default: `stream.isTTY`. */
  readonly tty?: boolean;
  /** Not a TTY: minimum wall ms between printed lines. Default 10 000. */
  readonly intervalMs?: number;
  /** Wall clock in ms (injectable for tests). Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Shows progress lines. On a TTY every {@link ProgressPrinter.update} rewrites the current line
 * (`\r` + erase line); otherwise a full line is printed at most once per `intervalMs`.
 * {@link ProgressPrinter.done} ends the display (always printing the final snapshot if given).
 * It owns no timers: the caller decides how often to call `update`.
 */
export class ProgressPrinter {
  readonly #stream: ProgressStream;
  readonly #tty: boolean;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #lastPrintedAt: number | null = null;
  #pending = false;

  constructor(options: ProgressPrinterOptions = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.#tty = options.tty ?? this.#stream.isTTY === true;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Show `snapshot` (TTY: always; otherwise only if `intervalMs` passed since the last line). */
  update(snapshot: ProgressSnapshot): void {
    if (this.#tty) {
      this.#stream.write(`\r\x1b[2K${formatProgressLine(snapshot, this.#width())}`);
      this.#pending = true;
      return;
    }
    const now = this.#now();
    if (this.#lastPrintedAt !== null && now - this.#lastPrintedAt < this.#intervalMs) return;
    this.#lastPrintedAt = now;
    this.#stream.write(`${formatProgressLine(snapshot, this.#width())}\n`);
  }

  /**
   * Make room for a log line: on a TTY the line being rewritten is erased (the next `update`
   * draws it again), so text written next starts on a clean line. Otherwise a no-op.
   */
  clear(): void {
    if (this.#tty && this.#pending) this.#stream.write('\r\x1b[2K');
    this.#pending = false;
  }

  /** Finish: print the final snapshot (if given) as a complete line and leave the cursor on a fresh line. */
  done(snapshot?: ProgressSnapshot): void {
    if (this.#tty) {
      if (snapshot !== undefined)
        this.#stream.write(`\r\x1b[2K${formatProgressLine(snapshot, this.#width())}\n`);
      else if (this.#pending) this.#stream.write('\n');
    } else if (snapshot !== undefined) {
      this.#stream.write(`${formatProgressLine(snapshot, this.#width())}\n`);
    }
    this.#pending = false;
  }

  #width(): number {
    const columns = this.#stream.columns;
    return columns !== undefined && columns > 20 ? Math.min(columns - 1, 140) : 100;
  }
}
