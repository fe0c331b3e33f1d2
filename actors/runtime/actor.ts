import type { Clock, TimerHandle } from './clock.js';
import { Mailbox, OverflowPolicy } from './mailbox.js';
import type { Counter, Gauge, Labels, Meter } from './meter.js';
import { noopMeter } from './meter.js';
import type { Rng } from './rng.js';

declare const timerIdBrand: unique symbol;
/** Identifies a timer created by `ActorContext.schedule`. */
export type TimerId = number & { readonly [timerIdBrand]: true };

export const ActorStatus = {
  Running: 'running',
  /** Failed and waiting (simulated `backoffMs`) to be re-initialised; mailbox kept. */
  Restarting: 'restarting',
  /** Permanently failed; terminal. */
  Failed: 'failed',
  /** Stopped on request; terminal. */
  Stopped: 'stopped',
} as const;
export type ActorStatus = (typeof ActorStatus)[keyof typeof ActorStatus];

/** Why a message was not processed. */
export const DropReason = {
  /** Mailbox full under 'drop-newest': the new message was refused. */
  MailboxFull: 'mailbox-full',
  /** Mailbox full under 'drop-oldest': the oldest queued message was evicted. */
  Evicted: 'evicted',
  /** Mailbox full under 'reject': the new message was refused. */
  Rejected: 'rejected',
  /** Sent to (or queued at) a stopped or permanently failed actor. */
  DeadLetter: 'dead-letter',
  /** The message whose `receive` threw or rejected. */
  Failed: 'failed',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Address of an actor. */
export interface ActorRef<M> {
  /** Unique among live actors of a system; `kind` is the part before the first ':'. */
  readonly name: string;
  /** Enqueues `msg`; false when it was refused (mailbox full/reject) or dead-lettered. Never throws. */
  tell(msg: M): boolean;
}

/** What `init` and `receive` get besides state and message. */
export interface ActorContext<M> {
  readonly self: ActorRef<M>;
  readonly clock: Clock;
  /** `systemRng.fork(name)`: deterministic per actor name, independent of spawn order. */
  readonly rng: Rng;
  /**
   * Tells `msg` to self after `delayMs` of SIMULATED time. Timers are cancelled
   * when the actor stops, fails or restarts.
   */
  schedule(delayMs: number, msg: M): TimerId;
  /** Cancels a timer from `schedule`; unknown or fired ids are ignored. */
  cancel(id: TimerId): void;
}

export interface MailboxOptions {
  /** Max queued messages (not counting the one being processed). Default 1000. */
  readonly capacity?: number;
  /** Default 'drop-newest'. */
  readonly overflow?: OverflowPolicy;
}

export interface SupervisionOptions {
  /** 'restart' (default) re-runs `init`; 'stop' leaves the actor 'failed' on its first failure. */
  readonly strategy?: 'restart' | 'stop';
  /** Restarts allowed within `withinMs`; the next failure is permanent. Default 10. */
  readonly maxRestarts?: number;
  /** Sliding window, simulated ms. Default 60_000. */
  readonly withinMs?: number;
  /** Simulated delay before re-initialising. Default 0 (immediate). */
  readonly backoffMs?: number;
}

/** Behaviour of an actor: a pure-ish state machine over messages. */
export interface ActorDefinition<S, M extends { type: string }> {
  readonly name: string;
  /** Builds the initial state; called on spawn (a throw aborts `spawn`) and on each restart. */
  init(ctx: ActorContext<M>): S;
  /**
   * Returns the next state. Messages are processed one at a time in arrival
   * order; an async `receive` completes before the next message starts. A throw
   * or rejection fails the actor (see `supervision`) and drops that message.
   */
  receive(state: S, msg: M, ctx: ActorContext<M>): S | Promise<S>;
  readonly mailbox?: MailboxOptions;
  readonly supervision?: SupervisionOptions;
}

/** Owner's view of a spawned actor. */
export interface ActorHandle<S, M> extends ActorRef<M> {
  status(): ActorStatus;
  /** Current state, for tests and inspection; do not mutate. */
  state(): S;
  /** Last error thrown by `receive`/`init`, if any. */
  lastError(): unknown;
  /** Same as `system.stop(this)`. */
  stop(): void;
}

/** Reported to `onFailure` whenever `receive` or a restart's `init` throws. */
export interface ActorFailure {
  readonly actor: string;
  readonly error: unknown;
  /** The failing message; undefined when `init` failed during a restart. */
  readonly message: { type: string } | undefined;
  /** What supervision decided. */
  readonly outcome: 'restarting' | 'failed';
}

export interface ActorSystemOptions {
  readonly clock: Clock;
  readonly rng: Rng;
  readonly meter?: Meter;
  readonly name?: string;
  /**
   * Messages processed (system-wide) within one macrotask before remaining work
   * is deferred with `setImmediate`, so I/O and wall timers are not starved.
   * Default 5000.
   */
  readonly yieldEvery?: number;
  /** Observer for failures (logging); exceptions it throws are ignored. */
  readonly onFailure?: (failure: ActorFailure) => void;
}

export interface ActorSystemStats {
  /** Live (running or restarting) actors. */
  readonly actors: number;
  /** Messages whose `receive` completed. */
  readonly processed: number;
  /** Messages lost to mailbox bounds: mailbox-full + evicted + rejected. */
  readonly mailboxDropped: number;
  readonly deadLetters: number;
  readonly restarts: number;
  /** Failed `receive`s plus failed restart `init`s. */
  readonly failures: number;
  readonly dropped: Readonly<Record<DropReason, number>>;
}

/** Base class of errors thrown by the actor system. */
export class ActorSystemError extends Error {
  override name = 'ActorSystemError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `spawn` with a name already used by a live actor. */
export class ActorNameTakenError extends ActorSystemError {
  override name = 'ActorNameTakenError';
}

/** `init` threw during `spawn`; the original error is the `cause`. */
export class ActorInitError extends ActorSystemError {
  override name = 'ActorInitError';
}

/** `spawn` after `shutdown`. */
export class ActorSystemShutdownError extends ActorSystemError {
  override name = 'ActorSystemShutdownError';
}

interface Metrics {
  readonly processed: Counter;
  readonly dropped: Counter;
  readonly restarts: Counter;
  readonly failures: Counter;
  readonly live: Gauge;
}

function isPromiseLike(x: unknown): x is PromiseLike<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as { then?: unknown }).then === 'function';
}

