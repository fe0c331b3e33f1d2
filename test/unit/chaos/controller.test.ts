import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Counter, Gauge, Labels, Meter } from '../../../actors/runtime/index.js';
import { ChaosController, endpointIn, linksBetween } from '../../../deploy/chaos/controller.js';
import type { ChaosLink, ChaosProcess } from '../../../deploy/chaos/controller.js';
import type { LinkFault, LinkProxy } from '../../../deploy/chaos/proxy.js';
import type { ChaosAction, ChaosFault } from '../../../loadgen/scenario/index.js';

// ---------------------------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------------------------

type Call = readonly [op: string, target: string, ...args: unknown[]];

/** A LinkProxy that records what it is asked to do (in `calls`, shared by the whole stack). */
function fakeProxy(name: string, calls: Call[]): LinkProxy {
  return {
    name,
    host: '127.0.0.1',
    port: 0,
    address: '127.0.0.1:0',
    url: 'nats://127.0.0.1:0',
    apply(id: string, fault: LinkFault, opts?: { share?: number }) {
      calls.push(['apply', name, id, fault, opts?.share]);
    },
    clear(id: string) {
      calls.push(['clear', name, id]);
    },
    clearAll() {
      calls.push(['clearAll', name]);
    },
    active: () => [],
    stats: () => ({
      accepted: 0,
      open: 0,
      refused: 0,
      resets: 0,
      bytesUp: 0,
      bytesDown: 0,
      held: 0,
      queued: 0,
      lost: 0,
    }),
    close: () => Promise.resolve(),
  };
}

/** A process whose restart resolves (or rejects) when the test says so. */
interface FakeProcess extends ChaosProcess {
  finishRestart(error?: Error): void;
}

function fakeProcess(name: string, calls: Call[]): FakeProcess {
  let settle: ((error?: Error) => void) | null = null;
  return {
    name,
    kill: () => void calls.push(['kill', name]),
    pause: () => void calls.push(['pause', name]),
    resume: () => void calls.push(['resume', name]),
    restart() {
      calls.push(['restart', name]);
      return new Promise<void>((resolve, reject) => {
        settle = (error) => (error === undefined ? resolve() : reject(error));
      });
    },
    finishRestart(error?: Error) {
      if (settle === null) throw new Error(`${name} is not restarting`);
      settle(error);
      settle = null;
    },
  };
}

/** A meter that keeps every counter and gauge value by `name{labels}`. */
function recordingMeter(): { meter: Meter; values: Map<string, number> } {
  const values = new Map<string, number>();
  const add = (name: string, a?: Labels | number, b?: number, sign = 1): void => {
    const labels = typeof a === 'object' ? a : {};
    const by = (typeof a === 'number' ? a : b) ?? 1;
    const key = `${name}{${Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',')}}`;
    values.set(key, (values.get(key) ?? 0) + sign * by);
  };
  const meter: Meter = {
    counter: ({ name }): Counter => ({ inc: (a?: Labels | number, b?: number) => add(name, a, b) }),
    gauge: ({ name }): Gauge => ({
      inc: (a?: Labels | number, b?: number) => add(name, a, b),
      dec: (a?: Labels | number, b?: number) => add(name, a, b, -1),
      set: () => undefined,
      remove: () => undefined,
    }),
    histogram: () => ({ observe: () => undefined }),
  };
  return { meter, values };
}

/** A stack of 2 shards and 2 NATS nodes: devices and shards link to each node, nodes to each other. */
function stack(): {
  calls: Call[];
  links: ChaosLink[];
  processes: FakeProcess[];
  proc: (name: string) => FakeProcess;
  log: string[];
  values: Map<string, number>;
  controller: ChaosController;
} {
  const calls: Call[] = [];
  const link = (from: string, to: string): ChaosLink => ({
    from,
    to,
    proxy: fakeProxy(`${from}->${to}`, calls),
  });
  const links = [
    link('devices', 'nats-0'),
    link('devices', 'nats-1'),
    link('shard-0', 'nats-0'),
    link('shard-0', 'nats-1'),
    link('shard-1', 'nats-0'),
    link('shard-1', 'nats-1'),
    link('nats-0', 'nats-1'),
    link('nats-1', 'nats-0'),
  ];
  const processes = ['shard-0', 'shard-1', 'nats-0', 'nats-1'].map((n) => fakeProcess(n, calls));
  const log: string[] = [];
  const { meter, values } = recordingMeter();
  const controller = new ChaosController({
    links,
    processes,
    meter,
    log: (line) => log.push(line),
    now: () => Date.now(),
  });
  const proc = (name: string): FakeProcess => {
    const p = processes.find((x) => x.name === name);
    if (p === undefined) throw new Error(name);
    return p;
  };
  return { calls, links, processes, proc, log, values, controller };
}

