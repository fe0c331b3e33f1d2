/**
 * Messaging port between processes (device actors, service shards). Two
 * adapters: NATS (`connectNatsTransport`) and in-process (`createMemoryBus`).
 * All timeouts here are WALL-clock: they model the network, not simulated time.
 */

import type { Counter, Meter } from './meter.js';

export const TransportErrorCode = {
  /** No reply within `timeoutMs` (wall clock). */
  Timeout: 'TIMEOUT',
  /** Nobody was subscribed to the request subject. */
  NoResponders: 'NO_RESPONDERS',
  /** This transport was closed (before or during the call). */
  Closed: 'CLOSED',
  /** Connection to the broker lost; the client may reconnect. */
  Disconnected: 'DISCONNECTED',
  /** Payload exceeds the broker's or the serving subscription's limit. */
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  /** Anything else, including a remote handler that threw without replying. */
  Other: 'OTHER',
} as const;
export type TransportErrorCode = (typeof TransportErrorCode)[keyof typeof TransportErrorCode];

/** Failure of a transport operation; `cause` keeps the adapter's original error. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A message delivered to a `serve` handler. */
export interface InboundMessage {
  readonly subject: string;
  /** Owned by the handler (not shared with other subscribers). */
  readonly data: Uint8Array;
  /** Reply subject; present for requests. */
  readonly reply?: string;
  /** Publishes `data` to `reply`. False when there is no reply subject or the transport is closed. */
  respond(data: Uint8Array): boolean;
}

export interface Subscription {
  /** Stops delivery of new messages; idempotent. In-flight handlers run to completion. */
  unsubscribe(): void;
  /** Resolves once the subscription has ended and its in-flight handlers have settled. */
  readonly closed: Promise<void>;
}

export interface ServeOptions {
  /** Queue group: each message goes to one member of the group. */
  readonly queue?: string;
  /**
   * Larger inbound payloads are not handed to the handler; a requester gets
   * TransportError PAYLOAD_TOO_LARGE. Counted in `sphere_transport_rejected_total`.
   */
  readonly maxPayload?: number;
  /**
   * Max handlers of this subscription running at once (async handlers count
   * until they settle). Further messages wait in the subscription's buffer. Default 256.
   */
  readonly concurrency?: number;
}

export type Handler = (msg: InboundMessage) => void | Promise<void>;

export interface Transport {
  /** Sends a request and resolves with the first reply; rejects with `TransportError`. */
  request(subject: string, data: Uint8Array, opts: { readonly timeoutMs: number }): Promise<Uint8Array>;
  /**
   * Fire-and-forget. Throws `TransportError` CLOSED synchronously on a closed transport; the
   * NATS adapter sends at the end of the event-loop turn (one write per turn), so a message the
   * client library refuses then (bad subject, over max_payload) is counted in
   * `sphere_transport_rejected_total{reason="publish"}`, not thrown. Delivery is not confirmed.
   */
  publish(subject: string, data: Uint8Array): void;
  /**
   * Subscribes `handler` to `subject` (NATS wildcards `*` and `>` allowed). A
   * handler that throws or rejects is counted in
   * `sphere_transport_handler_errors_total{subject}` and never ends the
   * subscription; if it had not responded to a request, the requester gets
   * TransportError OTHER instead of waiting for its timeout.
   */
  serve(subject: string, handler: Handler, opts?: ServeOptions): Subscription;
  /** Resolves once everything published before the call has reached the broker (or the subscribers, in memory). */
  flush(): Promise<void>;
  /** Ends subscriptions, waits for their in-flight handlers, then disconnects. Idempotent. */
  close(): Promise<void>;
  readonly isClosed: boolean;
}

/** Header carrying a transport-level failure in a reply (both adapters). */
export const TRANSPORT_ERROR_HEADER = 'Sphere-Transport-Error';

/** Default `ServeOptions.concurrency`. */
export const DEFAULT_SERVE_CONCURRENCY = 256;

/** Transport metrics shared by both adapters. */
export interface TransportMetrics {
  readonly handlerErrors: Counter;
  readonly rejected: Counter;
  readonly requests: Counter;
}