const DEFAULT_CAPACITY = 1000;
const DEFAULT_MAX_RESTARTS = 10;
const DEFAULT_WITHIN_MS = 60_000;

/**
 * One actor: mailbox, state and lifecycle. Doubles as the actor's context and
 * handle to keep per-actor cost to a single object plus its mailbox.
 */
class Cell<S, M extends { type: string }> implements ActorHandle<S, M>, ActorContext<M> {
  readonly labels: Labels;
  readonly mailbox: Mailbox<M>;
  currentStatus: ActorStatus = ActorStatus.Running;
  currentState!: S;
  /** A drain run owns this actor (queued, processing, or awaiting an async receive). */
  draining = false;
  /** Bumped on fail/stop; work started under an older incarnation is discarded. */
  incarnation = 0;
  timers: Map<TimerId, TimerHandle> | undefined;
  restartTimes: number[] | undefined;
  restartTimer: TimerHandle | undefined;
  error: unknown;
  private forkedRng: Rng | undefined;

  constructor(
    readonly system: ActorSystem,
    readonly def: ActorDefinition<S, M>,
    labels: Labels,
  ) {
    this.labels = labels;
    this.mailbox = new Mailbox<M>(
      def.mailbox?.capacity ?? DEFAULT_CAPACITY,
      def.mailbox?.overflow ?? OverflowPolicy.DropNewest,
    );
  }

  get name(): string {
    return this.def.name;
  }
  get self(): ActorRef<M> {
    return this;
  }
  get clock(): Clock {
    return this.system.clock;
  }
  /** Forked lazily: fork is a pure function of (seed, name), so laziness keeps determinism. */
  get rng(): Rng {
    return (this.forkedRng ??= this.system.rng.fork(this.def.name));
  }

  tell(msg: M): boolean {
    return this.system.deliver(this, msg);
  }
  schedule(delayMs: number, msg: M): TimerId {
    return this.system.scheduleFor(this, delayMs, msg);
  }
  cancel(id: TimerId): void {
    const h = this.timers?.get(id);
    if (h === undefined) return;
    this.timers?.delete(id);
    this.system.clock.clearTimeout(h);
  }
  status(): ActorStatus {
    return this.currentStatus;
  }
  state(): S {
    return this.currentState;
  }
  lastError(): unknown {
    return this.error;
  }
  stop(): void {
    this.system.stop(this);
  }
}

