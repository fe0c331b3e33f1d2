import { randomBytes } from 'node:crypto';
import { createServer, connect as netConnect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { connect, StringCodec } from 'nats';
import type { NatsConnection } from 'nats';
import { afterEach, describe, expect, it } from 'vitest';
import { createRng } from '../../../actors/runtime/index.js';
import { LOSS_RTO_MAX_MS, LOSS_RTO_MIN_MS, startLinkProxy } from '../../../deploy/chaos/proxy.js';
import type { LinkProxy, LinkProxyOptions } from '../../../deploy/chaos/proxy.js';
import { getFreePort, useNatsServer } from '../../fixtures/nats.js';

// ---- helpers ---------------------------------------------------------------------------------

/** A seeded uniform stream in [0, 1) (the project's RNG), reproducible by seed. */
function seeded(seed: number): () => number {
  const rng = createRng(`proxy-test/${seed}`);
  return () => rng.next();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, pred: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** One connection as the upstream (echo) server sees it. */
interface UpstreamConn {
  readonly socket: Socket;
  received: Buffer[];
  ended: boolean;
  closed: boolean;
}

/** A node:net echo server that records what each connection sent and whether it ended. */
interface EchoServer {
  readonly port: number;
  readonly conns: UpstreamConn[];
  close(): Promise<void>;
}

async function startEcho(): Promise<EchoServer> {
  const conns: UpstreamConn[] = [];
  const server: Server = createServer((socket) => {
    const c: UpstreamConn = { socket, received: [], ended: false, closed: false };
    conns.push(c);
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      c.received.push(d);
      socket.write(d);
    });
    socket.on('end', () => (c.ended = true));
    socket.on('close', () => (c.closed = true));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    port,
    conns,
    close: async () => {
      for (const c of conns) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client connection with everything it received, and how it ended. */
interface Client {
  readonly socket: Socket;
  chunks: Buffer[];
  readonly closed: Promise<void>;
  isClosed: boolean;
  ended: boolean;
  error: NodeJS.ErrnoException | undefined;
  bytes(): Buffer;
  text(): string;
  waitBytes(n: number, timeoutMs?: number): Promise<Buffer>;
}

/**
 * Connect to `port`. Strict (default): reject when the connection fails. Not strict: also resolve
 * when the connection is closed (or reset) before or right after it was established.
 */
function openClient(port: number, strict = true): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    let closedResolve!: () => void;
    const client: Client = {
      socket,
      chunks: [],
      closed: new Promise<void>((r) => (closedResolve = r)),
      isClosed: false,
      ended: false,
      error: undefined,
      bytes: () => Buffer.concat(client.chunks),
      text: () => client.bytes().toString('utf8'),
      waitBytes: async (n, timeoutMs = 20_000) => {
        await waitUntil(
          `${n} bytes (have ${client.bytes().length})`,
          () => client.bytes().length >= n,
          timeoutMs,
        );
        return client.bytes();
      },
    };
    socket.on('data', (d: Buffer) => client.chunks.push(d));
    socket.on('end', () => (client.ended = true));
    socket.on('error', (e: NodeJS.ErrnoException) => (client.error ??= e));
    socket.on('close', () => {
      client.isClosed = true;
      closedResolve();
    });
    socket.once('connect', () => resolve(client));
    if (strict) socket.once('error', reject);
    else socket.once('close', () => resolve(client));
  });
}

/** Open a client and wait for one echo round trip, so the proxy has surely accepted it. */
async function openEchoed(port: number, hello = 'hi'): Promise<Client> {
  const c = await openClient(port);
  c.socket.write(hello);
  await c.waitBytes(hello.length);
  c.chunks = [];
  return c;
}

async function roundTrip(c: Client, msg: string): Promise<number> {
  const before = c.bytes().length;
  const t0 = performance.now();
  c.socket.write(msg);
  await c.waitBytes(before + msg.length, 30_000);
  return performance.now() - t0;
}

function tcpHandles(): number {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'TCPWRAP').length;
}

// ---- fixtures --------------------------------------------------------------------------------

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  const todo = cleanups.reverse();
  cleanups = [];
  for (const f of todo) await f();
});

async function echoAndProxy(
  random: () => number = seeded(1),
  extra: Partial<LinkProxyOptions> = {},
): Promise<{ echo: EchoServer; proxy: LinkProxy; clients: Client[] }> {
  const echo = await startEcho();
  cleanups.push(() => echo.close());
  const proxy = await startLinkProxy({
    name: 'test-link',
    upstream: { host: '127.0.0.1', port: echo.port },
    random,
    ...extra,
  });
  const clients: Client[] = [];
  cleanups.push(async () => {
    for (const c of clients) c.socket.destroy();
    await proxy.close();
  });
  return { echo, proxy, clients };
}

