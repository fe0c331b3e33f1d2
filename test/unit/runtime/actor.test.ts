import { describe, expect, it } from 'vitest';
import {
  ActorInitError,
  ActorNameTakenError,
  ActorSystem,
  createManualClock,
  createPromMeter,
  createRng,
} from '../../../actors/runtime/index.js';
import type { ActorDefinition, ManualClock } from '../../../actors/runtime/index.js';

type Msg = { type: 'add'; n: number } | { type: 'boom' } | { type: 'slow'; n: number; gate: Promise<void> };

function setup(): { clock: ManualClock; system: ActorSystem } {
  const clock = createManualClock(1_700_000_000_000);
  return { clock, system: new ActorSystem({ clock, rng: createRng('actors') }) };
}

/** Records every message it completes; 'boom' throws. */
function recorder(
  name: string,
  extra: Partial<ActorDefinition<number[], Msg>> = {},
): ActorDefinition<number[], Msg> {
  return {
    name,
    init: () => [],
    receive(state, msg) {
      if (msg.type === 'boom') throw new Error('boom');
      if (msg.type === 'slow') return msg.gate.then(() => [...state, msg.n]);
      return [...state, msg.n];
    },
    ...extra,
  };
}

describe('actor system', () => {
  it('actor system - processes messages one at a time in arrival order, awaiting async receive', async () => {
    const { system } = setup();
    let concurrent = 0;
    let maxConcurrent = 0;
    const a = system.spawn<number[], { type: 'n'; n: number }>({
      name: 'seq:1',
      init: () => [],
      async receive(state, msg) {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        // later messages resolve faster: wrong ordering would show up
        for (let i = 0; i < 10 - msg.n; i++) await Promise.resolve();
        concurrent--;
        return [...state, msg.n];
      },
    });
    for (let n = 0; n < 10; n++) expect(a.tell({ type: 'n', n })).toBe(true);
    await system.whenIdle();
    expect(a.state()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(maxConcurrent).toBe(1);
    expect(system.stats().processed).toBe(10);
  });

  it('actor system - delivery is asynchronous, never re-entrant inside tell', async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1'));
    a.tell({ type: 'add', n: 1 });
    expect(a.state()).toEqual([]);
    await system.whenIdle();
    expect(a.state()).toEqual([1]);
  });

  it('actor system - restart keeps the queued mailbox and drops only the failing message', async () => {
    const { system } = setup();
    let inits = 0;
    const a = system.spawn(recorder('r:1', { init: () => (inits++, []) }));
    a.tell({ type: 'add', n: 1 });
    a.tell({ type: 'boom' });
    a.tell({ type: 'add', n: 2 });
    a.tell({ type: 'add', n: 3 });
    await system.whenIdle();
    expect(a.status()).toBe('running');
    expect(inits).toBe(2);
    // state was re-initialised, then the queued messages continued
    expect(a.state()).toEqual([2, 3]);
    expect(system.stats()).toMatchObject({ processed: 3, failures: 1, restarts: 1, dropped: { failed: 1 } });
  });

  it('actor system - rejected async receive fails the actor like a throw', async () => {
    const { system } = setup();
    const a = system.spawn<number, { type: 'x' }>({
      name: 'rej:1',
      init: () => 0,
      receive: () => Promise.reject(new Error('nope')),
    });
    a.tell({ type: 'x' });
    await system.whenIdle();
    expect(system.stats()).toMatchObject({ failures: 1, restarts: 1 });
    expect((a.lastError() as Error).message).toBe('nope');
  });

  it('actor system - restart waits for the simulated backoff while keeping messages', async () => {
    const { clock, system } = setup();
    const a = system.spawn(recorder('r:1', { supervision: { backoffMs: 5000 } }));
    a.tell({ type: 'boom' });
    a.tell({ type: 'add', n: 7 });
    await system.whenIdle();
    expect(a.status()).toBe('restarting');
    expect(a.tell({ type: 'add', n: 8 })).toBe(true);
    clock.advance(4999);
    await system.whenIdle();
    expect(a.status()).toBe('restarting');
    clock.advance(1);
    await system.whenIdle();
    expect(a.status()).toBe('running');
    expect(a.state()).toEqual([7, 8]);
  });

  it('actor system - more than maxRestarts within the window leaves the actor failed', async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1', { supervision: { maxRestarts: 2, withinMs: 60_000 } }));
    for (let i = 0; i < 3; i++) a.tell({ type: 'boom' });
    a.tell({ type: 'add', n: 1 });
    await system.whenIdle();
    expect(a.status()).toBe('failed');
    expect(system.stats()).toMatchObject({ restarts: 2, failures: 3, actors: 0, deadLetters: 1 });
    expect(a.tell({ type: 'add', n: 2 })).toBe(false);
    expect(system.stats().deadLetters).toBe(2);
  });

  it('actor system - restarts outside the window do not accumulate', async () => {
    const { clock, system } = setup();
    const a = system.spawn(recorder('r:1', { supervision: { maxRestarts: 1, withinMs: 1000 } }));
    for (let i = 0; i < 5; i++) {
      a.tell({ type: 'boom' });
      await system.whenIdle();
      clock.advance(1001);
    }
    expect(a.status()).toBe('running');
    expect(system.stats().restarts).toBe(5);
  });

  it("actor system - strategy 'stop' fails permanently on the first failure", async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1', { supervision: { strategy: 'stop' } }));
    a.tell({ type: 'boom' });
    await system.whenIdle();
    expect(a.status()).toBe('failed');
    expect(system.stats().restarts).toBe(0);
  });

  it('actor system - drop-newest refuses new messages when full and counts them', async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1', { mailbox: { capacity: 2, overflow: 'drop-newest' } }));
    expect([1, 2, 3, 4].map((n) => a.tell({ type: 'add', n }))).toEqual([true, true, false, false]);
    await system.whenIdle();
    expect(a.state()).toEqual([1, 2]);
    expect(system.stats()).toMatchObject({
      mailboxDropped: 2,
      dropped: { 'mailbox-full': 2, evicted: 0, rejected: 0 },
    });
  });

  it('actor system - drop-oldest evicts the oldest queued message and counts it', async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1', { mailbox: { capacity: 2, overflow: 'drop-oldest' } }));
    expect([1, 2, 3, 4].map((n) => a.tell({ type: 'add', n }))).toEqual([true, true, true, true]);
    await system.whenIdle();
    expect(a.state()).toEqual([3, 4]);
    expect(system.stats()).toMatchObject({ mailboxDropped: 2, dropped: { evicted: 2, 'mailbox-full': 0 } });
  });

  it('actor system - reject refuses and counts separately from mailbox-full', async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1', { mailbox: { capacity: 1, overflow: 'reject' } }));
    expect([1, 2].map((n) => a.tell({ type: 'add', n }))).toEqual([true, false]);
    await system.whenIdle();
    expect(system.stats().dropped).toMatchObject({ rejected: 1, 'mailbox-full': 0 });
  });

  it('actor system - scheduled messages arrive in simulated time; stop cancels them', async () => {
    const { clock, system } = setup();
    const a = system.spawn<number[], Msg>({
      ...recorder('tick:1'),
      init: (ctx) => {
        ctx.schedule(1000, { type: 'add', n: 1 });
        ctx.schedule(2000, { type: 'add', n: 2 });
        return [];
      },
    });
    expect(clock.pendingTimers()).toBe(2);
    clock.advance(1000);
    await system.whenIdle();
    expect(a.state()).toEqual([1]);
    a.stop();
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(5000);
    await system.whenIdle();
    expect(a.state()).toEqual([1]);
    expect(a.status()).toBe('stopped');
  });

  it('actor system - ctx.cancel cancels a timer and restart cancels the old incarnation timers', async () => {
    const { clock, system } = setup();
    const a = system.spawn<number[], Msg>({
      ...recorder('tick:1'),
      init: (ctx) => {
        const id = ctx.schedule(10, { type: 'add', n: 10 });
        ctx.cancel(id);
        ctx.schedule(100, { type: 'add', n: 100 });
        return [];
      },
    });
    a.tell({ type: 'boom' }); // restart: old timer cancelled, init schedules a new one
    await system.whenIdle();
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(100);
    await system.whenIdle();
    expect(a.state()).toEqual([100]);
  });

  it('actor system - stop dead-letters queued and later messages and frees the name', async () => {
    const { system } = setup();
    const a = system.spawn(recorder('r:1'));
    a.tell({ type: 'add', n: 1 });
    a.tell({ type: 'add', n: 2 });
    system.stop(a);
    expect(a.tell({ type: 'add', n: 3 })).toBe(false);
    await system.whenIdle();
    expect(a.state()).toEqual([]);
    expect(system.stats()).toMatchObject({ deadLetters: 3, actors: 0, processed: 0 });
    expect(system.spawn(recorder('r:1')).status()).toBe('running');
  });

  it('actor system - stop during an async receive discards its result', async () => {
    const { system } = setup();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const a = system.spawn(recorder('r:1'));
    a.tell({ type: 'slow', n: 1, gate });
    await Promise.resolve();
    a.stop();
    open();
    await system.whenIdle();
    expect(a.state()).toEqual([]);
    expect(system.stats().processed).toBe(0);
  });

  it('actor system - ctx.rng is the system rng forked by actor name', () => {
    const { system } = setup();
    let drawn = -1;
    system.spawn<number, { type: 'x' }>({
      name: 'dev:42',
      init: (ctx) => (drawn = ctx.rng.int(1_000_000)),
      receive: (s) => s,
    });
    expect(drawn).toBe(createRng('actors').fork('dev:42').int(1_000_000));
  });

  it('actor system - duplicate names and failing init are rejected at spawn', () => {
    const { system } = setup();
    system.spawn(recorder('r:1'));
    expect(() => system.spawn(recorder('r:1'))).toThrow(ActorNameTakenError);
    expect(() =>
      system.spawn({
        name: 'bad:1',
        init: () => {
          throw new Error('no');
        },
        receive: (s: number) => s,
      }),
    ).toThrow(ActorInitError);
    expect(system.stats().actors).toBe(1);
  });

  it('actor system - shutdown stops everything and waits for in-flight receives', async () => {
    const { system } = setup();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const a = system.spawn(recorder('r:1'));
    const b = system.spawn(recorder('r:2'));
    a.tell({ type: 'slow', n: 1, gate });
    await Promise.resolve();
    let done = false;
    const p = system.shutdown().then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    open();
    await p;
    expect([a.status(), b.status()]).toEqual(['stopped', 'stopped']);
    expect(() => system.spawn(recorder('r:3'))).toThrow();
  });

  it('actor system - metrics are labelled by actor kind and drop reason', async () => {
    const meter = createPromMeter();
    const clock = createManualClock(0);
    const system = new ActorSystem({ clock, rng: createRng(1), meter });
    const a = system.spawn(recorder('device:abc', { mailbox: { capacity: 1 } }));
    a.tell({ type: 'add', n: 1 });
    a.tell({ type: 'add', n: 2 });
    await system.whenIdle();
    a.tell({ type: 'boom' });
    await system.whenIdle();
    const text = await meter.metricsText();
    expect(text).toContain('sphere_actor_messages_processed_total{kind="device"} 1');
    expect(text).toContain('sphere_actor_messages_dropped_total{kind="device",reason="mailbox-full"} 1');
    expect(text).toContain('sphere_actor_messages_dropped_total{kind="device",reason="failed"} 1');
    expect(text).toContain('sphere_actor_restarts_total{kind="device"} 1');
    expect(text).toContain('sphere_actor_failures_total{kind="device"} 1');
  });

  it('actor system - 20,000 actors with a message each complete without per-actor timers', async () => {
    const { clock, system } = setup();
    const refs = Array.from({ length: 20_000 }, (_, i) => system.spawn(recorder(`device:${i}`)));
    for (const [i, r] of refs.entries()) r.tell({ type: 'add', n: i });
    await system.whenIdle();
    expect(system.stats()).toMatchObject({ actors: 20_000, processed: 20_000 });
    expect(refs[19_999]!.state()).toEqual([19_999]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('actor system - a self-messaging loop yields so macrotasks still run', async () => {
    const clock = createManualClock(0);
    const system = new ActorSystem({ clock, rng: createRng(1), yieldEvery: 100 });
    let stopAt = Infinity;
    const a = system.spawn<number, { type: 'spin' }>({
      name: 'spin:1',
      init: () => 0,
      receive(n, _msg, ctx) {
        if (n < stopAt) ctx.self.tell({ type: 'spin' });
        return n + 1;
      },
    });
    a.tell({ type: 'spin' });
    // setImmediate only runs if the actor loop yields the event loop
    await new Promise<void>((resolve) => setImmediate(resolve));
    stopAt = 0;
    await system.whenIdle();
    expect(a.state()).toBeGreaterThan(0);
  });
});