/** Registers (idempotently) the transport metrics on `meter`. */
export function transportMetrics(meter: Meter): TransportMetrics {
  return {
    handlerErrors: meter.counter({
      name: 'sphere_transport_handler_errors_total',
      help: 'serve handlers that threw or rejected, by served subject pattern',
      labelNames: ['subject'],
    }),
    rejected: meter.counter({
      name: 'sphere_transport_rejected_total',
      help: 'messages dropped: inbound ones not handed to a handler, publishes the client refused (reason=publish)',
      labelNames: ['subject', 'reason'],
    }),
    requests: meter.counter({
      name: 'sphere_transport_requests_total',
      help: 'requests by outcome (ok or a TransportError code)',
      labelNames: ['outcome'],
    }),
  };
}

/**
 * Runs handlers with at most `limit` in flight, queueing the rest (FIFO).
 * Handler failures go to `onError`; they never escape.
 */
export class BoundedRunner<T> {
  private inFlight = 0;
  private readonly queue: T[] = [];
  private slotWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private pumping = false;

  constructor(
    private readonly limit: number,
    private readonly run: (item: T) => void | Promise<void>,
    private readonly onError: (error: unknown, item: T) => void,
  ) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${limit}`);
  }

  /** In flight plus queued. */
  get pending(): number {
    return this.inFlight + this.queue.length;
  }

  /** Runs `item` now if a slot is free, else queues it. */
  push(item: T): void {
    this.queue.push(item);
    this.pump();
  }

  /** Resolves when a slot is free (immediately if one is). */
  slot(): Promise<void> {
    if (this.inFlight < this.limit && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  /** Resolves when nothing is in flight or queued. */
  settled(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(item: T): void {
    this.inFlight++;
    let r: void | Promise<void>;
    try {
      r = this.run(item);
    } catch (e) {
      this.onError(e, item);
      return this.done();
    }
    if (r instanceof Promise) {
      void r.then(
        () => this.done(),
        (e: unknown) => {
          this.onError(e, item);
          this.done();
        },
      );
    } else this.done();
  }

  private done(): void {
    this.inFlight--;
    this.pump();
  }

  /** Starts queued items while slots are free; iterative so sync handlers cannot recurse deeply. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inFlight < this.limit && this.queue.length > 0) this.start(this.queue.shift() as T);
    } finally {
      this.pumping = false;
    }
    // One waiter per pump: a woken waiter pushes, which pumps again.
    if (this.inFlight < this.limit && this.queue.length === 0) this.slotWaiters.shift()?.();
    if (this.pending === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** @internal Inbound message as adapters build it: tracks replies, can send a transport-level error. */
export interface TrackedInbound extends InboundMessage {
  readonly responded: boolean;
  respondError(code: TransportErrorCode): void;
}

/** @internal Called for every handler failure (after counting); for logging. */
export type HandlerErrorHook = (error: unknown, subject: string) => void;

/**
 * @internal Runner for one subscription: bounded concurrency, handler failures
 * counted per served pattern and answered with an OTHER error if unanswered.
 */
export function createServeRunner(
  pattern: string,
  handler: Handler,
  concurrency: number,
  metrics: TransportMetrics,
  onHandlerError: HandlerErrorHook | undefined,
): BoundedRunner<TrackedInbound> {
  const labels = { subject: pattern };
  return new BoundedRunner<TrackedInbound>(concurrency, handler, (error, msg) => {
    metrics.handlerErrors.inc(labels);
    if (msg.reply !== undefined && !msg.responded) msg.respondError(TransportErrorCode.Other);
    try {
      onHandlerError?.(error, msg.subject);
    } catch {
      // a logging hook must not break serving
    }
  });
}

/** @internal Rejects `data` above `maxPayload`, answering requesters; true when rejected. */
export function rejectOversized(
  msg: TrackedInbound,
  maxPayload: number | undefined,
  pattern: string,
  metrics: TransportMetrics,
): boolean {
  if (maxPayload === undefined || msg.data.length <= maxPayload) return false;
  metrics.rejected.inc({ subject: pattern, reason: 'payload-too-large' });
  if (msg.reply !== undefined) msg.respondError(TransportErrorCode.PayloadTooLarge);
  return true;
}

/** @internal Decodes a reply's error header value into a TransportError. */
export function replyError(value: string): TransportError {
  const code = (Object.values(TransportErrorCode) as string[]).includes(value)
    ? (value as TransportErrorCode)
    : TransportErrorCode.Other;
  const message =
    code === TransportErrorCode.Other
      ? 'remote handler failed without replying'
      : `remote rejected the request: ${code}`;
  return new TransportError(code, message);
}
