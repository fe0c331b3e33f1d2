import { describe, expect, it } from 'vitest';
import { createMemoryBus, createPromMeter, TransportError } from '../../../actors/runtime/index.js';
import type { InboundMessage, WallTimers } from '../../../actors/runtime/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Wall timers that only fire when the test says so. */
function manualTimers(): Pick<WallTimers, 'setTimeout' | 'clearTimeout'> & {
  fireAll(): void;
  count(): number;
} {
  const timers = new Map<number, () => void>();
  let seq = 0;
  return {
    setTimeout: (fn) => (timers.set(++seq, fn), seq),
    clearTimeout: (h) => void timers.delete(h as number),
    fireAll() {
      const fns = [...timers.values()];
      timers.clear();
      for (const f of fns) f();
    },
    count: () => timers.size,
  };
}

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TransportError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('memory transport', () => {
  it('memory transport - request/reply round trip across connections', async () => {
    const bus = createMemoryBus();
    const server = bus.connect('server');
    const client = bus.connect('client');
    server.serve('echo', (m) => void m.respond(enc(`echo:${dec(m.data)}`)));
    const reply = await client.request('echo', enc('hi'), { timeoutMs: 1000 });
    expect(dec(reply)).toBe('echo:hi');
  });

  it('memory transport - delivery is asynchronous and receivers get their own bytes', async () => {
    const bus = createMemoryBus();
    const t = bus.connect();
    const got: InboundMessage[] = [];
    t.serve('a', (m) => void got.push(m));
    const data = enc('x');
    t.publish('a', data);
    expect(got).toHaveLength(0);
    data[0] = 0;
    await t.flush();
    expect(got).toHaveLength(1);
    expect(dec(got[0]!.data)).toBe('x');
  });

  it('memory transport - wildcards * and > match like NATS', async () => {
    const bus = createMemoryBus();
    const t = bus.connect();
    const seen: Record<string, string[]> = { star: [], gt: [], exact: [] };
    t.serve('dev.*.status', (m) => void seen['star']!.push(m.subject));
    t.serve('dev.>', (m) => void seen['gt']!.push(m.subject));
    t.serve('dev.1.status', (m) => void seen['exact']!.push(m.subject));
    for (const s of ['dev.1.status', 'dev.2.status', 'dev.1.status.x', 'dev', 'other.1.status'])
      t.publish(s, enc(''));
    await t.flush();
    expect(seen).toEqual({
      star: ['dev.1.status', 'dev.2.status'],
      gt: ['dev.1.status', 'dev.2.status', 'dev.1.status.x'],
      exact: ['dev.1.status'],
    });
  });

  it('memory transport - queue group members share messages round-robin; plain subscribers get all', async () => {
    const bus = createMemoryBus();
    const t = bus.connect();
    const counts = { a: 0, b: 0, c: 0, all: 0 };
    t.serve('work', () => void counts.a++, { queue: 'workers' });
    t.serve('work', () => void counts.b++, { queue: 'workers' });
    t.serve('work', () => void counts.c++, { queue: 'workers' });
    t.serve('work', () => void counts.all++);
    for (let i = 0; i < 30; i++) t.publish('work', enc(String(i)));
    await t.flush();
    expect(counts).toEqual({ a: 10, b: 10, c: 10, all: 30 });
  });

  it('memory transport - NO_RESPONDERS when nobody serves the subject', async () => {
    const t = createMemoryBus().connect();
    const e = await rejection(t.request('nobody.home', enc(''), { timeoutMs: 1000 }));
    expect(e.code).toBe('NO_RESPONDERS');
  });

  it('memory transport - TIMEOUT when the server never replies (wall timer)', async () => {
    const timers = manualTimers();
    const t = createMemoryBus({ timers }).connect();
    t.serve('silent', () => undefined);
    const p = rejection(t.request('silent', enc(''), { timeoutMs: 50 }));
    await t.flush();
    timers.fireAll();
    expect((await p).code).toBe('TIMEOUT');
  });

  it('memory transport - replies clear their timeout timer', async () => {
    const timers = manualTimers();
    const t = createMemoryBus({ timers }).connect();
    t.serve('x', (m) => void m.respond(enc('ok')));
    await t.request('x', enc(''), { timeoutMs: 50 });
    expect(timers.count()).toBe(0);
  });

  it('memory transport - a throwing handler is counted, answered with OTHER, and keeps serving', async () => {
    const meter = createPromMeter();
    const errors: unknown[] = [];
    const t = createMemoryBus({ meter, onHandlerError: (e) => errors.push(e) }).connect();
    let calls = 0;
    t.serve('flaky', async (m) => {
      calls++;
      if (dec(m.data) === 'throw') throw new Error('sync-ish');
      if (dec(m.data) === 'reject') return Promise.reject(new Error('async'));
      m.respond(enc('fine'));
    });
    expect((await rejection(t.request('flaky', enc('throw'), { timeoutMs: 1000 }))).code).toBe('OTHER');
    expect((await rejection(t.request('flaky', enc('reject'), { timeoutMs: 1000 }))).code).toBe('OTHER');
    expect(dec(await t.request('flaky', enc('ok'), { timeoutMs: 1000 }))).toBe('fine');
    expect(calls).toBe(3);
    expect(errors).toHaveLength(2);
    expect(await meter.metricsText()).toContain('sphere_transport_handler_errors_total{subject="flaky"} 2');
  });

  it('memory transport - serve maxPayload rejects oversized requests with PAYLOAD_TOO_LARGE', async () => {
    const t = createMemoryBus().connect();
    let called = false;
    t.serve('small', (m) => ((called = true), void m.respond(enc('ok'))), { maxPayload: 4 });
    expect((await rejection(t.request('small', new Uint8Array(5), { timeoutMs: 1000 }))).code).toBe(
      'PAYLOAD_TOO_LARGE',
    );
    expect(called).toBe(false);
    expect(dec(await t.request('small', new Uint8Array(4), { timeoutMs: 1000 }))).toBe('ok');
  });

  it('memory transport - concurrency bounds in-flight async handlers per subscription', async () => {
    const t = createMemoryBus().connect();
    let inFlight = 0;
    let max = 0;
    const gates: (() => void)[] = [];
    t.serve(
      'slow',
      async () => {
        inFlight++;
        max = Math.max(max, inFlight);
        await new Promise<void>((r) => gates.push(r));
        inFlight--;
      },
      { concurrency: 3 },
    );
    for (let i = 0; i < 10; i++) t.publish('slow', enc(''));
    await t.flush();
    while (gates.length > 0) {
      expect(inFlight).toBeLessThanOrEqual(3);
      gates.shift()!();
      await new Promise<void>((r) => setImmediate(r));
    }
    expect(max).toBe(3);
  });

  it('memory transport - unsubscribe stops delivery and resolves closed', async () => {
    const t = createMemoryBus().connect();
    let n = 0;
    const sub = t.serve('s', () => void n++);
    t.publish('s', enc(''));
    await t.flush();
    sub.unsubscribe();
    await sub.closed;
    t.publish('s', enc(''));
    await t.flush();
    expect(n).toBe(1);
  });

  it('memory transport - close rejects pending requests with CLOSED and later calls too', async () => {
    const bus = createMemoryBus();
    const server = bus.connect();
    const client = bus.connect();
    server.serve('never', () => undefined);
    const pending = rejection(client.request('never', enc(''), { timeoutMs: 60_000 }));
    await client.flush();
    await client.close();
    expect((await pending).code).toBe('CLOSED');
    expect(client.isClosed).toBe(true);
    expect((await rejection(client.request('never', enc(''), { timeoutMs: 10 }))).code).toBe('CLOSED');
    expect(() => client.publish('x', enc(''))).toThrow(TransportError);
    expect(bus.subscriptionCount).toBe(1);
  });

  it('memory transport - invalid subjects are refused', () => {
    const t = createMemoryBus().connect();
    expect(() => t.publish('a.*', enc(''))).toThrow(TransportError);
    expect(() => t.serve('a.>.b', () => undefined)).toThrow(TransportError);
    expect(() => t.publish('a..b', enc(''))).toThrow(TransportError);
  });
});
