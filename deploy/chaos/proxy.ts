/**
 * A seeded TCP link proxy with toxics, for the chaos controller.
 *
 * Every network link of the local stack (device ↔ NATS, shard ↔ NATS, NATS route ↔ NATS route) can
 * be routed through one {@link LinkProxy} so that faults are injected without root: black holes
 * ('cut'), resets, latency, bandwidth limits and packet loss (modelled as retransmission stalls).
 *
 * Randomness is injected (`random`), so a run with the same seed and the same sequence of events
 * makes the same choices. The proxy draws from `random` in exactly these places, in this order:
 * one cohort draw per accepted connection (at accept); per chunk entering the delay stage of a
 * direction, one jitter draw when the connection's combined `jitterMs > 0`, then one loss draw when
 * its combined loss rate is `> 0`. Nothing else consumes randomness.
 *
 * Only node builtins are imported on purpose (tests transpile this file on the fly and the chaos
 * controller must not depend on a build).
 */
import { createServer, connect as netConnect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** A fault applied to (a cohort of) the connections of one link. */
export type LinkFault =
  /** Black hole: hold every byte both ways (also an end of stream) until the fault is cleared. */
  | { kind: 'cut' }
  /** RST the cohort's connections now, and RST new ones of the cohort at accept while active. */
  | { kind: 'reset' }
  /** One-way delay per direction: each chunk is delayed `ms ± jitterMs` (uniform); order preserved. */
  | { kind: 'latency'; ms: number; jitterMs: number }
  /** Pacing per direction per connection. */
  | { kind: 'bandwidth'; bytesPerSec: number }
  /**
   * Loss as TCP sees it: each chunk is "lost" with probability `rate` and then delivered after an
   * RTO (200 ms, doubling for each further consecutive lost chunk of the direction, capped at
   * 3.2 s); order preserved (a stalled chunk holds back the ones behind it).
   */
  | { kind: 'loss'; rate: number };

/** Options for {@link startLinkProxy}. */
export interface LinkProxyOptions {
  /** Name of the link (for logs and reports). */
  name: string;
  /** Where accepted connections are forwarded to. */
  upstream: { host: string; port: number };
  /** Listen address; default `127.0.0.1`. */
  host?: string;
  /** Listen port; `0` or omitted = a free one. */
  port?: number;
  /** Uniform random numbers in [0, 1); inject a seeded generator for reproducible runs. */
  random: () => number;
  /**
   * Bytes a direction of a connection may buffer inside the proxy (held by a cut, delayed by a
   * toxic) before the proxy stops reading from its source, so the sender sees TCP flow control
   * instead of an unbounded buffer. Default 1 MiB.
   */
  highWaterMark?: number;
}

/** A fault as currently applied. */
export interface ActiveLinkFault {
  id: string;
  fault: LinkFault;
  share: number;
}

/** Counters of a {@link LinkProxy}; see {@link LinkProxy.stats}. */
export interface LinkProxyStats {
  /** Connections accepted by the listener since start (including those refused by a 'reset'). */
  accepted: number;
  /** Connections currently proxied (accepted, not refused, not yet fully closed or reset). */
  open: number;
  /** Connections RST right at accept because a 'reset' fault covered their cohort. */
  refused: number;
  /** Established connections RST by applying a 'reset' fault. */
  resets: number;
  /** Bytes delivered (written) to the upstream, client → upstream. */
  bytesUp: number;
  /** Bytes delivered (written) to clients, upstream → client. */
  bytesDown: number;
  /** Bytes held right now by a 'cut' (everything buffered on connections under a cut). */
  held: number;
  /** Bytes buffered in the proxy right now for any reason (cut, latency, loss, bandwidth). */
  queued: number;
  /** Chunks delayed by the 'loss' toxic since start. */
  lost: number;
}

/** A running link proxy. */
export interface LinkProxy {
  readonly name: string;
  /** The address it listens on. */
  readonly host: string;
  readonly port: number;
  /** `host:port` (IPv6 hosts in brackets), e.g. `127.0.0.1:41234`. */
  readonly address: string;
  /** `nats://host:port`: usable as a NATS client server URL and as a cluster route URL. */
  readonly url: string;
  /**
   * Apply `fault` under `id` to the cohort of connections whose cohort draw is `< share` (default 1
   * = all; connections opened later join with the same probability). Re-applying an id replaces
   * the previous fault of that id (re-applying a 'reset' RSTs its cohort again).
   * Throws a RangeError for out-of-range parameters.
   */
  apply(id: string, fault: LinkFault, opts?: { share?: number }): void;
  /**
   * Remove a fault (unknown ids are ignored). Removing a 'cut' releases the held bytes in order,
   * like TCP retransmitting after a partition heals; they still pass through the other toxics.
   */
  clear(id: string): void;
  /** Remove every fault. */
  clearAll(): void;
  /** The faults applied now, in the order they were applied (re-applying an id moves it last). */
  active(): ActiveLinkFault[];
  stats(): LinkProxyStats;
  /** Stop listening, destroy every connection, clear every timer. Idempotent. */
  close(): Promise<void>;
}

/** First retransmission timeout of the 'loss' toxic. */
export const LOSS_RTO_MIN_MS = 200;
/** Cap of the doubling retransmission timeout of the 'loss' toxic. */
export const LOSS_RTO_MAX_MS = 3_200;

const DEFAULT_HIGH_WATER_MARK = 1 << 20;
/** Bandwidth pacing granularity: a slice is at most this many ms worth of bytes. */
const PACE_SLICE_MS = 20;
const PACE_SLICE_MAX_BYTES = 64 * 1024;
/** A chunk due within this many ms is delivered now (timers and `performance.now()` drift). */
const DUE_SLACK_MS = 1;

/** Combined effect of the faults that cover one connection. */
interface Toxics {
  /** Any toxic at all (false = fast path). */
  readonly any: boolean;
  readonly cut: boolean;
  readonly latencyMs: number;
  readonly jitterMs: number;
  /** 0 = unlimited. */
  readonly bytesPerSec: number;
  readonly lossRate: number;
}

const NO_TOXICS: Toxics = { any: false, cut: false, latencyMs: 0, jitterMs: 0, bytesPerSec: 0, lossRate: 0 };

/** A chunk in the delay stage; `buf === null` is the end of the stream (FIN). */
interface Chunk {
  readonly buf: Buffer | null;
  off: number;
  readonly due: number;
}

/** First-in first-out queue with O(1) shift and occasional compaction. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): void {
    this.items[this.head] = undefined as T;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** One direction of a proxied connection. */
interface Flow {
  readonly pair: Pair;
  readonly up: boolean;
  readonly src: Socket;
  readonly dst: Socket;
  /** Chunks (and a possible end of stream) that arrived during a cut, not yet in the delay stage. */
  held: (Buffer | null)[];
  heldBytes: number;
  /** The delay stage: chunks with their due time, delivered in order. */
  readonly queue: Fifo<Chunk>;
  queuedBytes: number;
  /** Due time of the last chunk that entered the delay stage (keeps order under jitter). */
  lastDue: number;
  /** Bandwidth: when the link is free to serialize the next slice. */
  paceFree: number;
  /** Bandwidth: when the slice being serialized is fully transmitted (-1 = none). */
  txDoneAt: number;
  txLen: number;
  lossStreak: number;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
  /** The last write to `dst` returned false; waiting for 'drain'. */
  blocked: boolean;
  /** `src` is paused by us. */
  paused: boolean;
  /** `src` ended (its end is queued or delivered). */
  srcEnded: boolean;
  /** Nothing more can be written to `dst` (end delivered, or `dst` gone). */
  dstDone: boolean;
}

class Pair {
  readonly upFlow: Flow;
  readonly downFlow: Flow;
  dead = false;
  clientClosed = false;
  upstreamClosed = false;
  constructor(
    readonly cohort: number,
    readonly client: Socket,
    readonly upstream: Socket,
    public toxics: Toxics,
  ) {
    this.upFlow = newFlow(this, true, client, upstream);
    this.downFlow = newFlow(this, false, upstream, client);
  }
}

function newFlow(pair: Pair, up: boolean, src: Socket, dst: Socket): Flow {
  return {
    pair,
    up,
    src,
    dst,
    held: [],
    heldBytes: 0,
    queue: new Fifo<Chunk>(),
    queuedBytes: 0,
    lastDue: 0,
    paceFree: 0,
    txDoneAt: -1,
    txLen: 0,
    lossStreak: 0,
    timer: undefined,
    timerAt: 0,
    blocked: false,
    paused: false,
    srcEnded: false,
    dstDone: false,
  };
}

function validate(fault: LinkFault, share: number): void {
  const bad = (what: string): never => {
    throw new RangeError(`link fault ${fault.kind}: ${what}`);
  };
  if (!(share >= 0 && share <= 1)) bad(`share must be in [0, 1], got ${share}`);
  switch (fault.kind) {
    case 'cut':
    case 'reset':
      return;
    case 'latency':
      if (!(Number.isFinite(fault.ms) && fault.ms >= 0)) bad(`ms must be a finite number >= 0`);
      if (!(Number.isFinite(fault.jitterMs) && fault.jitterMs >= 0))
        bad(`jitterMs must be a finite number >= 0`);
      return;
    case 'bandwidth':
      if (!(Number.isFinite(fault.bytesPerSec) && fault.bytesPerSec > 0)) bad('bytesPerSec must be > 0');
      return;
    case 'loss':
      if (!(fault.rate >= 0 && fault.rate <= 1)) bad('rate must be in [0, 1]');
      return;
    default:
      bad('unknown kind');
  }
}

/** RST a socket (or just destroy it when it is not connected yet or already gone). Never throws. */
function rst(sock: Socket): void {
  if (sock.destroyed) return;
  try {
    if (sock.connecting) sock.destroy();
    else sock.resetAndDestroy();
  } catch {
    sock.destroy();
  }
}

/** Destroy a socket once what was written to it has been flushed to the kernel. */
function destroyAfterFlush(sock: Socket): void {
  if (sock.destroyed) return;
  if (sock.writableFinished) sock.destroy();
  else sock.once('finish', () => sock.destroy());
}

function waitClosed(sock: Socket): Promise<void> {
  if (sock.closed) return Promise.resolve();
  return new Promise((resolve) => sock.once('close', () => resolve()));
}

/**
 * Start a link proxy listening on `host:port` (default `127.0.0.1`, a free port) that forwards
 * every accepted connection to `upstream`.
 *
 * Contract:
 * - Each accepted connection draws its cohort value once from `random()`; a fault with share `s`
 *   covers the connections whose draw is `< s`. Faults combine: latencies (and jitters) add up as
 *   links in series, the smallest bandwidth wins, loss rates combine as independent losses
 *   (`1 - Π(1 - rate)`), any 'cut' holds everything, any 'reset' resets.
 * - During a cut a new connection is accepted and its upstream connection opened, but no byte
 *   (and no end of stream) flows either way until the cut clears; then the held bytes enter the
 *   other toxics in order, as if they arrived at that moment.
 * - An end of stream (FIN) is forwarded after the bytes before it (half-close is preserved); a
 *   connection is gone once both sides have closed. An error on either side (ECONNRESET, EPIPE, …)
 *   RSTs the other side; nothing ever throws. If the upstream refuses or fails, the client is RST.
 * - Backpressure: a source is paused while its destination's write buffer is full, and while the
 *   direction buffers `highWaterMark` bytes or more inside the proxy.
 * - Timers are unref'd: the listener and sockets alone keep a process alive.
 *
 * Rejects when the listener cannot be bound.
 */
export async function startLinkProxy(opts: LinkProxyOptions): Promise<LinkProxy> {
  const { name, upstream, random } = opts;
  const listenHost = opts.host ?? '127.0.0.1';
  const hwm = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  if (!(hwm > 0)) throw new RangeError(`highWaterMark must be > 0, got ${hwm}`);

  const faults = new Map<string, ActiveLinkFault>();
  const pairs = new Set<Pair>();
  const counters = { accepted: 0, refused: 0, resets: 0, bytesUp: 0, bytesDown: 0, lost: 0 };
  let closing: Promise<void> | undefined;

  // ---- toxics ------------------------------------------------------------------------------

  const toxicsFor = (cohort: number): Toxics => {
    let any = false;
    let cut = false;
    let latencyMs = 0;
    let jitterMs = 0;
    let bytesPerSec = 0;
    let keep = 1;
    for (const { fault, share } of faults.values()) {
      if (!(cohort < share)) continue;
      switch (fault.kind) {
        case 'cut':
          cut = any = true;
          break;
        case 'latency':
          latencyMs += fault.ms;
          jitterMs += fault.jitterMs;
          any = true;
          break;
        case 'bandwidth':
          bytesPerSec = bytesPerSec === 0 ? fault.bytesPerSec : Math.min(bytesPerSec, fault.bytesPerSec);
          any = true;
          break;
        case 'loss':
          keep *= 1 - fault.rate;
          any = true;
          break;
        case 'reset':
          break;
      }
    }
    return any ? { any, cut, latencyMs, jitterMs, bytesPerSec, lossRate: 1 - keep } : NO_TOXICS;
  };

  const resetCovers = (cohort: number): boolean => {
    for (const { fault, share } of faults.values()) if (fault.kind === 'reset' && cohort < share) return true;
    return false;
  };

  // ---- per direction -----------------------------------------------------------------------

  const clearTimer = (flow: Flow): void => {
    if (flow.timer !== undefined) {
      clearTimeout(flow.timer);
      flow.timer = undefined;
    }
  };

  const armTimer = (flow: Flow, at: number, now: number): void => {
    if (flow.timer !== undefined) {
      if (flow.timerAt <= at) return;
      clearTimeout(flow.timer);
    }
    flow.timerAt = at;
    flow.timer = setTimeout(
      () => {
        flow.timer = undefined;
        pump(flow);
      },
      Math.max(1, Math.ceil(at - now)),
    );
    flow.timer.unref();
  };

  /** Pause or resume the source according to backpressure and the buffer bound. */
  const updateFlow = (flow: Flow): void => {
    const want = flow.blocked || flow.heldBytes + flow.queuedBytes >= hwm;
    if (want === flow.paused || flow.src.destroyed) return;
    flow.paused = want;
    if (want) flow.src.pause();
    else flow.src.resume();
  };

  /** Write to the destination, counting bytes; returns false when it must wait for 'drain'. */
  const write = (flow: Flow, buf: Buffer): boolean => {
    if (flow.up) counters.bytesUp += buf.length;
    else counters.bytesDown += buf.length;
    if (flow.dst.write(buf)) return true;
    flow.blocked = true;
    return false;
  };

  /** Put a chunk (or the end of stream) into the delay stage, drawing its jitter and loss. */
  const schedule = (flow: Flow, buf: Buffer | null, now: number): void => {
    const t = flow.pair.toxics;
    let due = now;
    if (t.latencyMs > 0 || t.jitterMs > 0) {
      const jitter = t.jitterMs > 0 ? (random() * 2 - 1) * t.jitterMs : 0;
      due += Math.max(0, t.latencyMs + jitter);
    }
    if (buf !== null && t.lossRate > 0) {
      if (random() < t.lossRate) {
        due += Math.min(LOSS_RTO_MIN_MS * 2 ** flow.lossStreak, LOSS_RTO_MAX_MS);
        if (flow.lossStreak < 16) flow.lossStreak++;
        counters.lost++;
      } else flow.lossStreak = 0;
    }
    if (due < flow.lastDue) due = flow.lastDue;
    flow.lastDue = due;
    flow.queue.push({ buf, off: 0, due });
    if (buf !== null) flow.queuedBytes += buf.length;
  };

  /** Deliver whatever is due in the delay stage, then arm a timer for the rest. */
  const pump = (flow: Flow): void => {
    const pair = flow.pair;
    if (pair.dead) return;
    if (!flow.blocked && !flow.dstDone && !pair.toxics.cut) deliver(flow);
    updateFlow(flow);
  };

  const deliver = (flow: Flow): void => {
    const now = performance.now();
    const bps = flow.pair.toxics.bytesPerSec;
    for (let c = flow.queue.peek(); c !== undefined; c = flow.queue.peek()) {
      if (c.due > now + DUE_SLACK_MS) {
        armTimer(flow, c.due, now);
        break;
      }
      if (c.buf === null) {
        flow.queue.shift();
        endDst(flow);
        break;
      }
      let out: Buffer;
      if (bps > 0) {
        if (flow.txDoneAt < 0) {
          const slice = Math.max(1, Math.min(PACE_SLICE_MAX_BYTES, Math.floor((bps * PACE_SLICE_MS) / 1000)));
          flow.txLen = Math.min(slice, c.buf.length - c.off);
          flow.txDoneAt = Math.max(now, flow.paceFree) + (flow.txLen * 1000) / bps;
        }
        if (flow.txDoneAt > now + DUE_SLACK_MS) {
          armTimer(flow, flow.txDoneAt, now);
          break;
        }
        out = c.buf.subarray(c.off, c.off + flow.txLen);
        flow.paceFree = flow.txDoneAt;
        flow.txDoneAt = -1;
      } else {
        out = c.off === 0 ? c.buf : c.buf.subarray(c.off);
      }
      c.off += out.length;
      if (c.off >= c.buf.length) flow.queue.shift();
      flow.queuedBytes -= out.length;
      if (!write(flow, out)) break;
    }
  };

  /** Forward the end of stream; if the source side is already closed, close the destination too. */
  const endDst = (flow: Flow): void => {
    flow.dstDone = true;
    flow.dst.end();
    if (flow.src.closed) destroyAfterFlush(flow.dst);
  };

  const onData = (flow: Flow, chunk: Buffer): void => {
    const pair = flow.pair;
    if (pair.dead || flow.dstDone) return;
    if (!pair.toxics.any && flow.queue.size === 0 && flow.held.length === 0) {
      // Fast path: no toxic, nothing queued: straight through.
      if (!write(flow, chunk)) updateFlow(flow);
      return;
    }
    if (pair.toxics.cut) {
      flow.held.push(chunk);
      flow.heldBytes += chunk.length;
      updateFlow(flow);
      return;
    }
    schedule(flow, chunk, performance.now());
    pump(flow);
  };

  const onEnd = (flow: Flow): void => {
    const pair = flow.pair;
    if (pair.dead || flow.srcEnded) return;
    flow.srcEnded = true;
    if (flow.dstDone) return;
    if (!pair.toxics.any && flow.queue.size === 0 && flow.held.length === 0) {
      endDst(flow);
    } else if (pair.toxics.cut) {
      flow.held.push(null);
    } else {
      schedule(flow, null, performance.now());
      pump(flow);
    }
  };

  const onDrain = (flow: Flow): void => {
    if (flow.pair.dead) return;
    flow.blocked = false;
    pump(flow);
  };

  /** Move what a cut held into the delay stage (in order) and deliver what is due. */
  const release = (flow: Flow, now: number): void => {
    const held = flow.held;
    flow.held = [];
    flow.heldBytes = 0;
    for (const buf of held) schedule(flow, buf, now);
    pump(flow);
  };

  /** Nothing more can go to `flow.dst`: drop what is buffered for it. */
  const abandon = (flow: Flow): void => {
    clearTimer(flow);
    flow.dstDone = true;
    flow.held = [];
    flow.heldBytes = 0;
    flow.queue.clear();
    flow.queuedBytes = 0;
    flow.blocked = false;
    updateFlow(flow);
  };

  // ---- per connection ----------------------------------------------------------------------

  /** Tear the pair down; `reset` RSTs both sides, otherwise they are destroyed (FIN). */
  const kill = (pair: Pair, reset: boolean): void => {
    if (pair.dead) return;
    pair.dead = true;
    pairs.delete(pair);
    abandon(pair.upFlow);
    abandon(pair.downFlow);
    if (reset) {
      rst(pair.client);
      rst(pair.upstream);
    } else {
      pair.client.destroy();
      pair.upstream.destroy();
    }
  };

  const onClose = (pair: Pair, client: boolean): void => {
    if (client) pair.clientClosed = true;
    else pair.upstreamClosed = true;
    if (pair.dead) return;
    if (pair.clientClosed && pair.upstreamClosed) {
      kill(pair, false);
      return;
    }
    // A clean close of one side: nothing more can be written to it; what it sent (and its end)
    // still goes to the other side once deliverable.
    const from = client ? pair.upFlow : pair.downFlow;
    abandon(client ? pair.downFlow : pair.upFlow);
    if (from.dstDone) destroyAfterFlush(from.dst);
    else onEnd(from);
  };

  const refresh = (): void => {
    const now = performance.now();
    for (const pair of [...pairs]) {
      const before = pair.toxics;
      const after = toxicsFor(pair.cohort);
      pair.toxics = after;
      for (const flow of [pair.upFlow, pair.downFlow]) {
        if (after.bytesPerSec !== before.bytesPerSec) flow.txDoneAt = -1;
        if (after.cut) clearTimer(flow);
        else if (before.cut) release(flow, now);
        else pump(flow);
      }
    }
  };

  const onConnection = (client: Socket): void => {
    client.on('error', () => undefined);
    if (closing !== undefined) {
      client.destroy();
      return;
    }
    counters.accepted++;
    const cohort = random();
    if (resetCovers(cohort)) {
      counters.refused++;
      rst(client);
      return;
    }
    client.setNoDelay(true);
    const up = netConnect({ host: upstream.host, port: upstream.port, allowHalfOpen: true });
    up.setNoDelay(true);
    const pair = new Pair(cohort, client, up, toxicsFor(cohort));
    pairs.add(pair);

    client.on('data', (c: Buffer) => onData(pair.upFlow, c));
    up.on('data', (c: Buffer) => onData(pair.downFlow, c));
    client.on('end', () => onEnd(pair.upFlow));
    up.on('end', () => onEnd(pair.downFlow));
    up.on('drain', () => onDrain(pair.upFlow));
    client.on('drain', () => onDrain(pair.downFlow));
    // Any error (ECONNRESET, EPIPE, ECONNREFUSED from the upstream, …) RSTs the other side.
    client.on('error', () => kill(pair, true));
    up.on('error', () => kill(pair, true));
    client.on('close', () => onClose(pair, true));
    up.on('close', () => onClose(pair, false));
  };

  // ---- listener ----------------------------------------------------------------------------

  const server: Server = createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listenHost, port: opts.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const hostPart = listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  const address = `${hostPart}:${port}`;

  const proxy: LinkProxy = {
    name,
    host: listenHost,
    port,
    address,
    url: `nats://${address}`,
    apply(id, fault, applyOpts) {
      const share = applyOpts?.share ?? 1;
      validate(fault, share);
      faults.delete(id);
      faults.set(id, { id, fault: { ...fault }, share });
      if (fault.kind === 'reset') {
        for (const pair of [...pairs]) {
          if (pair.cohort < share) {
            counters.resets++;
            kill(pair, true);
          }
        }
      }
      refresh();
    },
    clear(id) {
      if (faults.delete(id)) refresh();
    },
    clearAll() {
      if (faults.size === 0) return;
      faults.clear();
      refresh();
    },
    active() {
      return [...faults.values()].map((f) => ({ id: f.id, fault: { ...f.fault }, share: f.share }));
    },
    stats() {
      let held = 0;
      let queued = 0;
      for (const pair of pairs) {
        const n =
          pair.upFlow.heldBytes +
          pair.upFlow.queuedBytes +
          pair.downFlow.heldBytes +
          pair.downFlow.queuedBytes;
        queued += n;
        if (pair.toxics.cut) held += n;
      }
      return {
        accepted: counters.accepted,
        open: pairs.size,
        refused: counters.refused,
        resets: counters.resets,
        bytesUp: counters.bytesUp,
        bytesDown: counters.bytesDown,
        held,
        queued,
        lost: counters.lost,
      };
    },
    close() {
      closing ??= (async () => {
        const sockets: Socket[] = [];
        for (const pair of [...pairs]) {
          sockets.push(pair.client, pair.upstream);
          kill(pair, false);
        }
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([serverClosed, ...sockets.map(waitClosed)]);
      })();
      return closing;
    },
  };
  return proxy;
}
