import { describe, expect, it } from 'vitest';
import { createManualClock, createScaledClock } from '../../../actors/runtime/index.js';
import type { WallTimers } from '../../../actors/runtime/index.js';

/** Wall clock under test control: time moves only via `advance`. */
function fakeWall(): WallTimers & { advance(ms: number): void; pending(): number } {
  let now = 1000;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, delayMs) {
      const id = ++seq;
      timers.set(id, { at: now + delayMs, fn });
      return id;
    },
    clearTimeout(h) {
      timers.delete(h as number);
    },
    advance(ms) {
      const target = now + ms;
      for (;;) {
        const due = [...timers.entries()]
          .filter(([, t]) => t.at <= target)
          .sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
        if (due === undefined) break;
        timers.delete(due[0]);
        now = Math.max(now, due[1].at);
        due[1].fn();
      }
      now = target;
    },
    pending: () => timers.size,
  };
}

describe('manual clock', () => {
  it('manual clock - fires timers in due order, ties in creation order', () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('c@30'), 30);
    clock.setTimeout(() => fired.push('a@10'), 10);
    clock.setTimeout(() => fired.push('b1@20'), 20);
    clock.setTimeout(() => fired.push('b2@20'), 20);
    clock.advance(25);
    expect(fired).toEqual(['a@10', 'b1@20', 'b2@20']);
    expect(clock.now()).toBe(25);
    expect(clock.pendingTimers()).toBe(1);
  });

  it('manual clock - timers scheduled by fired timers within the window fire too, at their due time', () => {
    const clock = createManualClock(100);
    const seen: [string, number][] = [];
    clock.setTimeout(() => {
      seen.push(['outer', clock.now()]);
      clock.setTimeout(() => seen.push(['inner', clock.now()]), 5);
      clock.setTimeout(() => seen.push(['late', clock.now()]), 500);
    }, 10);
    clock.advance(50);
    expect(seen).toEqual([
      ['outer', 110],
      ['inner', 115],
    ]);
    expect(clock.now()).toBe(150);
    expect(clock.pendingTimers()).toBe(1);
  });

  it('manual clock - cleared timers never fire and are not pending', () => {
    const clock = createManualClock(0);
    let fired = 0;
    const h = clock.setTimeout(() => fired++, 10);
    clock.setTimeout(() => fired++, 20);
    clock.clearTimeout(h);
    expect(clock.pendingTimers()).toBe(1);
    clock.advanceTo(100);
    expect(fired).toBe(1);
  });

  it('manual clock - runNext jumps to the next timer; advanceTo never goes backwards', () => {
    const clock = createManualClock(0);
    clock.setTimeout(() => undefined, 40);
    expect(clock.runNext()).toBe(true);
    expect(clock.now()).toBe(40);
    expect(clock.runNext()).toBe(false);
    clock.advanceTo(10);
    expect(clock.now()).toBe(40);
  });
});

describe('scaled clock', () => {
  it('scaled clock - simulated time is epoch plus scaled wall elapsed', () => {
    const wall = fakeWall();
    const clock = createScaledClock({ timeScale: 60, epochMs: 1_700_000_000_000, wall });
    expect(clock.now()).toBe(1_700_000_000_000);
    wall.advance(1000);
    expect(clock.now()).toBe(1_700_000_000_000 + 60_000);
  });

  it('scaled clock - timer fires after simMs / timeScale wall ms, not before', () => {
    const wall = fakeWall();
    const clock = createScaledClock({ timeScale: 10, epochMs: 0, wall });
    const firedAt: number[] = [];
    clock.setTimeout(() => firedAt.push(clock.now()), 5000); // 500 wall ms
    wall.advance(499);
    expect(firedAt).toEqual([]);
    wall.advance(1);
    expect(firedAt).toEqual([5000]);
  });

  it('scaled clock - re-arms when the wall timer wakes early, so callbacks see now() >= due', () => {
    let now = 0;
    const pending: { fn: () => void }[] = [];
    // A wall whose timers fire immediately when run, regardless of delay.
    const wall: WallTimers = {
      now: () => now,
      setTimeout: (fn) => pending.push({ fn }),
      clearTimeout: () => undefined,
    };
    const clock = createScaledClock({ timeScale: 2, epochMs: 0, wall });
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 100);
    pending.shift()?.fn(); // early wake at sim 0
    expect(seen).toEqual([]);
    now = 50;
    pending.shift()?.fn();
    expect(seen).toEqual([100]);
  });

  it('scaled clock - clearTimeout cancels the wall timer', () => {
    const wall = fakeWall();
    const clock = createScaledClock({ timeScale: 1, epochMs: 0, wall });
    let fired = false;
    const h = clock.setTimeout(() => (fired = true), 10);
    clock.clearTimeout(h);
    wall.advance(100);
    expect(fired).toBe(false);
    expect(wall.pending()).toBe(0);
  });

  it('scaled clock - rejects a non-positive time scale', () => {
    expect(() => createScaledClock({ timeScale: 0 })).toThrow(RangeError);
  });
});
