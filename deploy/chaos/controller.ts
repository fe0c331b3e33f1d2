/**
 * The chaos controller: plays a scenario's fault timeline (or faults injected by hand) against
 * the local stack. Link faults go to the TCP proxies every link runs through (proxy.ts); process
 * faults kill -9 / restart or SIGSTOP / SIGCONT a shard or a NATS node. Every action is logged on
 * a timeline (wall ms since the fleet started) and counted in metrics.
 */
import type { Meter } from '../../actors/runtime/index.js';
import type { ChaosAction, ChaosFault } from '../../loadgen/scenario/index.js';
import type { FaultSpan } from '../../loadgen/verdict/index.js';
import type { LinkFault, LinkProxy } from './proxy.js';

/** A link of the stack: from an endpoint (`devices`, `shard-N`, `nats-N`) to a NATS node. */
export interface ChaosLink {
  readonly from: string;
  readonly to: string;
  readonly proxy: LinkProxy;
}

/** A process the controller may kill or pause. */
export interface ChaosProcess {
  readonly name: string;
  /** SIGKILL, no restart. */
  kill(): void;
  /** Starts it again (same ports, same store); resolves once it is ready. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(): void;
  resume(): void;
}

export interface ChaosEvent {
  /** Wall ms since the timeline started. */
  readonly atMs: number;
  readonly fault: string;
  readonly action: 'start' | 'heal' | 'error';
  readonly label: string;
  readonly detail: string;
}

export interface ChaosControllerOptions {
  readonly links: readonly ChaosLink[];
  readonly processes: readonly ChaosProcess[];
  readonly meter: Meter;
  /** Called with each timeline line as it happens. */
  readonly log?: (line: string) => void;
  /** Wall clock (ms); injected for tests. */
  readonly now?: () => number;
}

/** Whether endpoint `name` is one of `side` (`shards` means every `shard-N`, `nats` every `nats-N`). */
export function endpointIn(name: string, side: readonly string[]): boolean {
  return side.some(
    (s) =>
      s === name ||
      (s === 'shards' && name.startsWith('shard-')) ||
      (s === 'nats' && name.startsWith('nats-')),
  );
}

/** The links between the two sides (in either direction). */
export function linksBetween(
  links: readonly ChaosLink[],
  between: readonly [readonly string[], readonly string[]],
): ChaosLink[] {
  const [a, b] = between;
  return links.filter(
    (l) => (endpointIn(l.from, a) && endpointIn(l.to, b)) || (endpointIn(l.from, b) && endpointIn(l.to, a)),
  );
}

function linkFault(a: Extract<ChaosAction, { between: unknown }>): LinkFault {
  switch (a.kind) {
    case 'partition':
      return { kind: 'cut' };
    case 'latency':
      return { kind: 'latency', ms: a.ms, jitterMs: a.jitterMs };
    case 'bandwidth':
      return { kind: 'bandwidth', bytesPerSec: a.bytesPerSecond };
    case 'loss':
      return { kind: 'loss', rate: a.rate };
    case 'reset':
      return { kind: 'reset' };
  }
}

interface Active {
  readonly fault: ChaosFault;
  readonly id: string;
  readonly startMs: number;
  endMs: number | null;
  heal: (() => Promise<void>) | null;
}

export class ChaosController {
  readonly #links: readonly ChaosLink[];
  readonly #processes: Map<string, ChaosProcess>;
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  #origin: number;
  readonly #events: ChaosEvent[] = [];
  readonly #spans: Active[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Processes a fault killed on purpose (their exit is not an error). */
  readonly #down = new Set<string>();
  #manual = 0;
  #stopped = false;
  readonly #metrics;

