import type { Msg, NatsConnection, Subscription as NatsSubscription } from 'nats';
import { connect, Empty, ErrorCode, Events, headers, NatsError } from 'nats';
import type { Meter } from './meter.js';
import { noopMeter } from './meter.js';
import type {
  Handler,
  HandlerErrorHook,
  ServeOptions,
  Subscription,
  TrackedInbound,
  Transport,
  TransportMetrics,
} from './transport.js';
import {
  createServeRunner,
  DEFAULT_SERVE_CONCURRENCY,
  rejectOversized,
  replyError,
  TRANSPORT_ERROR_HEADER,
  TransportError,
  TransportErrorCode,
  transportMetrics,
} from './transport.js';

/**
 * The server list of a `--nats` value: one URL, or several separated by commas (the nodes of a
 * cluster, or the proxies in front of them); the client fails over between them.
 */
export function natsServers(spec: string | readonly string[]): string[] {
  const list = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new Error('no NATS server URL given');
  return list;
}

export interface NatsTransportOptions {
  readonly servers: string | string[];
  /** Client name shown by the server (monitoring, logs). */
  readonly name?: string;
  /** -1 (default) reconnects forever. */
  readonly maxReconnectAttempts?: number;
  readonly meter?: Meter;
  /** Called after a handler failure is counted; for logging. */
  readonly onHandlerError?: HandlerErrorHook;
  /** Wall ms `close()` waits for in-flight handlers and the final drain. Default 10_000. */
  readonly closeTimeoutMs?: number;
}

/** Connection facts used to classify errors nats.js reports ambiguously. */
interface ConnState {
  /** `close()` reached the connection-teardown phase. */
  closing: boolean;
  /** Between a Disconnect and the next Reconnect status event. */
  disconnected: boolean;
}

