/**
 * WatchRollout's pump without gRPC: a fake sink and hand-stepped timers, so coalescing,
 * backpressure and the end of the stream are checked exactly (no wall-clock timing).
 */
import { describe, expect, test } from 'vitest';
import {
  WATCH_DEFAULT_INTERVAL_MS,
  WATCH_MAX_INTERVAL_MS,
  WATCH_MIN_INTERVAL_MS,
  WatchPump,
  isWatchFinalState,
  watchIntervalOf,
} from '../../../services/operator-api/index.js';
import type { WatchSink, WatchTimers } from '../../../services/operator-api/index.js';

/** Timers that fire only when the test advances the clock. */
function manualTimers() {
  let now = 0;
  let nextId = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const timers: WatchTimers = {
    now: () => now,
    set: (fn, ms) => {
      pending.set(++nextId, { at: now + ms, fn });
      return nextId;
    },
    clear: (h) => pending.delete(h as number),
  };
  /** Moves the clock to `now + ms`, firing due timers in order. */
  const advance = (ms: number): void => {
    const until = now + ms;
    for (;;) {
      const due = [...pending].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      pending.delete(due[0]);
      now = due[1].at;
      due[1].fn();
    }
    now = until;
  };
  return { timers, advance, armed: () => pending.size };
}

interface State {
  readonly state: string;
  readonly n: number;
}

/** A sink recording writes; `full` makes write() report backpressure until `drain()`. */
function fakeSink() {
  const written: [State, number][] = [];
  let ended = 0;
  let full = false;
  let resume: (() => void) | null = null;
  const sink: WatchSink<State> = {
    write: (item, seq) => {
      written.push([item, seq]);
      return !full;
    },
    onDrain: (r) => (resume = r),
    end: () => ended++,
  };
  return {
    sink,
    written,
    ended: () => ended,
    setFull: (f: boolean) => (full = f),
    drain: () => {
      const r = resume;
      resume = null;
      r?.();
    },
  };
}

const s = (n: number, state = 'running'): State => ({ state, n });

function setup(minIntervalMs = 100) {
  const t = manualTimers();
  const k = fakeSink();
  const pump = new WatchPump<State>(k.sink, {
    minIntervalMs,
    isFinal: (x) => isWatchFinalState(x.state),
    timers: t.timers,
  });
  return { ...t, ...k, pump };
}

describe('watch pump', () => {
  test('watch pump - the first state goes out at once, later ones at most once per interval, newest wins', () => {
    const p = setup(100);
    p.pump.offer(s(1));
    expect(p.written).toEqual([]); // never written inside the caller's turn
    p.advance(0);
    expect(p.written).toEqual([[s(1), 1]]);
    p.pump.offer(s(2));
    p.pump.offer(s(3));
    p.advance(99);
    expect(p.written).toHaveLength(1);
    p.advance(1);
    expect(p.written).toEqual([
      [s(1), 1],
      [s(3), 2],
    ]);
    // Quiet for longer than the interval: the next change goes out immediately.
    p.advance(500);
    p.pump.offer(s(4));
    p.advance(0);
    expect(p.written.at(-1)).toEqual([s(4), 3]);
    expect(p.pump.sent).toBe(3);
    expect(p.armed()).toBe(0);
  });

  test('watch pump - while the transport is full nothing is written; after drain the newest state goes out', () => {
    const p = setup(10);
    p.setFull(true);
    p.pump.offer(s(1));
    p.advance(0);
    expect(p.written).toHaveLength(1);
    for (let i = 2; i <= 50; i++) {
      p.pump.offer(s(i));
      p.advance(1000);
    }
    expect(p.written).toHaveLength(1); // one pending state held, no queue, no timer
    expect(p.armed()).toBe(0);
    p.setFull(false);
    p.drain();
    p.advance(0);
    expect(p.written).toEqual([
      [s(1), 1],
      [s(50), 2],
    ]);
  });

  test('watch pump - a final state is written, then the sink is ended once and nothing more is sent', () => {
    const p = setup(100);
    p.pump.offer(s(1));
    p.advance(0);
    p.pump.offer(s(2));
    p.pump.offer(s(3, 'halted'));
    p.advance(100);
    expect(p.written.at(-1)).toEqual([s(3, 'halted'), 2]);
    expect(p.ended()).toBe(1);
    expect(p.pump.stopped).toBe(true);
    p.pump.offer(s(4));
    p.advance(1000);
    expect(p.written).toHaveLength(2);
    expect(p.ended()).toBe(1);
  });

  test('watch pump - a final state waiting behind backpressure still ends the stream after drain', () => {
    const p = setup(10);
    p.setFull(true);
    p.pump.offer(s(1));
    p.advance(0);
    p.pump.offer(s(2, 'completed'));
    p.advance(1000);
    expect(p.ended()).toBe(0);
    p.drain();
    p.advance(0);
    expect(p.written.at(-1)).toEqual([s(2, 'completed'), 2]);
    expect(p.ended()).toBe(1);
  });

  test('watch pump - stop() cancels the pending timer and ignores later offers and drains', () => {
    const p = setup(100);
    p.pump.offer(s(1));
    p.advance(0);
    p.pump.offer(s(2));
    expect(p.armed()).toBe(1);
    p.pump.stop();
    expect(p.armed()).toBe(0);
    p.pump.offer(s(3));
    p.drain();
    p.advance(1000);
    expect(p.written).toHaveLength(1);
    expect(p.ended()).toBe(0);
  });

  test('watch interval - 0 means the default; other values are clamped, never refused', () => {
    expect(watchIntervalOf(0)).toBe(WATCH_DEFAULT_INTERVAL_MS);
    expect(watchIntervalOf(1)).toBe(WATCH_MIN_INTERVAL_MS);
    expect(watchIntervalOf(1000)).toBe(1000);
    expect(watchIntervalOf(0xffff_ffff)).toBe(WATCH_MAX_INTERVAL_MS);
    expect(['completed', 'halted', 'cancelled'].map(isWatchFinalState)).toEqual([true, true, true]);
    expect(['scheduled', 'running', 'paused', 'waiting'].some(isWatchFinalState)).toBe(false);
  });
});
