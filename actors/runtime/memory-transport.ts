import type { WallTimers } from './clock.js';
import { systemWall } from './clock.js';
import type { Meter } from './meter.js';
import { noopMeter } from './meter.js';
import type {
  BoundedRunner,
  HandlerErrorHook,
  InboundMessage,
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
  TransportError,
  TransportErrorCode,
  transportMetrics,
} from './transport.js';

export interface MemoryBusOptions {
  /** Wall timers for request timeouts; default global timers. */
  readonly timers?: Pick<WallTimers, 'setTimeout' | 'clearTimeout'>;
  readonly meter?: Meter;
  /** Bus-wide payload limit like a NATS server's max_payload. Default 1 MiB. */
  readonly maxPayload?: number;
  /** Called after a handler failure is counted. */
  readonly onHandlerError?: HandlerErrorHook;
}

/**
 * In-process broker with NATS semantics: subject wildcards (`*` one token, `>`
 * one or more trailing tokens), queue groups (one member per group per message,
 * round-robin in subscription order), request/reply with NO_RESPONDERS and
 * wall-clock TIMEOUT. Every delivery is asynchronous (queueMicrotask), never
 * re-entrant, and receivers get their own copy of the bytes.
 */
export interface MemoryBus {
  connect(name?: string): Transport;
  /** Live subscriptions across all connections. */
  readonly subscriptionCount: number;
}

/** One `serve` registration. */
interface MemSub {
  /** Subject as given to `serve` (may contain wildcards); also the metrics label. */
  readonly pattern: string;
  readonly tokens: readonly string[];
  /** Queue group name; undefined for a plain (fan-out) subscriber. */
  readonly queue: string | undefined;
  readonly conn: MemConnection;
  /** Hands a message to the subscription (already async). */
  accept(subject: string, data: Uint8Array, reply: string | undefined): void;
  /** False once unsubscribed: queued deliveries are then discarded. */
  active: boolean;
}

/** A request waiting for its first reply; keyed by its inbox subject. */
interface PendingRequest {
  /** Requesting connection; its close rejects the request with CLOSED. */
  readonly conn: MemConnection;
  resolve(data: Uint8Array): void;
  reject(e: TransportError): void;
}

const INBOX_PREFIX = '_INBOX.';

function invalid(subject: string, why: string): TransportError {
  return new TransportError(TransportErrorCode.Other, `invalid subject "${subject}": ${why}`);
}

/** Validates a subject; wildcards only when `allowWildcards`. Returns its tokens. */
function tokenize(subject: string, allowWildcards: boolean): string[] {
  if (subject.length === 0 || /\s/.test(subject)) throw invalid(subject, 'empty or contains whitespace');
  const tokens = subject.split('.');
  tokens.forEach((t, i) => {
    if (t.length === 0) throw invalid(subject, 'empty token');
    const wild = t === '*' || t === '>';
    if (wild && !allowWildcards) throw invalid(subject, 'wildcards are only allowed when subscribing');
    if (!wild && (t.includes('*') || t.includes('>')))
      throw invalid(subject, 'wildcards must be whole tokens');
    if (t === '>' && i !== tokens.length - 1) throw invalid(subject, "'>' must be the last token");
  });
  return tokens;
}

/** NATS subject matching of a concrete subject against a pattern. */
export function subjectMatches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

/** Shared routing state of one bus; connections are views onto it. */
class MemBroker {
  /** Subscriptions without wildcards, by exact subject (fast path for per-device subjects). */
  readonly literal = new Map<string, MemSub[]>();
  readonly wildcard: MemSub[] = [];
  readonly pending = new Map<string, PendingRequest>();
  /** Round-robin cursor per queue group name (NATS groups by name across matching patterns). */
  readonly rr = new Map<string, number>();
  readonly metrics: TransportMetrics;
  readonly timers: Pick<WallTimers, 'setTimeout' | 'clearTimeout'>;
  readonly maxPayload: number;
  subCount = 0;
  connSeq = 0;

  constructor(readonly opts: MemoryBusOptions) {
    this.metrics = transportMetrics(opts.meter ?? noopMeter);
    this.timers = opts.timers ?? systemWall;
    this.maxPayload = opts.maxPayload ?? 1024 * 1024;
  }

