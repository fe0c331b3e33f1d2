/**
 * WatchRollout's flow control, transport-free: which rollout states end a watch, how the
 * requested interval is clamped, and the pump that turns a burst of state changes into at most
 * one message per interval while honouring the transport's backpressure.
 */
import type { RolloutState } from '../rollouts/index.js';

/** Interval used when the request leaves `min_interval_ms` at 0. */
export const WATCH_DEFAULT_INTERVAL_MS = 250;
/** Below this a watcher of a busy rollout would cost the shard a message per report. */
export const WATCH_MIN_INTERVAL_MS = 50;
/** Above this a watch is indistinguishable from a stalled one. */
export const WATCH_MAX_INTERVAL_MS = 60_000;

/**
 * States after which a watch ends. `halted` and `cancelled` are absorbing; `completed` is final
 * for the operator (every wave met its threshold) even though late failures can still halt it,
 * which a new watch or GetDeployment would show.
 */
export const WATCH_FINAL_STATES = [
  'completed',
  'halted',
  'cancelled',
] as const satisfies readonly RolloutState[];

export function isWatchFinalState(state: string): boolean {
  return (WATCH_FINAL_STATES as readonly string[]).includes(state);
}

/** The interval a `min_interval_ms` asks for: 0 means the default, others are clamped (never refused). */
export function watchIntervalOf(requestedMs: number): number {
  if (requestedMs === 0) return WATCH_DEFAULT_INTERVAL_MS;
  return Math.min(WATCH_MAX_INTERVAL_MS, Math.max(WATCH_MIN_INTERVAL_MS, requestedMs));
}

/** Where a {@link WatchPump} writes: a server stream, or a fake in tests. */
export interface WatchSink<T> {
  /** Writes one message; `false` when the transport's buffer is full (wait for `onDrain`). */
  write(item: T, sequence: number): boolean;
  /** Calls `resume` once, when the transport can take more. */
  onDrain(resume: () => void): void;
  /** Ends the stream after the final message. */
  end(): void;
}

/** Time and timers (injectable so tests step them by hand). */
export interface WatchTimers {
  now(): number;
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: WatchTimers = {
  now: () => performance.now(),
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Sends the newest of the states offered to it: the first as soon as possible, later ones at
 * least `minIntervalMs` apart, one in flight at a time. Whatever arrives while it waits (for the
 * interval or for the transport to drain) replaces what was waiting, so a slow reader costs the
 * shard one pending state, never a queue. After writing a final item it ends the sink and stops.
 */
export class WatchPump<T> {
  readonly #sink: WatchSink<T>;
  readonly #minIntervalMs: number;
  readonly #isFinal: (item: T) => boolean;
  readonly #timers: WatchTimers;
  #pending: T | null = null;
  #timer: unknown = null;
  #draining = false;
  #stopped = false;
  #sent = 0;
  #lastSentAt = 0;

  constructor(
    sink: WatchSink<T>,
    opts: { minIntervalMs: number; isFinal: (item: T) => boolean; timers?: WatchTimers },
  ) {
    this.#sink = sink;
    this.#minIntervalMs = opts.minIntervalMs;
    this.#isFinal = opts.isFinal;
    this.#timers = opts.timers ?? REAL_TIMERS;
  }

  /** Messages written so far (the sequence number of the last one). */
  get sent(): number {
    return this.#sent;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The newest state; replaces any state still waiting to be sent. */
  offer(item: T): void {
    if (this.#stopped) return;
    this.#pending = item;
    this.#schedule();
  }

  /** No more writes (the stream was cancelled, failed or ended). Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#pending = null;
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#stopped || this.#pending === null || this.#timer !== null || this.#draining) return;
    // Even the first message goes through a timer: offers arrive inside the shard's actor turn,
    // and writing (encoding, socket) does not belong there.
    const delay =
      this.#sent === 0 ? 0 : Math.max(0, this.#lastSentAt + this.#minIntervalMs - this.#timers.now());
    this.#timer = this.#timers.set(() => this.#flush(), delay);
  }

  #flush(): void {
    this.#timer = null;
    const item = this.#pending;
    if (this.#stopped || item === null) return;
    this.#pending = null;
    this.#sent++;
    this.#lastSentAt = this.#timers.now();
    const more = this.#sink.write(item, this.#sent);
    if (this.#isFinal(item)) {
      this.stop();
      this.#sink.end();
      return;
    }
    if (!more) {
      this.#draining = true;
      this.#sink.onDrain(() => {
        this.#draining = false;
        this.#schedule();
      });
    }
  }
}