type AnyCell = Cell<unknown, { type: string }>;

/**
 * Hosts actors in one process. Work is scheduled with `queueMicrotask` (no
 * per-actor intervals), so tens of thousands of mostly idle actors are cheap.
 * All timing (timers, restart backoff and windows) uses the injected `Clock`.
 */
export class ActorSystem {
  readonly clock: Clock;
  readonly rng: Rng;
  readonly name: string;
  private readonly cells = new Map<string, AnyCell>();
  private readonly metrics: Metrics;
  private readonly yieldEvery: number;
  private readonly onFailure: ((f: ActorFailure) => void) | undefined;
  private readonly kindLabels = new Map<string, Labels>();
  private readonly counts = { processed: 0, restarts: 0, failures: 0 };
  private readonly dropped: Record<DropReason, number> = {
    'mailbox-full': 0,
    evicted: 0,
    rejected: 0,
    'dead-letter': 0,
    failed: 0,
  };
  private nextTimerId = 0;
  /** Actors with a drain run in progress; 0 means idle. */
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private processedThisTurn = 0;
  private shuttingDown = false;

  constructor(opts: ActorSystemOptions) {
    this.clock = opts.clock;
    this.rng = opts.rng;
    this.name = opts.name ?? 'actors';
    this.yieldEvery = Math.max(1, opts.yieldEvery ?? 5000);
    this.onFailure = opts.onFailure;
    const meter = opts.meter ?? noopMeter;
    const kind = ['kind'] as const;
    this.metrics = {
      processed: meter.counter({
        name: 'sphere_actor_messages_processed_total',
        help: 'Messages whose receive completed',
        labelNames: kind,
      }),
      dropped: meter.counter({
        name: 'sphere_actor_messages_dropped_total',
        help: 'Messages not processed, by reason (mailbox-full, evicted, rejected, dead-letter, failed)',
        labelNames: ['kind', 'reason'],
      }),
      restarts: meter.counter({
        name: 'sphere_actor_restarts_total',
        help: 'Actor restarts by supervision',
        labelNames: kind,
      }),
      failures: meter.counter({
        name: 'sphere_actor_failures_total',
        help: 'receive/init failures',
        labelNames: kind,
      }),
      live: meter.gauge({
        name: 'sphere_actor_live',
        help: 'Live (running or restarting) actors',
        labelNames: kind,
      }),
    };
  }

  /**
   * Starts an actor; `init` runs synchronously.
   * @throws ActorNameTakenError if a live actor has this name.
   * @throws ActorInitError if `init` throws (nothing is registered).
   * @throws ActorSystemShutdownError after `shutdown`.
   */
  spawn<S, M extends { type: string }>(def: ActorDefinition<S, M>): ActorHandle<S, M> {
    if (this.shuttingDown) throw new ActorSystemShutdownError(`actor system ${this.name} is shut down`);
    if (def.name.length === 0) throw new ActorSystemError('actor name must not be empty');
    if (this.cells.has(def.name)) throw new ActorNameTakenError(`actor ${def.name} already exists`);
    const cell = new Cell<S, M>(this, def, this.labelsFor(def.name));
    try {
      cell.currentState = def.init(cell);
    } catch (cause) {
      this.cancelTimers(cell);
      throw new ActorInitError(`init of actor ${def.name} failed`, { cause });
    }
    this.cells.set(def.name, cell);
    this.metrics.live.inc(cell.labels);
    return cell;
  }

  /** Live actor by name, if any. */
  lookup<M>(name: string): ActorRef<M> | undefined {
    return this.cells.get(name) as ActorRef<M> | undefined;
  }

  /**
   * Stops an actor: timers cancelled, queued messages dead-lettered, name freed.
   * An in-flight async `receive` finishes but its result is discarded. Idempotent.
   */
  stop(ref: ActorRef<unknown>): void {
    const cell = this.cells.get(ref.name);
    if (cell === undefined || cell !== (ref as unknown)) return;
    this.terminate(cell, ActorStatus.Stopped);
  }