  /** Registers a subscription; literal subjects are indexed for O(1) lookup. */
  add(sub: MemSub): void {
    if (sub.tokens.includes('*') || sub.tokens.includes('>')) this.wildcard.push(sub);
    else {
      const list = this.literal.get(sub.pattern);
      if (list === undefined) this.literal.set(sub.pattern, [sub]);
      else list.push(sub);
    }
    this.subCount++;
  }

  /** Unregisters a subscription; unknown ones are ignored. */
  remove(sub: MemSub): void {
    const list = this.literal.get(sub.pattern);
    const target = list !== undefined && list.includes(sub) ? list : this.wildcard;
    const i = target.indexOf(sub);
    if (i === -1) return;
    target.splice(i, 1);
    if (list !== undefined && list.length === 0) this.literal.delete(sub.pattern);
    this.subCount--;
  }

  /**
   * Routes a message; returns how many subscriptions it was handed to (0 means
   * NO_RESPONDERS for a request). A publish to a pending request's inbox
   * completes that request, so handlers may also answer with `publish(reply, ...)`.
   */
  route(subject: string, data: Uint8Array, reply: string | undefined): number {
    if (subject.startsWith(INBOX_PREFIX)) {
      const p = this.pending.get(subject);
      if (p !== undefined) {
        const copy = data.slice();
        queueMicrotask(() => this.settle(subject, copy, undefined));
        return 1;
      }
    }
    const tokens = subject.split('.');
    const matched: MemSub[] = [...(this.literal.get(subject) ?? [])];
    for (const s of this.wildcard) if (subjectMatches(s.tokens, tokens)) matched.push(s);
    let groups: Map<string, MemSub[]> | undefined;
    let delivered = 0;
    for (const s of matched) {
      if (s.queue === undefined) {
        s.accept(subject, data.slice(), reply);
        delivered++;
      } else {
        groups ??= new Map();
        const g = groups.get(s.queue);
        if (g === undefined) groups.set(s.queue, [s]);
        else g.push(s);
      }
    }
    for (const [queue, members] of groups ?? []) {
      const n = this.rr.get(queue) ?? 0;
      this.rr.set(queue, n + 1);
      members[n % members.length]?.accept(subject, data.slice(), reply);
      delivered++;
    }
    return delivered;
  }

  /** Completes a pending request with data, or with the error carried in a reply. */
  settle(inbox: string, data: Uint8Array, errorCode: string | undefined): void {
    const p = this.pending.get(inbox);
    if (p === undefined) return; // late reply after timeout/close: dropped, as in NATS
    this.pending.delete(inbox);
    if (errorCode === undefined) p.resolve(data);
    else p.reject(replyError(errorCode));
  }
}

/** One client of the bus, with its own subscriptions and pending requests. */
class MemConnection implements Transport {
  private closedFlag = false;
  private readonly subs = new Set<{ sub: MemSub; runner: BoundedRunner<TrackedInbound>; end(): void }>();
  private readonly id: number;
  private reqSeq = 0;

  constructor(
    private readonly broker: MemBroker,
    readonly name: string,
  ) {
    this.id = ++broker.connSeq;
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  private closedError(): TransportError {
    return new TransportError(TransportErrorCode.Closed, `transport ${this.name} is closed`);
  }

  /** Enforces the bus-wide payload limit (like a server's max_payload). */
  private checkPayload(subject: string, data: Uint8Array): void {
    if (data.length > this.broker.maxPayload) {
      throw new TransportError(
        TransportErrorCode.PayloadTooLarge,
        `payload of ${data.length} bytes to ${subject} exceeds ${this.broker.maxPayload}`,
      );
    }
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.closedFlag) throw this.closedError();
    tokenize(subject, false);
    this.checkPayload(subject, data);
    this.broker.route(subject, data, undefined);
  }

