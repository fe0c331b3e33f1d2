/**
 * Simulated time. Every `Clock` reports SIMULATED milliseconds since the Unix
 * epoch; timers are expressed in simulated milliseconds too. Network timeouts
 * are wall-clock and never go through a `Clock`.
 */

declare const timerHandleBrand: unique symbol;

/** Opaque timer handle; only the clock that issued it can interpret it. */
export type TimerHandle = { readonly [timerHandleBrand]: true };

/** Source of simulated time and simulated-time timers. */
export interface Clock {
  /** Current simulated time, ms since the Unix epoch. Never decreases. */
  now(): number;
  /**
   * Calls `fn` once simulated time has advanced by at least `delayMs`
   * (negative or NaN delays count as 0). When `fn` runs, `now()` is >= the due time.
   */
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
  /** Cancels a pending timer; cancelling a fired or unknown handle is a no-op. */
  clearTimeout(h: TimerHandle): void;
}

/** Real (wall) time and timers, injectable so scaled clocks can be tested. */
export interface WallTimers {
  /** Monotonic wall time in ms (origin irrelevant). */
  now(): number;
  setTimeout(fn: () => void, delayMs: number): unknown;
  clearTimeout(h: unknown): void;
}

/** Node's monotonic clock and global timers. */
export const systemWall: WallTimers = {
  now: () => performance.now(),
  setTimeout: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Largest delay Node timers accept; longer waits are chained. */
const MAX_WALL_DELAY_MS = 2 ** 31 - 1;

function sanitizeDelay(delayMs: number): number {
  return Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
}

export interface ScaledClockOptions {
  /** Simulated ms per wall ms; must be > 0 (e.g. 60 = one simulated minute per second). */
  readonly timeScale: number;
  /** Simulated time at creation; defaults to `Date.now()`. */
  readonly epochMs?: number;
  /** Wall time source; defaults to `performance.now` and global timers. */
  readonly wall?: WallTimers;
  /**
   * `unref()` wall timers (when the handle supports it) so pending simulated
   * timers do not keep the process alive. Default false.
   */
  readonly unrefTimers?: boolean;
}

/** Scaled clock plus the scale it was built with. */
export interface ScaledClock extends Clock {
  readonly timeScale: number;
}

/**
 * Simulated time = epochMs + (wallNow - wallStart) * timeScale.
 * A timer for `d` simulated ms fires after about `d / timeScale` wall ms; if the
 * wall timer fires early it re-arms, so callbacks always observe `now()` >= due.
 * `now()` may be fractional; round at serialisation boundaries if integers are needed.
 */
export function createScaledClock(opts: ScaledClockOptions): ScaledClock {
  const { timeScale } = opts;
  if (!(Number.isFinite(timeScale) && timeScale > 0)) {
    throw new RangeError(`timeScale must be a finite number > 0, got ${timeScale}`);
  }
  const wall = opts.wall ?? systemWall;
  const wallStart = wall.now();
  const epochMs = opts.epochMs ?? Date.now();
  const unref = opts.unrefTimers ?? false;
  // Live timers: handle -> current wall timer (re-armed timers swap it).
  const live = new Map<TimerHandle, unknown>();

  // Whole milliseconds, like Date.now(): timestamps end up in int64 fields and certificates.
  const now = (): number => Math.floor(epochMs + (wall.now() - wallStart) * timeScale);

  const arm = (handle: TimerHandle, due: number, fn: () => void): void => {
    const wallDelay = Math.min(MAX_WALL_DELAY_MS, Math.max(0, (due - now()) / timeScale));
    const h = wall.setTimeout(() => {
      if (!live.has(handle)) return;
      if (now() < due) {
        arm(handle, due, fn); // early or chained wake-up
        return;
      }
      live.delete(handle);
      fn();
    }, wallDelay);
    if (unref) (h as { unref?: () => void } | null)?.unref?.();
    live.set(handle, h);
  };

  return {
    timeScale,
    now,
    setTimeout(fn, delayMs) {
      const handle = {} as TimerHandle;
      arm(handle, now() + sanitizeDelay(delayMs), fn);
      return handle;
    },
    clearTimeout(handle) {
      const h = live.get(handle);
      if (h === undefined) return;
      live.delete(handle);
      wall.clearTimeout(h);
    },
  };
}

/** Deterministic clock for tests and discrete-event simulation. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing due timers in (due time, creation) order. */
  advance(ms: number): void;
  /**
   * Moves time to `t` (no-op if `t` <= now), firing every timer due at or before
   * `t`, including timers scheduled by fired timers within the window. While a
   * timer runs, `now()` equals its due time.
   */
  advanceTo(t: number): void;
  /** Number of timers scheduled and not yet fired or cancelled. */
  pendingTimers(): number;
  /** Fires the earliest pending timer (moving time up to it); false if none. */
  runNext(): boolean;
}

interface ManualTimer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Binary min-heap ordered by (due, seq). */
class TimerHeap {
  private readonly items: ManualTimer[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): ManualTimer | undefined {
    return this.items[0];
  }

  push(t: ManualTimer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!TimerHeap.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): ManualTimer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && TimerHeap.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && TimerHeap.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }

  private static less(x: ManualTimer, y: ManualTimer): boolean {
    return x.due < y.due || (x.due === y.due && x.seq < y.seq);
  }
}

/** Creates a clock that only moves when told to; starts at `startMs`. */
export function createManualClock(startMs = 0): ManualClock {
  let current = startMs;
  let seq = 0;
  const heap = new TimerHeap();
  // Cancellation is lazy: the heap keeps entries, `live` decides if they fire.
  const live = new Map<TimerHandle, ManualTimer>();
  const handles = new WeakMap<ManualTimer, TimerHandle>();

  /** Pops cancelled entries off the top; returns the earliest live timer. */
  const earliest = (): ManualTimer | undefined => {
    for (let t = heap.peek(); t !== undefined; t = heap.peek()) {
      const h = handles.get(t);
      if (h !== undefined && live.get(h) === t) return t;
      heap.pop();
    }
    return undefined;
  };

  const fire = (t: ManualTimer): void => {
    heap.pop();
    const h = handles.get(t);
    if (h !== undefined) live.delete(h);
    if (t.due > current) current = t.due;
    t.fn();
  };

  const clock: ManualClock = {
    now: () => current,
    setTimeout(fn, delayMs) {
      const t: ManualTimer = { due: current + sanitizeDelay(delayMs), seq: seq++, fn };
      const handle = {} as TimerHandle;
      handles.set(t, handle);
      live.set(handle, t);
      heap.push(t);
      return handle;
    },
    clearTimeout(handle) {
      live.delete(handle);
    },
    advance(ms) {
      clock.advanceTo(current + sanitizeDelay(ms));
    },
    advanceTo(target) {
      for (let t = earliest(); t !== undefined && t.due <= target; t = earliest()) fire(t);
      if (target > current) current = target;
    },
    pendingTimers: () => live.size,
    runNext() {
      const t = earliest();
      if (t === undefined) return false;
      fire(t);
      return true;
    },
  };
  return clock;
}