  /** Stops every actor, refuses further spawns, and waits for in-flight `receive`s to settle. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const cell of [...this.cells.values()]) this.terminate(cell, ActorStatus.Stopped);
    await this.whenIdle();
  }

  /**
   * Resolves once no actor has queued-and-runnable messages or an in-flight
   * `receive`. Actors waiting on a restart backoff or timers do not count as busy:
   * advance the clock to get them going.
   */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): ActorSystemStats {
    const d = this.dropped;
    return {
      actors: this.cells.size,
      processed: this.counts.processed,
      restarts: this.counts.restarts,
      failures: this.counts.failures,
      mailboxDropped: d['mailbox-full'] + d.evicted + d.rejected,
      deadLetters: d['dead-letter'],
      dropped: { ...d },
    };
  }

  // ---- internals used by Cell -------------------------------------------------

  /** @internal Implements `tell`. */
  deliver<S, M extends { type: string }>(cell: Cell<S, M>, msg: M): boolean {
    const status = cell.currentStatus;
    if (status === ActorStatus.Stopped || status === ActorStatus.Failed) {
      this.drop(cell.labels, DropReason.DeadLetter);
      return false;
    }
    const outcome = cell.mailbox.offer(msg);
    if (!outcome.accepted) {
      this.drop(cell.labels, outcome.reason);
      return false;
    }
    if (outcome.evicted) this.drop(cell.labels, DropReason.Evicted);
    this.startDrain(cell);
    return true;
  }

  /** @internal Implements `ctx.schedule`. */
  scheduleFor<S, M extends { type: string }>(cell: Cell<S, M>, delayMs: number, msg: M): TimerId {
    const id = ++this.nextTimerId as TimerId;
    const status = cell.currentStatus;
    if (status === ActorStatus.Stopped || status === ActorStatus.Failed) return id;
    const incarnation = cell.incarnation;
    const handle = this.clock.setTimeout(() => {
      cell.timers?.delete(id);
      if (cell.incarnation === incarnation) cell.tell(msg);
    }, delayMs);
    (cell.timers ??= new Map()).set(id, handle);
    return id;
  }

  // ---- processing ---------------------------------------------------------------

  private labelsFor(name: string): Labels {
    const colon = name.indexOf(':');
    const kind = colon === -1 ? name : name.slice(0, colon);
    let labels = this.kindLabels.get(kind);
    if (labels === undefined) {
      labels = Object.freeze({ kind });
      this.kindLabels.set(kind, labels);
    }
    return labels;
  }

  private drop(labels: Labels, reason: DropReason): void {
    this.dropped[reason]++;
    this.metrics.dropped.inc({ kind: labels['kind'] ?? '', reason });
  }

  /** Begins a drain run if the actor is running, has mail and no run yet. */
  private startDrain<S, M extends { type: string }>(cell: Cell<S, M>): void {
    if (cell.draining || cell.currentStatus !== ActorStatus.Running || cell.mailbox.size === 0) return;
    cell.draining = true;
    this.active++;
    const incarnation = cell.incarnation;
    const run = (): void => this.drain(cell, incarnation);
    if (this.processedThisTurn >= this.yieldEvery) setImmediate(run);
    else queueMicrotask(run);
  }

  /** Ends the current drain run (the only place `draining` becomes false). */
  private endDrain<S, M extends { type: string }>(cell: Cell<S, M>): void {
    cell.draining = false;
    this.active--;
    if (this.active === 0 && this.idleWaiters.length > 0) queueMicrotask(() => this.notifyIdle());
  }

  /** Deferred so that work started right after a run ends (e.g. an immediate restart) counts as busy. */
  private notifyIdle(): void {
    if (this.active !== 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Counts one message toward the per-macrotask budget. */
  private noteTurn(): void {
    if (this.processedThisTurn++ === 0) setImmediate(() => (this.processedThisTurn = 0));
  }

  /**
   * Processes messages one at a time until the mailbox is empty, the actor
   * leaves 'running', or the turn budget is spent (then resumes via setImmediate).
   */
  private drain<S, M extends { type: string }>(cell: Cell<S, M>, incarnation: number): void {
    for (;;) {
      if (cell.incarnation !== incarnation || cell.currentStatus !== ActorStatus.Running)
        return this.endDrain(cell);
      if (this.processedThisTurn >= this.yieldEvery) {
        setImmediate(() => this.drain(cell, incarnation));
        return;
      }
      const msg = cell.mailbox.shift();
      if (msg === undefined) return this.endDrain(cell);
      this.noteTurn();
      let next: S | Promise<S>;
      try {
        next = cell.def.receive(cell.currentState, msg, cell);
      } catch (error) {
        this.endDrain(cell);
        return this.fail(cell, msg, error);
      }
      if (isPromiseLike(next)) {
        // Keep `draining` set while awaiting: nothing else may start on this actor.
        void (next as PromiseLike<S>).then(
          (state) => {
            if (cell.incarnation !== incarnation || cell.currentStatus !== ActorStatus.Running)
              return this.endDrain(cell);
            this.completed(cell, state);
            this.drain(cell, incarnation);
          },
          (error: unknown) => {
            this.endDrain(cell);
            if (cell.incarnation === incarnation && cell.currentStatus === ActorStatus.Running)
              this.fail(cell, msg, error);
          },
        );
        return;
      }
      this.completed(cell, next);
    }
  }

  private completed<S, M extends { type: string }>(cell: Cell<S, M>, state: S): void {
    cell.currentState = state;
    this.counts.processed++;
    this.metrics.processed.inc(cell.labels);
  }

  /** Applies supervision after `receive` (msg defined) or a restart's `init` failed. */
  private fail<S, M extends { type: string }>(cell: Cell<S, M>, msg: M | undefined, error: unknown): void {
    cell.error = error;
    this.counts.failures++;
    this.metrics.failures.inc(cell.labels);
    if (msg !== undefined) this.drop(cell.labels, DropReason.Failed);
    cell.incarnation++;
    this.cancelTimers(cell);

    const sup = cell.def.supervision ?? {};
    const now = this.clock.now();
    let outcome: 'restarting' | 'failed' = 'failed';
    if ((sup.strategy ?? 'restart') === 'restart') {
      const windowStart = now - (sup.withinMs ?? DEFAULT_WITHIN_MS);
      const recent = (cell.restartTimes ?? []).filter((t) => t > windowStart);
      if (recent.length < (sup.maxRestarts ?? DEFAULT_MAX_RESTARTS)) {
        recent.push(now);
        outcome = 'restarting';
      }
      cell.restartTimes = recent;
    }
    this.report({ actor: cell.name, error, message: msg, outcome });

    if (outcome === 'failed') return this.terminate(cell, ActorStatus.Failed);
    cell.currentStatus = ActorStatus.Restarting;
    const backoff = sup.backoffMs ?? 0;
    if (backoff > 0) cell.restartTimer = this.clock.setTimeout(() => this.restart(cell), backoff);
    else this.restart(cell);
  }

  private restart<S, M extends { type: string }>(cell: Cell<S, M>): void {
    cell.restartTimer = undefined;
    if (cell.currentStatus !== ActorStatus.Restarting) return;
    this.counts.restarts++;
    this.metrics.restarts.inc(cell.labels);
    try {
      cell.currentState = cell.def.init(cell);
    } catch (error) {
      return this.fail(cell, undefined, error);
    }
    cell.currentStatus = ActorStatus.Running;
    this.startDrain(cell); // queued messages survived the restart
  }

  private report(f: ActorFailure): void {
    if (this.onFailure === undefined) return;
    try {
      this.onFailure(f);
    } catch {
      // an observer must not break supervision
    }
  }

  private cancelTimers<S, M extends { type: string }>(cell: Cell<S, M>): void {
    if (cell.timers !== undefined) {
      for (const h of cell.timers.values()) this.clock.clearTimeout(h);
      cell.timers = undefined;
    }
    if (cell.restartTimer !== undefined) {
      this.clock.clearTimeout(cell.restartTimer);
      cell.restartTimer = undefined;
    }
  }

  /** Moves a live actor to a terminal status and frees its name. */
  private terminate<S, M extends { type: string }>(cell: Cell<S, M>, status: 'stopped' | 'failed'): void {
    const prev = cell.currentStatus;
    if (prev === ActorStatus.Stopped || prev === ActorStatus.Failed) return;
    cell.currentStatus = status;
    cell.incarnation++;
    this.cancelTimers(cell);
    for (let n = cell.mailbox.drain().length; n > 0; n--) this.drop(cell.labels, DropReason.DeadLetter);
    if (this.cells.get(cell.name) === (cell as unknown)) this.cells.delete(cell.name);
    this.metrics.live.dec(cell.labels);
  }
}