  request(subject: string, data: Uint8Array, opts: { readonly timeoutMs: number }): Promise<Uint8Array> {
    const { metrics, timers, pending } = this.broker;
    const p = new Promise<Uint8Array>((resolve, reject) => {
      if (this.closedFlag) throw this.closedError();
      tokenize(subject, false);
      this.checkPayload(subject, data);
      const inbox = `${INBOX_PREFIX}${this.id}.${++this.reqSeq}`;
      const timer = timers.setTimeout(() => {
        if (!pending.delete(inbox)) return;
        reject(
          new TransportError(
            TransportErrorCode.Timeout,
            `request to ${subject} timed out after ${opts.timeoutMs} ms`,
          ),
        );
      }, opts.timeoutMs);
      pending.set(inbox, {
        conn: this,
        resolve: (d) => {
          timers.clearTimeout(timer);
          resolve(d);
        },
        reject: (e) => {
          timers.clearTimeout(timer);
          reject(e);
        },
      });
      // Routed synchronously, so "nobody subscribed" is known before returning.
      if (this.broker.route(subject, data, inbox) === 0) {
        this.broker.pending
          .get(inbox)
          ?.reject(new TransportError(TransportErrorCode.NoResponders, `no responders for ${subject}`));
        pending.delete(inbox);
      }
    });
    void p.then(
      () => metrics.requests.inc({ outcome: 'ok' }),
      (e: unknown) =>
        metrics.requests.inc({ outcome: e instanceof TransportError ? e.code : TransportErrorCode.Other }),
    );
    return p;
  }

  serve(
    subject: string,
    handler: (msg: InboundMessage) => void | Promise<void>,
    opts: { queue?: string; maxPayload?: number; concurrency?: number } = {},
  ): Subscription {
    if (this.closedFlag) throw this.closedError();
    const tokens = tokenize(subject, true);
    const broker = this.broker;
    const runner = createServeRunner(
      subject,
      handler,
      opts.concurrency ?? DEFAULT_SERVE_CONCURRENCY,
      broker.metrics,
      broker.opts.onHandlerError,
    );
    const sub: MemSub = {
      pattern: subject,
      tokens,
      queue: opts.queue,
      conn: this,
      active: true,
      accept: (msgSubject, data, reply) => {
        queueMicrotask(() => {
          if (!sub.active) return;
          const msg = this.inbound(msgSubject, data, reply);
          if (!rejectOversized(msg, opts.maxPayload, subject, broker.metrics)) runner.push(msg);
        });
      },
    };
    // `closed` resolves after unsubscribe once in-flight handlers have settled.
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));
    const entry = {
      sub,
      runner,
      end: () => {
        if (!sub.active) return;
        sub.active = false;
        broker.remove(sub);
        this.subs.delete(entry);
        void runner.settled().then(resolveClosed);
      },
    };
    broker.add(sub);
    this.subs.add(entry);
    return { unsubscribe: entry.end, closed };
  }

  /** Builds the handler's view of a message; replies are async like everything else. */
  private inbound(subject: string, data: Uint8Array, reply: string | undefined): TrackedInbound {
    const broker = this.broker;
    let responded = false;
    const send = (payload: Uint8Array, errorCode: string | undefined): boolean => {
      if (reply === undefined || this.closedFlag) return false;
      responded = true;
      const copy = payload.slice();
      queueMicrotask(() => broker.settle(reply, copy, errorCode));
      return true;
    };
    return {
      subject,
      data,
      ...(reply !== undefined ? { reply } : {}),
      get responded() {
        return responded;
      },
      respond: (payload) => send(payload, undefined),
      respondError: (code) => void send(new Uint8Array(0), code),
    };
  }

  flush(): Promise<void> {
    if (this.closedFlag) return Promise.reject(this.closedError());
    // Deliveries are microtasks queued before this one, so they have run when it does.
    return new Promise((resolve) => queueMicrotask(resolve));
  }

  async close(): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    const entries = [...this.subs];
    for (const e of entries) e.end();
    // Our own pending requests can no longer be answered to us.
    for (const [inbox, p] of this.broker.pending) {
      if (p.conn !== this) continue;
      this.broker.pending.delete(inbox);
      p.reject(this.closedError());
    }
    await Promise.all(entries.map((e) => e.runner.settled()));
  }
}

/** Creates an isolated in-process broker. */
export function createMemoryBus(opts: MemoryBusOptions = {}): MemoryBus {
  const broker = new MemBroker(opts);
  let anon = 0;
  return {
    connect: (name) => new MemConnection(broker, name ?? `memory-${++anon}`),
    get subscriptionCount() {
      return broker.subCount;
    },
  };
}
