import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsTransport, createPromMeter, TransportError } from '../../../actors/runtime/index.js';
import type { Transport } from '../../../actors/runtime/index.js';
import { useNatsServer } from '../../fixtures/nats.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TransportError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('nats transport', () => {
  const nats = useNatsServer();
  const meter = createPromMeter();
  let server: Transport;
  let client: Transport;

  beforeAll(async () => {
    server = await connectNatsTransport({ servers: nats().url, name: 'server', meter });
    client = await connectNatsTransport({ servers: nats().url, name: 'client', meter });
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
  });

  it('nats transport - request/reply round trip', async () => {
    const sub = server.serve('rt.echo', (m) => void m.respond(enc(`echo:${dec(m.data)}`)));
    await server.flush();
    expect(dec(await client.request('rt.echo', enc('hello'), { timeoutMs: 5000 }))).toBe('echo:hello');
    sub.unsubscribe();
    await sub.closed;
  });

  it('nats transport - 1,000 concurrent requests share one connection', async () => {
    const sub = server.serve('rt.double', async (m) => {
      await Promise.resolve();
      m.respond(enc(String(Number(dec(m.data)) * 2)));
    });
    await server.flush();
    const replies = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        client.request('rt.double', enc(String(i)), { timeoutMs: 30_000 }),
      ),
    );
    expect(replies.map((r) => Number(dec(r)))).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2));
    sub.unsubscribe();
    await sub.closed;
  });

  it('nats transport - NO_RESPONDERS when nobody serves the subject', async () => {
    const e = await rejection(client.request('rt.nobody', enc(''), { timeoutMs: 5000 }));
    expect(e.code).toBe('NO_RESPONDERS');
  });

  it('nats transport - TIMEOUT when the handler never replies', async () => {
    const sub = server.serve('rt.silent', () => undefined);
    await server.flush();
    const e = await rejection(client.request('rt.silent', enc(''), { timeoutMs: 100 }));
    expect(e.code).toBe('TIMEOUT');
    sub.unsubscribe();
    await sub.closed;
  });

  it('nats transport - a throwing handler is counted, answered with OTHER, and keeps serving', async () => {
    const sub = server.serve('rt.flaky', async (m) => {
      if (dec(m.data) === 'throw') throw new Error('handler bug');
      if (dec(m.data) === 'reject') return Promise.reject(new Error('async bug'));
      m.respond(enc('ok'));
    });
    await server.flush();
    expect((await rejection(client.request('rt.flaky', enc('throw'), { timeoutMs: 5000 }))).code).toBe(
      'OTHER',
    );
    expect((await rejection(client.request('rt.flaky', enc('reject'), { timeoutMs: 5000 }))).code).toBe(
      'OTHER',
    );
    expect(dec(await client.request('rt.flaky', enc('fine'), { timeoutMs: 5000 }))).toBe('ok');
    expect(await meter.metricsText()).toContain(
      'sphere_transport_handler_errors_total{subject="rt.flaky"} 2',
    );
    sub.unsubscribe();
    await sub.closed;
  });

  it('nats transport - queue group members split the messages; each message handled once', async () => {
    const other = await connectNatsTransport({ servers: nats().url, name: 'server-2' });
    const seen = { a: 0, b: 0 };
    const subA = server.serve('rt.work', (m) => (seen.a++, void m.respond(enc('a'))), { queue: 'workers' });
    const subB = other.serve('rt.work', (m) => (seen.b++, void m.respond(enc('b'))), { queue: 'workers' });
    await Promise.all([server.flush(), other.flush()]);
    const replies = await Promise.all(
      Array.from({ length: 200 }, () => client.request('rt.work', enc(''), { timeoutMs: 10_000 })),
    );
    expect(seen.a + seen.b).toBe(200);
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(0);
    expect(new Set(replies.map(dec))).toEqual(new Set(['a', 'b']));
    subA.unsubscribe();
    subB.unsubscribe();
    await other.close();
  });

  it('nats transport - wildcard subscriptions and publish', async () => {
    const subjects: string[] = [];
    let done!: () => void;
    const got = new Promise<void>((r) => (done = r));
    const sub = server.serve('rt.dev.*.status', (m) => {
      subjects.push(m.subject);
      if (subjects.length === 2) done();
    });
    await server.flush();
    client.publish('rt.dev.1.status', enc(''));
    client.publish('rt.dev.1.other', enc(''));
    client.publish('rt.dev.2.status', enc(''));
    await client.flush();
    await got;
    expect(subjects).toEqual(['rt.dev.1.status', 'rt.dev.2.status']);
    sub.unsubscribe();
  });

  it('nats transport - serve maxPayload answers oversized requests with PAYLOAD_TOO_LARGE', async () => {
    const sub = server.serve('rt.small', (m) => void m.respond(enc('ok')), { maxPayload: 8 });
    await server.flush();
    expect((await rejection(client.request('rt.small', new Uint8Array(9), { timeoutMs: 5000 }))).code).toBe(
      'PAYLOAD_TOO_LARGE',
    );
    expect(dec(await client.request('rt.small', new Uint8Array(8), { timeoutMs: 5000 }))).toBe('ok');
    sub.unsubscribe();
  });

  it('nats transport - close rejects in-flight requests with CLOSED and refuses later calls', async () => {
    const t = await connectNatsTransport({ servers: nats().url, name: 'closer' });
    const sub = server.serve('rt.hang', () => undefined);
    await server.flush();
    const pending = rejection(t.request('rt.hang', enc(''), { timeoutMs: 60_000 }));
    await t.flush();
    await t.close();
    expect((await pending).code).toBe('CLOSED');
    expect(t.isClosed).toBe(true);
    expect((await rejection(t.request('rt.hang', enc(''), { timeoutMs: 100 }))).code).toBe('CLOSED');
    expect(() => t.publish('rt.hang', enc(''))).toThrow(TransportError);
    sub.unsubscribe();
  });
});