const fault = (
  index: number,
  atMs: number,
  forMs: number | null,
  action: ChaosAction,
  label?: string,
): ChaosFault => ({
  index,
  atMs,
  forMs,
  action,
  label: label ?? `${action.kind} #${index}`,
});

const between = (a: string[], b: string[]): { between: readonly [string[], string[]]; share: number } => ({
  between: [a, b],
  share: 1,
});

const names = (links: readonly ChaosLink[]): string[] => links.map((l) => `${l.from}->${l.to}`);

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(1_000_000);
});

afterEach(() => {
  vi.useRealTimers();
});

// ---------------------------------------------------------------------------------------------
// Link selection
// ---------------------------------------------------------------------------------------------

describe('chaos controller: link selection', () => {
  it('endpointIn - names match exactly; shards and nats stand for every member', () => {
    expect(endpointIn('shard-1', ['shards'])).toBe(true);
    expect(endpointIn('shard-1', ['shard-1'])).toBe(true);
    expect(endpointIn('shard-1', ['shard-0', 'nats'])).toBe(false);
    expect(endpointIn('shard-10', ['shard-1'])).toBe(false);
    expect(endpointIn('nats-2', ['nats'])).toBe(true);
    expect(endpointIn('nats-2', ['shards'])).toBe(false);
    expect(endpointIn('devices', ['devices', 'nats-0'])).toBe(true);
    expect(endpointIn('devices', ['nats', 'shards'])).toBe(false);
  });

  it('linksBetween - links between the sides in either direction, and only those', () => {
    const { links } = stack();
    expect(names(linksBetween(links, [['shard-1'], ['nats']]))).toEqual([
      'shard-1->nats-0',
      'shard-1->nats-1',
    ]);
    expect(names(linksBetween(links, [['nats'], ['shard-1']]))).toEqual([
      'shard-1->nats-0',
      'shard-1->nats-1',
    ]);
    expect(names(linksBetween(links, [['shards'], ['nats-1']]))).toEqual([
      'shard-0->nats-1',
      'shard-1->nats-1',
    ]);
    expect(names(linksBetween(links, [['devices'], ['nats']]))).toEqual([
      'devices->nats-0',
      'devices->nats-1',
    ]);
    expect(names(linksBetween(links, [['devices', 'shards'], ['nats-0']]))).toEqual([
      'devices->nats-0',
      'shard-0->nats-0',
      'shard-1->nats-0',
    ]);
    // A node cut off from the others: both route directions.
    expect(names(linksBetween(links, [['nats-0'], ['nats']]))).toEqual(['nats-0->nats-1', 'nats-1->nats-0']);
    expect(linksBetween(links, [['shards'], ['devices']])).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Playing a timeline
// ---------------------------------------------------------------------------------------------

describe('chaos controller: link faults', () => {
  it('play - a fault starts at atMs on the selected proxies and heals after forMs', async () => {
    const { calls, controller, log } = stack();
    vi.advanceTimersByTime(5_000); // the timeline counts from play(), not from construction
    controller.play([
      fault(
        0,
        1_000,
        2_000,
        { kind: 'partition', ...between(['shard-1'], ['nats']) },
        'partition shard-1 | nats',
      ),
      fault(1, 1_500, 1_000, { kind: 'latency', ms: 150, jitterMs: 50, ...between(['devices'], ['nats-0']) }),
    ]);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toEqual([]);
    expect(controller.spans()).toEqual([]);

    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([
      ['apply', 'shard-1->nats-0', 'f0', { kind: 'cut' }, 1],
      ['apply', 'shard-1->nats-1', 'f0', { kind: 'cut' }, 1],
    ]);
    expect(controller.active()).toEqual([{ id: 'f0', label: 'partition shard-1 | nats', sinceMs: 1_000 }]);
    expect(log).toEqual([
      'chaos    1.0s f0 ⚡ partition shard-1 | nats (2 links: shard-1→nats-0 shard-1→nats-1)',
    ]);

    calls.length = 0;
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toEqual([
      ['apply', 'devices->nats-0', 'f1', { kind: 'latency', ms: 150, jitterMs: 50 }, 1],
    ]);

    calls.length = 0;
    await vi.advanceTimersByTimeAsync(1_000); // 2.5 s: the latency heals
    expect(calls).toEqual([['clear', 'devices->nats-0', 'f1']]);
    expect(controller.active().map((a) => a.id)).toEqual(['f0']);

    calls.length = 0;
    await vi.advanceTimersByTimeAsync(499);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1); // 3 s: the partition heals
    expect(calls).toEqual([
      ['clear', 'shard-1->nats-0', 'f0'],
      ['clear', 'shard-1->nats-1', 'f0'],
    ]);
    expect(controller.active()).toEqual([]);
    expect(controller.spans()).toEqual([
      { id: 'f0', label: 'partition shard-1 | nats', startMs: 1_000, endMs: 3_000 },
      { id: 'f1', label: 'latency #1', startMs: 1_500, endMs: 2_500 },
    ]);
    expect(controller.events().map((e) => [e.atMs, e.fault, e.action])).toEqual([
      [1_000, 'f0', 'start'],
      [1_500, 'f1', 'start'],
      [2_500, 'f1', 'heal'],
      [3_000, 'f0', 'heal'],
    ]);
    expect(log.at(-1)).toBe('chaos    3.0s f0 ✓ heal partition shard-1 | nats');
  });

  it('inject - each link fault kind maps to its proxy fault, with its share', () => {
    const { calls, controller } = stack();
    const sel = { between: [['devices'], ['nats-1']] as const, share: 0.3 };
    controller.inject(fault(0, 0, 1_000, { kind: 'bandwidth', bytesPerSecond: 65_536, ...sel }));
    controller.inject(fault(1, 0, 1_000, { kind: 'loss', rate: 0.05, ...sel }));
    controller.inject(fault(2, 0, 1_000, { kind: 'reset', ...sel }));
    controller.inject(fault(3, 0, 1_000, { kind: 'latency', ms: 10, jitterMs: 0, ...sel }));
    controller.inject(fault(4, 0, 1_000, { kind: 'partition', ...sel }));
    expect(calls).toEqual([
      ['apply', 'devices->nats-1', 'f0', { kind: 'bandwidth', bytesPerSec: 65_536 }, 0.3],
      ['apply', 'devices->nats-1', 'f1', { kind: 'loss', rate: 0.05 }, 0.3],
      ['apply', 'devices->nats-1', 'f2', { kind: 'reset' }, 0.3],
      ['apply', 'devices->nats-1', 'f3', { kind: 'latency', ms: 10, jitterMs: 0 }, 0.3],
      ['apply', 'devices->nats-1', 'f4', { kind: 'cut' }, 0.3],
    ]);
    expect(controller.active().map((a) => a.id)).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
  });

  it('inject - a reset without for is a one-off: cleared at once, its span ends where it starts', async () => {
    const { calls, controller, values } = stack();
    await vi.advanceTimersByTimeAsync(700);
    const id = controller.inject(fault(3, 0, null, { kind: 'reset', ...between(['shards'], ['nats-0']) }));
    expect(id).toBe('f3');
    expect(calls).toEqual([
      ['apply', 'shard-0->nats-0', 'f3', { kind: 'reset' }, 1],
      ['apply', 'shard-1->nats-0', 'f3', { kind: 'reset' }, 1],
      ['clear', 'shard-0->nats-0', 'f3'],
      ['clear', 'shard-1->nats-0', 'f3'],
    ]);
    expect(controller.active()).toEqual([]);
    expect(controller.spans()).toEqual([{ id: 'f3', label: 'reset #3', startMs: 700, endMs: 700 }]);
    expect(controller.events().map((e) => e.action)).toEqual(['start']);
    expect(values.get('sphere_chaos_faults_total{kind=reset}')).toBe(1);
    expect(values.get('sphere_chaos_faults_active{kind=reset}')).toBeUndefined();
    // Nothing left to heal.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(4);
  });

  it('inject - a link fault without for stays until healed by hand', async () => {
    const { calls, controller } = stack();
    const id = controller.inject(fault(-1, 0, null, { kind: 'partition', ...between(['nats-1'], ['nats']) }));
    expect(id).toBe('fm1');
    expect(
      controller.inject(fault(-1, 0, null, { kind: 'loss', rate: 1, ...between(['devices'], ['nats']) })),
    ).toBe('fm2');
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(calls.filter((c) => c[0] === 'clear')).toEqual([]);
    await controller.heal('fm1');
    expect(calls.filter((c) => c[0] === 'clear')).toEqual([
      ['clear', 'nats-0->nats-1', 'fm1'],
      ['clear', 'nats-1->nats-0', 'fm1'],
    ]);
    expect(controller.spans()[0]).toMatchObject({ id: 'fm1', startMs: 0, endMs: 3_600_000 });
    expect(controller.spans()[1]).toMatchObject({ id: 'fm2', endMs: null });
    // Healing again (or an unknown id) does nothing.
    await controller.heal('fm1');
    await controller.heal('nope');
    expect(calls.filter((c) => c[0] === 'clear')).toHaveLength(2);
  });
});

describe('chaos controller: process faults', () => {
  it('kill - kills at once, restarts after for; down until the restart is done', async () => {
    const { calls, controller, proc, values } = stack();
    controller.play([fault(0, 2_000, 10_000, { kind: 'kill', target: 'shard-1' }, 'kill shard-1')]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toEqual([['kill', 'shard-1']]);
    expect(controller.isDown('shard-1')).toBe(true);
    expect(controller.isDown('shard-0')).toBe(false);
    expect(values.get('sphere_chaos_faults_active{kind=kill}')).toBe(1);

    await vi.advanceTimersByTimeAsync(9_999);
    expect(calls).toEqual([['kill', 'shard-1']]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([
      ['kill', 'shard-1'],
      ['restart', 'shard-1'],
    ]);
    // Restarting takes a while: still down, the span still open.
    await vi.advanceTimersByTimeAsync(1_500);
    expect(controller.isDown('shard-1')).toBe(true);
    expect(controller.spans()).toEqual([{ id: 'f0', label: 'kill shard-1', startMs: 2_000, endMs: null }]);

    proc('shard-1').finishRestart();
    await controller.settled();
    expect(controller.isDown('shard-1')).toBe(false);
    expect(controller.spans()).toEqual([{ id: 'f0', label: 'kill shard-1', startMs: 2_000, endMs: 13_500 }]);
    expect(controller.events().map((e) => [e.atMs, e.action, e.detail])).toEqual([
      [2_000, 'start', 'SIGKILL'],
      [13_500, 'heal', 'restarted'],
    ]);
    expect(values.get('sphere_chaos_faults_total{kind=kill}')).toBe(1);
    expect(values.get('sphere_chaos_heals_total{kind=kill}')).toBe(1);
    expect(values.get('sphere_chaos_faults_active{kind=kill}')).toBe(0);
  });

  it('kill - a restart that fails ends the span with an error event', async () => {
    const { controller, proc, values } = stack();
    controller.inject(fault(0, 0, 1_000, { kind: 'kill', target: 'nats-0' }));
    await vi.advanceTimersByTimeAsync(1_000);
    proc('nats-0').finishRestart(new Error('port in use'));
    await controller.settled();
    expect(controller.events().at(-1)).toMatchObject({ action: 'error', detail: 'heal failed: port in use' });
    expect(controller.spans()[0]?.endMs).toBe(1_000);
    expect(values.get('sphere_chaos_errors_total{kind=kill}')).toBe(1);
    expect(values.get('sphere_chaos_heals_total{kind=kill}')).toBeUndefined();
  });

  it('pause - SIGSTOP then SIGCONT after for', async () => {
    const { calls, controller } = stack();
    controller.play([fault(0, 100, 3_000, { kind: 'pause', target: 'nats-1' })]);
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toEqual([['pause', 'nats-1']]);
    expect(controller.isDown('nats-1')).toBe(false);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(calls).toEqual([
      ['pause', 'nats-1'],
      ['resume', 'nats-1'],
    ]);
    expect(controller.spans()).toEqual([{ id: 'f0', label: 'pause #0', startMs: 100, endMs: 3_100 }]);
    expect(controller.events().map((e) => [e.action, e.detail])).toEqual([
      ['start', 'SIGSTOP'],
      ['heal', ''],
    ]);
  });

  it('an unknown process is an error event, with no span and nothing done', async () => {
    const { calls, controller, values, log } = stack();
    const id = controller.inject(fault(2, 0, 1_000, { kind: 'kill', target: 'shard-9' }, 'kill shard-9'));
    expect(id).toBe('f2');
    expect(calls).toEqual([]);
    expect(controller.spans()).toEqual([]);
    expect(controller.active()).toEqual([]);
    expect(controller.isDown('shard-9')).toBe(false);
    expect(controller.events()).toEqual([
      {
        atMs: 0,
        fault: 'f2',
        action: 'error',
        label: 'kill shard-9',
        detail: 'no process shard-9 in this stack (shard-0, shard-1, nats-0, nats-1)',
      },
    ]);
    expect(log[0]).toContain('f2 ✗ kill shard-9 (no process shard-9');
    expect(values.get('sphere_chaos_errors_total{kind=kill}')).toBe(1);
    expect(values.get('sphere_chaos_faults_total{kind=kill}')).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual([]);
  });
});

describe('chaos controller: stop', () => {
  it('stop() cancels what is scheduled and resumes paused processes; other faults stay', async () => {
    const { calls, controller } = stack();
    controller.play([
      fault(0, 0, 60_000, { kind: 'partition', ...between(['shard-0'], ['nats-0']) }),
      fault(1, 500, 60_000, { kind: 'kill', target: 'shard-1' }),
      fault(2, 700, 60_000, { kind: 'pause', target: 'nats-1' }),
      fault(3, 5_000, 1_000, { kind: 'pause', target: 'nats-0' }),
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual([
      ['apply', 'shard-0->nats-0', 'f0', { kind: 'cut' }, 1],
      ['kill', 'shard-1'],
      ['pause', 'nats-1'],
    ]);
    await controller.stop();
    expect(calls.slice(3)).toEqual([['resume', 'nats-1']]);
    expect(controller.spans().map((s) => [s.id, s.endMs])).toEqual([
      ['f0', null],
      ['f1', null],
      ['f2', 1_000],
    ]);
    expect(controller.active().map((a) => a.id)).toEqual(['f0', 'f1']);
    expect(controller.isDown('shard-1')).toBe(true);

    // Neither the scheduled pause nor the heals happen, and nothing is injected once stopped.
    await vi.advanceTimersByTimeAsync(120_000);
    controller.inject(fault(4, 0, null, { kind: 'pause', target: 'nats-0' }));
    expect(calls).toHaveLength(4);
    expect(controller.spans()).toHaveLength(3);
  });

  it('stop() waits for a restart already under way', async () => {
    const { calls, controller, proc } = stack();
    controller.inject(fault(0, 0, 1_000, { kind: 'kill', target: 'nats-1' }));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual([
      ['kill', 'nats-1'],
      ['restart', 'nats-1'],
    ]);
    let done = false;
    const stopped = controller.stop().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(done).toBe(false);
    proc('nats-1').finishRestart();
    await stopped;
    expect(controller.isDown('nats-1')).toBe(false);
    expect(controller.spans()).toEqual([{ id: 'f0', label: 'kill #0', startMs: 0, endMs: 1_500 }]);
  });

  it('elapsedMs counts from play()', async () => {
    const { controller } = stack();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(controller.elapsedMs()).toBe(4_000);
    controller.play([]);
    expect(controller.elapsedMs()).toBe(0);
    await vi.advanceTimersByTimeAsync(250);
    expect(controller.elapsedMs()).toBe(250);
  });
});