  constructor(opts: ChaosControllerOptions) {
    this.#links = opts.links;
    this.#processes = new Map(opts.processes.map((p) => [p.name, p]));
    this.#log = opts.log ?? (() => undefined);
    this.#now = opts.now ?? Date.now;
    this.#origin = this.#now();
    this.#metrics = {
      faults: opts.meter.counter({
        name: 'sphere_chaos_faults_total',
        help: 'Faults the chaos controller injected, by kind.',
        labelNames: ['kind'],
      }),
      heals: opts.meter.counter({
        name: 'sphere_chaos_heals_total',
        help: 'Faults the chaos controller healed (links restored, processes restarted or resumed), by kind.',
        labelNames: ['kind'],
      }),
      active: opts.meter.gauge({
        name: 'sphere_chaos_faults_active',
        help: 'Faults in effect now, by kind.',
        labelNames: ['kind'],
      }),
      errors: opts.meter.counter({
        name: 'sphere_chaos_errors_total',
        help: 'Fault actions that failed (a process that would not restart), by kind.',
        labelNames: ['kind'],
      }),
    };
  }

  /** Wall ms since the timeline started. */
  elapsedMs(): number {
    return this.#now() - this.#origin;
  }

  /** Whether `name` is down because a fault killed it (its exit is expected). */
  isDown(name: string): boolean {
    return this.#down.has(name);
  }

  /** Schedules `faults` relative to now (the fleet's start), resetting the timeline origin. */
  play(faults: readonly ChaosFault[]): void {
    this.#origin = this.#now();
    for (const f of faults) {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        this.inject(f);
      }, f.atMs);
      this.#timers.add(t);
    }
  }

  /** Injects a fault now (synchronously: signals and proxies act at once); it heals after `forMs` (if set). Returns its id. */
  inject(fault: ChaosFault): string {
    const id = `f${fault.index >= 0 ? fault.index : `m${++this.#manual}`}`;
    const a = fault.action;
    const span: Active = { fault, id, startMs: this.elapsedMs(), endMs: null, heal: null };
    if (this.#stopped) return id;
    try {
      if (a.kind === 'kill' || a.kind === 'pause') {
        const p = this.#process(a.target);
        if (a.kind === 'kill') {
          p.kill();
          this.#down.add(p.name);
          span.heal = async () => {
            await p.restart();
            this.#down.delete(p.name);
          };
        } else {
          p.pause();
          span.heal = () => {
            p.resume();
            return Promise.resolve();
          };
        }
        this.#event(span, 'start', a.kind === 'kill' ? 'SIGKILL' : 'SIGSTOP');
      } else {
        const links = linksBetween(this.#links, a.between);
        const lf = linkFault(a);
        for (const l of links) l.proxy.apply(id, lf, { share: a.share });
        span.heal = () => {
          for (const l of links) l.proxy.clear(id);
          return Promise.resolve();
        };
        this.#event(
          span,
          'start',
          `${links.length} links: ${links.map((l) => `${l.from}→${l.to}`).join(' ')}`,
        );
        // A reset without a duration is a one-off: connections are cut, new ones are accepted.
        if (a.kind === 'reset' && fault.forMs === null) {
          void span.heal();
          span.heal = null;
          span.endMs = span.startMs;
        }
      }
    } catch (e) {
      this.#event(span, 'error', e instanceof Error ? e.message : String(e));
      this.#metrics.errors.inc({ kind: a.kind });
      return id;
    }
    this.#spans.push(span);
    this.#metrics.faults.inc({ kind: a.kind });
    if (span.heal !== null) this.#metrics.active.inc({ kind: a.kind });
    if (fault.forMs !== null && span.heal !== null) {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        this.#track(this.heal(id));
      }, fault.forMs);
      this.#timers.add(t);
    }
    return id;
  }

  /** Heals fault `id` now (restores links, restarts or resumes the process). */
  async heal(id: string): Promise<void> {
    const span = this.#spans.find((s) => s.id === id && s.heal !== null);
    if (span?.heal == null) return;
    const heal = span.heal;
    span.heal = null;
    this.#metrics.active.dec({ kind: span.fault.action.kind });
    try {
      await heal();
      span.endMs = this.elapsedMs();
      this.#metrics.heals.inc({ kind: span.fault.action.kind });
      this.#event(span, 'heal', span.fault.action.kind === 'kill' ? 'restarted' : '');
    } catch (e) {
      span.endMs = this.elapsedMs();
      this.#metrics.errors.inc({ kind: span.fault.action.kind });
      this.#event(span, 'error', `heal failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Faults in effect now. */
  active(): { id: string; label: string; sinceMs: number }[] {
    return this.#spans
      .filter((s) => s.heal !== null)
      .map((s) => ({ id: s.id, label: s.fault.label, sinceMs: s.startMs }));
  }

  events(): readonly ChaosEvent[] {
    return this.#events;
  }

  /** Every fault with its start and heal, for the verdict. */
  spans(): FaultSpan[] {
    return this.#spans.map((s) => ({ id: s.id, label: s.fault.label, startMs: s.startMs, endMs: s.endMs }));
  }

  /** Waits for injected actions to finish (a restart in progress). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /**
   * Ends the timeline: cancels what is scheduled and resumes paused processes (so they can be
   * stopped). Faults without an end stay as they are: a shard killed for good is not restarted
   * and its span keeps no heal time.
   */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const s of [...this.#spans])
      if (s.heal !== null && s.fault.action.kind === 'pause') await this.heal(s.id);
    this.#stopped = true;
    await this.settled();
  }

  #track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined).finally(() => this.#pending.delete(q));
    this.#pending.add(q);
  }

  #process(name: string): ChaosProcess {
    const p = this.#processes.get(name);
    if (p === undefined)
      throw new Error(`no process ${name} in this stack (${[...this.#processes.keys()].join(', ')})`);
    return p;
  }

  #event(span: Active, action: ChaosEvent['action'], detail: string): void {
    const e: ChaosEvent = { atMs: this.elapsedMs(), fault: span.id, action, label: span.fault.label, detail };
    this.#events.push(e);
    const head = action === 'start' ? '⚡' : action === 'heal' ? '✓ heal' : '✗';
    this.#log(
      `chaos ${(e.atMs / 1000).toFixed(1).padStart(6)}s ${span.id} ${head} ${e.label}${detail === '' ? '' : ` (${detail})`}`,
    );
  }
}