// ---- tests -----------------------------------------------------------------------------------

describe('link proxy', () => {
  it('passes bytes through exactly: 1 MB of random data both ways on 3 concurrent connections', async () => {
    const { proxy, clients } = await echoAndProxy();
    expect(proxy.host).toBe('127.0.0.1');
    expect(proxy.port).toBeGreaterThan(0);
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
    expect(proxy.url).toBe(`nats://127.0.0.1:${proxy.port}`);
    const size = 1 << 20;
    const payloads = [randomBytes(size), randomBytes(size), randomBytes(size)];
    const conns = await Promise.all(payloads.map(() => openClient(proxy.port)));
    clients.push(...conns);
    // Write in uneven pieces to exercise chunking and backpressure.
    for (const [i, c] of conns.entries()) {
      const data = payloads[i]!;
      for (let off = 0; off < data.length;) {
        const n = Math.min(data.length - off, 1 + ((off * 7919) % 70_000));
        c.socket.write(data.subarray(off, off + n));
        off += n;
      }
    }
    const got = await Promise.all(conns.map((c) => c.waitBytes(size, 60_000)));
    for (const [i, g] of got.entries()) expect(g.equals(payloads[i]!)).toBe(true);
    const s = proxy.stats();
    expect(s.bytesUp).toBe(3 * size);
    expect(s.bytesDown).toBe(3 * size);
    expect(s).toMatchObject({ accepted: 3, open: 3, refused: 0, resets: 0, held: 0, queued: 0 });
  });

  it('forwards a half-close and closes the pair once both sides are done', async () => {
    const { echo, proxy, clients } = await echoAndProxy();
    const c = await openEchoed(proxy.port);
    clients.push(c);
    c.socket.end('bye');
    await c.closed;
    expect(c.text()).toBe('bye');
    expect(c.ended).toBe(true);
    expect(c.error).toBeUndefined();
    await waitUntil('upstream closed', () => echo.conns[0]!.closed);
    expect(echo.conns[0]!.ended).toBe(true);
    await waitUntil('pair gone', () => proxy.stats().open === 0);
  });

  it('validates faults and lists what is active; re-applying an id replaces it', async () => {
    const { proxy } = await echoAndProxy();
    expect(() => proxy.apply('x', { kind: 'latency', ms: -1, jitterMs: 0 })).toThrow(RangeError);
    expect(() => proxy.apply('x', { kind: 'loss', rate: 1.5 })).toThrow(RangeError);
    expect(() => proxy.apply('x', { kind: 'bandwidth', bytesPerSec: 0 })).toThrow(RangeError);
    expect(() => proxy.apply('x', { kind: 'cut' }, { share: 2 })).toThrow(RangeError);
    expect(proxy.active()).toEqual([]);
    proxy.apply('a', { kind: 'latency', ms: 10, jitterMs: 1 });
    proxy.apply('b', { kind: 'loss', rate: 0.1 }, { share: 0.5 });
    proxy.apply('a', { kind: 'bandwidth', bytesPerSec: 1000 }, { share: 0.25 });
    expect(proxy.active()).toEqual([
      { id: 'b', fault: { kind: 'loss', rate: 0.1 }, share: 0.5 },
      { id: 'a', fault: { kind: 'bandwidth', bytesPerSec: 1000 }, share: 0.25 },
    ]);
    proxy.clear('b');
    proxy.clear('nope');
    expect(proxy.active().map((f) => f.id)).toEqual(['a']);
    proxy.clearAll();
    expect(proxy.active()).toEqual([]);
  });

  it('cut holds every byte both ways (also on new connections) and heal delivers them in order', async () => {
    const { echo, proxy, clients } = await echoAndProxy();
    const c = await openEchoed(proxy.port);
    clients.push(c);
    const up = echo.conns[0]!;
    up.received = [];

    proxy.apply('p', { kind: 'cut' });
    // Upstream → client bytes are held too.
    up.socket.write('S1');
    for (const part of ['a', 'b', 'c', 'd']) {
      c.socket.write(part);
      await sleep(20);
    }
    up.socket.write('S2');
    // A connection opened during the cut: accepted, its upstream connection opened, no bytes flow.
    const late = await openClient(proxy.port);
    clients.push(late);
    late.socket.write('late');
    await waitUntil('upstream connection of the late client', () => echo.conns.length === 2);
    await waitUntil('every byte held', () => proxy.stats().held === 'S1abcdS2late'.length);
    await sleep(300);
    expect(c.chunks).toEqual([]);
    expect(late.chunks).toEqual([]);
    expect(up.received).toEqual([]);
    expect(echo.conns[1]!.received).toEqual([]);
    expect(proxy.stats().held).toBe('S1abcdS2late'.length);
    expect(proxy.stats().open).toBe(2);

    proxy.clear('p');
    // Held downstream bytes first, then the echo of the held upstream bytes.
    expect((await c.waitBytes(8)).toString()).toBe('S1S2abcd');
    expect(Buffer.concat(up.received).toString()).toBe('abcd');
    expect((await late.waitBytes(4)).toString()).toBe('late');
    expect(proxy.stats()).toMatchObject({ held: 0, queued: 0 });
  });

  it('an end of stream during a cut is delivered after the held bytes once healed', async () => {
    const { echo, proxy, clients } = await echoAndProxy();
    const c = await openEchoed(proxy.port);
    clients.push(c);
    const up = echo.conns[0]!;
    up.received = [];
    proxy.apply('p', { kind: 'cut' });
    c.socket.end('xyz');
    await waitUntil('bytes held', () => proxy.stats().held === 3);
    await sleep(300);
    expect(up.received).toEqual([]);
    expect(up.ended).toBe(false);
    proxy.clear('p');
    await c.closed;
    expect(c.text()).toBe('xyz');
    expect(Buffer.concat(up.received).toString()).toBe('xyz');
    expect(up.ended).toBe(true);
    await waitUntil('pair gone', () => proxy.stats().open === 0);
  });

  it('held bytes still pass through the other toxics after a cut heals', async () => {
    const { proxy, clients } = await echoAndProxy(seeded(9));
    const c = await openEchoed(proxy.port);
    clients.push(c);
    proxy.apply('l', { kind: 'latency', ms: 200, jitterMs: 0 });
    proxy.apply('p', { kind: 'cut' });
    c.socket.write('held');
    await waitUntil('bytes held', () => proxy.stats().held === 4);
    const t0 = performance.now();
    proxy.clear('p');
    expect((await c.waitBytes(4)).toString()).toBe('held');
    // 200 ms up after the heal, 200 ms down.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(400 * 0.8);
  });

  it('bounds what it buffers: a cut pushes back on the sender, and heal delivers everything', async () => {
    const hwm = 64 * 1024;
    const { proxy, clients } = await echoAndProxy(seeded(2), { highWaterMark: hwm });
    const c = await openEchoed(proxy.port);
    clients.push(c);
    proxy.apply('p', { kind: 'cut' });
    const data = randomBytes(8 << 20);
    c.socket.write(data);
    await waitUntil('buffer bound reached', () => proxy.stats().held >= hwm);
    await sleep(300);
    // At most the bound plus one read chunk; the rest waits in the sender (TCP flow control).
    expect(proxy.stats().held).toBeLessThanOrEqual(hwm + 256 * 1024);
    expect(c.socket.writableLength).toBeGreaterThan(0);
    proxy.clear('p');
    expect((await c.waitBytes(data.length, 60_000)).equals(data)).toBe(true);
  });

  it('reset RSTs the connections, refuses new ones while active, accepts again after clear', async () => {
    const { echo, proxy, clients } = await echoAndProxy();
    const a = await openEchoed(proxy.port);
    const b = await openEchoed(proxy.port);
    clients.push(a, b);
    proxy.apply('r', { kind: 'reset' });
    await Promise.all([a.closed, b.closed]);
    expect(a.error?.code).toBe('ECONNRESET');
    expect(b.error?.code).toBe('ECONNRESET');
    await waitUntil('upstream sides gone', () => echo.conns.every((u) => u.closed));
    expect(proxy.stats()).toMatchObject({ resets: 2, open: 0, refused: 0 });

    const refused = await openClient(proxy.port, false);
    clients.push(refused);
    refused.socket.write('x');
    await refused.closed;
    expect(refused.chunks).toEqual([]);
    expect(proxy.stats()).toMatchObject({ refused: 1, accepted: 3, open: 0 });
    expect(echo.conns.length).toBe(2);

    proxy.clear('r');
    const again = await openEchoed(proxy.port, 'back');
    clients.push(again);
    expect(await roundTrip(again, 'ok')).toBeGreaterThanOrEqual(0);
    expect(proxy.stats()).toMatchObject({ accepted: 4, open: 1 });
  });

  it('latency delays each direction and keeps the byte order under jitter', async () => {
    const { proxy, clients } = await echoAndProxy(seeded(42));
    const c = await openEchoed(proxy.port);
    clients.push(c);
    proxy.apply('l', { kind: 'latency', ms: 150, jitterMs: 50 });
    const rtt = await roundTrip(c, 'ping');
    // At least (150 - 50) ms each way.
    expect(rtt).toBeGreaterThanOrEqual(2 * 100 * 0.8);

    c.chunks = [];
    const parts: string[] = [];
    for (let i = 0; i < 200; i++) parts.push(`<${i}>`);
    for (const p of parts) {
      c.socket.write(p);
      if (parts.indexOf(p) % 20 === 0) await sleep(5);
    }
    const expected = parts.join('');
    expect((await c.waitBytes(expected.length)).toString()).toBe(expected);
    proxy.clear('l');
  });

  it('bandwidth paces each direction', async () => {
    const { proxy, clients } = await echoAndProxy();
    const c = await openEchoed(proxy.port);
    clients.push(c);
    proxy.apply('bw', { kind: 'bandwidth', bytesPerSec: 20_000 });
    const data = randomBytes(30_000);
    const t0 = performance.now();
    c.socket.write(data);
    const got = await c.waitBytes(data.length, 30_000);
    const elapsed = performance.now() - t0;
    expect(got.equals(data)).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual((data.length / 20_000) * 1000 * 0.8);
  });

  it('loss stalls the chunks the seeded draws pick, by the doubling RTO', async () => {
    const seed = 1234;
    const rate = 0.3;
    const rounds = 24;
    // Replicate the proxy's draws: the cohort at accept, then per round trip one loss draw for
    // the chunk going up and one for its echo coming down (no jitter, so no jitter draws).
    const model = seeded(seed);
    model();
    const streak = { up: 0, down: 0 };
    const rto = (dir: 'up' | 'down', lost: boolean): number => {
      if (!lost) {
        streak[dir] = 0;
        return 0;
      }
      const d = Math.min(LOSS_RTO_MIN_MS * 2 ** streak[dir], LOSS_RTO_MAX_MS);
      streak[dir]++;
      return d;
    };
    const expectedDelay: number[] = [];
    let expectedLost = 0;
    for (let i = 0; i < rounds; i++) {
      const upLost = model() < rate;
      const downLost = model() < rate;
      expectedLost += (upLost ? 1 : 0) + (downLost ? 1 : 0);
      expectedDelay.push(rto('up', upLost) + rto('down', downLost));
    }
    expect(expectedLost).toBeGreaterThan(0);
    expect(expectedLost).toBeLessThan(2 * rounds);

    const run = async (): Promise<number> => {
      const echo = await startEcho();
      const proxy = await startLinkProxy({
        name: 'lossy',
        upstream: { host: '127.0.0.1', port: echo.port },
        random: seeded(seed),
      });
      try {
        const c = await openEchoed(proxy.port);
        try {
          proxy.apply('loss', { kind: 'loss', rate });
          for (let i = 0; i < rounds; i++) {
            const rtt = await roundTrip(c, `m${String(i).padStart(3, '0')}`);
            expect(rtt).toBeGreaterThanOrEqual(expectedDelay[i]! * 0.8);
          }
          expect(c.text()).toBe(
            Array.from({ length: rounds }, (_, i) => `m${String(i).padStart(3, '0')}`).join(''),
          );
        } finally {
          c.socket.destroy();
        }
        return proxy.stats().lost;
      } finally {
        await proxy.close();
        await echo.close();
      }
    };
    const first = await run();
    const second = await run();
    expect(first).toBe(expectedLost);
    expect(second).toBe(first);
  });

  it('cohort share picks a stable, seeded subset of connections (also of new ones)', async () => {
    const seed = 7;
    const n = 40;
    const model = seeded(seed);
    const draws = Array.from({ length: n + 20 }, () => model());
    const expectedHit = draws
      .slice(0, n)
      .map((d, i) => (d < 0.5 ? i : -1))
      .filter((i) => i >= 0);
    const expectedRefused = draws.slice(n).filter((d) => d < 0.5).length;
    expect(expectedHit.length).toBeGreaterThan(0);
    expect(expectedHit.length).toBeLessThan(n);

    const run = async (): Promise<number[]> => {
      const { proxy, clients } = await echoAndProxy(seeded(seed));
      // One at a time, so accept order (and thus the cohort draws) follows the index.
      for (let i = 0; i < n; i++) clients.push(await openEchoed(proxy.port));
      proxy.apply('r', { kind: 'reset' }, { share: 0.5 });
      await waitUntil('resets', () => clients.filter((c) => c.isClosed).length === expectedHit.length);
      await sleep(100);
      const hit = clients.map((c, i) => (c.isClosed ? i : -1)).filter((i) => i >= 0);
      expect(proxy.stats()).toMatchObject({ resets: hit.length, open: n - hit.length });
      // New connections while active: each joins the cohort with the same probability.
      for (let i = 0; i < 20; i++) {
        clients.push(await openClient(proxy.port, false));
        await waitUntil('accepted', () => proxy.stats().accepted === n + i + 1);
      }
      await waitUntil('refusals', () => proxy.stats().refused === expectedRefused);
      expect(proxy.stats().open).toBe(n - hit.length + 20 - expectedRefused);
      return hit;
    };
    const first = await run();
    expect(first).toEqual(expectedHit);
    const second = await run();
    expect(second).toEqual(first);
  });

  it('close() stops listening, destroys every connection and leaves no open handles', async () => {
    const baseline = tcpHandles();
    const echo = await startEcho();
    const proxy = await startLinkProxy({
      name: 'closing',
      upstream: { host: '127.0.0.1', port: echo.port },
      random: seeded(3),
    });
    const conns = [await openEchoed(proxy.port), await openEchoed(proxy.port), await openEchoed(proxy.port)];
    proxy.apply('l', { kind: 'latency', ms: 5_000, jitterMs: 0 });
    proxy.apply('bw', { kind: 'bandwidth', bytesPerSec: 100 }, { share: 0.5 });
    for (const c of conns) c.socket.write('pending');
    proxy.apply('cut', { kind: 'cut' }, { share: 0.3 });
    conns[0]!.socket.write('held');
    await sleep(50);
    expect(proxy.stats().queued).toBeGreaterThan(0);

    await proxy.close();
    await proxy.close(); // idempotent
    await Promise.all(conns.map((c) => c.closed));
    expect(proxy.stats()).toMatchObject({ open: 0, queued: 0 });
    await expect(openClient(proxy.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await waitUntil('upstream sides closed', () => echo.conns.every((u) => u.closed));
    await echo.close();
    await waitUntil(`TCP handles back to ${baseline}`, () => tcpHandles() <= baseline);
  });

  it('RSTs the client when the upstream is down', async () => {
    const deadPort = await getFreePort();
    const proxy = await startLinkProxy({
      name: 'dead',
      upstream: { host: '127.0.0.1', port: deadPort },
      random: seeded(5),
    });
    cleanups.push(() => proxy.close());
    const c = await openClient(proxy.port);
    c.socket.write('anyone?');
    await c.closed;
    expect(c.chunks).toEqual([]);
    await waitUntil('pair gone', () => proxy.stats().open === 0);
    expect(proxy.stats().accepted).toBe(1);
  });
});

describe('link proxy in front of a real nats-server', () => {
  const nats = useNatsServer();
  const sc = StringCodec();

  it('request/reply works through it; reset disconnects the client; after clear it reconnects', async () => {
    const proxy = await startLinkProxy({
      name: 'nats-client-link',
      upstream: { host: '127.0.0.1', port: nats().port },
      random: seeded(11),
    });
    cleanups.push(() => proxy.close());
    const responder = await connect({ servers: nats().url, name: 'responder' });
    const requester: NatsConnection = await connect({
      servers: proxy.url,
      name: 'requester',
      reconnectTimeWait: 100,
      reconnectJitter: 0,
      maxReconnectAttempts: -1,
      ignoreClusterUpdates: true,
    });
    cleanups.push(async () => {
      await requester.close();
      await responder.close();
    });
    const sub = responder.subscribe('chaos.echo');
    void (async () => {
      for await (const m of sub) m.respond(sc.encode(`echo:${sc.decode(m.data)}`));
    })();
    await responder.flush();

    const events: string[] = [];
    void (async () => {
      for await (const s of requester.status()) events.push(s.type);
    })();

    const r1 = await requester.request('chaos.echo', sc.encode('one'), { timeout: 10_000 });
    expect(sc.decode(r1.data)).toBe('echo:one');

    proxy.apply('r', { kind: 'reset' });
    await waitUntil('disconnect event', () => events.includes('disconnect'));
    // Reconnect attempts are refused while the fault is active.
    await waitUntil('refused reconnects', () => proxy.stats().refused >= 2);
    expect(events).not.toContain('reconnect');

    proxy.clear('r');
    await waitUntil('reconnect event', () => events.includes('reconnect'), 30_000);
    const r2 = await requester.request('chaos.echo', sc.encode('two'), { timeout: 10_000 });
    expect(sc.decode(r2.data)).toBe('echo:two');
    expect(proxy.stats().resets).toBe(1);
  });
});