/** Maps a nats.js error to a TransportError; a timeout while closing/disconnected says so. */
function toTransportError(e: unknown, state: ConnState, what: string): TransportError {
  if (e instanceof TransportError) return e;
  const code = e instanceof NatsError ? e.code : undefined;
  const mk = (c: TransportErrorCode): TransportError =>
    new TransportError(c, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  switch (code) {
    case ErrorCode.Timeout:
      // nats.js rejects pending requests with TIMEOUT when the connection closes.
      if (state.closing) return mk(TransportErrorCode.Closed);
      return mk(state.disconnected ? TransportErrorCode.Disconnected : TransportErrorCode.Timeout);
    case ErrorCode.NoResponders:
      return mk(TransportErrorCode.NoResponders);
    case ErrorCode.ConnectionClosed:
    case ErrorCode.ConnectionDraining:
      return mk(TransportErrorCode.Closed);
    case ErrorCode.Disconnect:
    case ErrorCode.ConnectionRefused:
    case ErrorCode.ConnectionTimeout:
      return mk(TransportErrorCode.Disconnected);
    case ErrorCode.MaxPayloadExceeded:
      return mk(TransportErrorCode.PayloadTooLarge);
    default:
      return mk(TransportErrorCode.Other);
  }
}

/** Resolves after `ms` wall ms without keeping the process alive. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** A live `serve` subscription, tracked so `close()` can drain it. */
interface Served {
  readonly sub: NatsSubscription;
  readonly closed: Promise<void>;
}

/** `Transport` over one NatsConnection; all requests share its muxed inbox. */
class NatsTransport implements Transport {
  private readonly state: ConnState = { closing: false, disconnected: false };
  private readonly served = new Set<Served>();
  private closePromise: Promise<void> | undefined;
  /**
   * Outbound operations of the current event-loop turn. nats.js flushes its buffer on a
   * microtask, and actors run on microtasks, so without this nearly every reply or request
   * became its own write() syscall; queued here, a turn's messages leave in one write.
   */
  private readonly outbox: Array<() => void> = [];
  private outboxScheduled = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly metrics: TransportMetrics,
    private readonly opts: NatsTransportOptions,
  ) {
    void this.watchStatus();
  }

  get isClosed(): boolean {
    return this.state.closing || this.nc.isClosed();
  }

  /** Tracks disconnect/reconnect so timeouts while disconnected map to DISCONNECTED. */
  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Disconnect) this.state.disconnected = true;
        else if (s.type === Events.Reconnect) this.state.disconnected = false;
      }
    } catch {
      // the status iterator ends with the connection
    }
  }

  private closedError(what: string): TransportError {
    return new TransportError(TransportErrorCode.Closed, `${what}: transport is closed`);
  }

  private defer(op: () => void): void {
    this.outbox.push(op);
    if (this.outboxScheduled) return;
    this.outboxScheduled = true;
    setImmediate(() => {
      this.outboxScheduled = false;
      for (const queued of this.outbox.splice(0)) queued();
    });
  }

  async request(
    subject: string,
    data: Uint8Array,
    opts: { readonly timeoutMs: number },
  ): Promise<Uint8Array> {
    try {
      if (this.isClosed) throw this.closedError(`request ${subject}`);
      await new Promise<void>((resolve) => this.defer(resolve));
      if (this.isClosed) throw this.closedError(`request ${subject}`);
      // Default strategy: the connection's single muxed reply inbox.
      const reply = await this.nc.request(subject, data, { timeout: opts.timeoutMs });
      // Set by a serving transport that refused or failed the request (see createServeRunner).
      const remoteError = reply.headers?.get(TRANSPORT_ERROR_HEADER);
      if (remoteError !== undefined && remoteError !== '') throw replyError(remoteError);
      this.metrics.requests.inc({ outcome: 'ok' });
      return reply.data;
    } catch (e) {
      const te = toTransportError(e, this.state, `request ${subject}`);
      this.metrics.requests.inc({ outcome: te.code });
      throw te;
    }
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.isClosed) throw this.closedError(`publish ${subject}`);
    this.defer(() => {
      try {
        this.nc.publish(subject, data);
      } catch {
        // Fire-and-forget by contract: closed meanwhile, bad subject or too large. Counted.
        this.metrics.rejected.inc({ subject, reason: 'publish' });
      }
    });
  }

  /**
   * One `for await` loop per subscription hands each message to a bounded
   * runner: at most `concurrency` handlers in flight; when all slots are busy
   * the loop stops pulling, so the backlog stays in nats.js's subscription buffer
   * (bounded in the end by the server's slow-consumer limit), never as promises.
   */
  serve(subject: string, handler: Handler, opts: ServeOptions = {}): Subscription {
    if (this.isClosed) throw this.closedError(`serve ${subject}`);
    let sub: NatsSubscription;
    try {
      sub = this.nc.subscribe(subject, opts.queue !== undefined ? { queue: opts.queue } : {});
    } catch (e) {
      throw toTransportError(e, this.state, `serve ${subject}`);
    }
    const runner = createServeRunner(
      subject,
      handler,
      opts.concurrency ?? DEFAULT_SERVE_CONCURRENCY,
      this.metrics,
      this.opts.onHandlerError,
    );
    const loop = async (): Promise<void> => {
      try {
        for await (const m of sub) {
          const msg = this.inbound(m);
          if (rejectOversized(msg, opts.maxPayload, subject, this.metrics)) continue;
          runner.push(msg);
          await runner.slot();
        }
      } catch {
        // subscription error (e.g. permissions): the subscription is over
      }
    };
    const closed = loop().then(() => runner.settled());
    const served: Served = { sub, closed };
    this.served.add(served);
    void closed.then(() => this.served.delete(served));
    return {
      unsubscribe: () => {
        if (!sub.isClosed()) sub.unsubscribe();
      },
      closed,
    };
  }

  /**
   * Wraps a nats.js message. `respond` never throws (false on a closed
   * connection); an error code travels in the TRANSPORT_ERROR_HEADER header.
   */
  private inbound(m: Msg): TrackedInbound {
    let responded = false;
    const reply = m.reply !== undefined && m.reply !== '' ? m.reply : undefined;
    const respond = (payload: Uint8Array, errorCode?: string): boolean => {
      if (reply === undefined || this.nc.isClosed()) return false;
      if (responded) return false;
      responded = true;
      this.defer(() => {
        try {
          const h = errorCode === undefined ? undefined : headers();
          h?.set(TRANSPORT_ERROR_HEADER, errorCode ?? '');
          m.respond(payload, h !== undefined ? { headers: h } : undefined);
        } catch {
          // The connection closed before this turn's replies left; the requester times out.
        }
      });
      return true;
    };
    return {
      subject: m.subject,
      data: m.data,
      reply,
      get responded() {
        return responded;
      },
      respond: (payload) => respond(payload),
      respondError: (code) => void respond(Empty, code),
    };
  }

  async flush(): Promise<void> {
    if (this.isClosed) throw this.closedError('flush');
    try {
      await this.nc.flush();
    } catch (e) {
      throw toTransportError(e, this.state, 'flush');
    }
  }

  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  /** Drain subscriptions, wait (bounded) for handlers, drain the connection, close. */
  private async doClose(): Promise<void> {
    const timeout = this.opts.closeTimeoutMs ?? 10_000;
    const served = [...this.served];
    await Promise.race([
      Promise.all(
        served.map(async (s) => {
          if (!s.sub.isClosed()) await s.sub.drain().catch(() => undefined);
          await s.closed;
        }),
      ),
      delay(timeout),
    ]);
    this.state.closing = true;
    if (!this.nc.isClosed()) {
      await Promise.race([this.nc.drain().catch(() => undefined), delay(timeout)]);
      if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    }
  }
}

/**
 * Connects to NATS. Waits for the first connection (retrying per the reconnect
 * policy — by default forever) and reconnects forever afterwards.
 * @throws TransportError if the connection attempt fails for good.
 */
export async function connectNatsTransport(opts: NatsTransportOptions): Promise<Transport> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: natsServers(opts.servers),
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      maxReconnectAttempts: opts.maxReconnectAttempts ?? -1,
      waitOnFirstConnect: true,
      // An Error (with stack) per request costs ~30 µs; TransportError carries the context instead.
      noAsyncTraces: true,
    });
  } catch (e) {
    throw toTransportError(e, { closing: false, disconnected: true }, `connect ${String(opts.servers)}`);
  }
  return new NatsTransport(nc, transportMetrics(opts.meter ?? noopMeter), opts);
}
