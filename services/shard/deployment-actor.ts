import type { ActorContext, ActorDefinition, TimerId } from '../../actors/runtime/index.js';
import { ROLLOUT_STATES, rolloutGauges, transition } from '../rollouts/index.js';
import type { Rollout, RolloutError, RolloutMessage } from '../rollouts/index.js';
import type { ServiceMetrics } from '../metrics/index.js';
import type { Clock } from '../../actors/runtime/index.js';

/**
 * Messages a deployment actor handles. The rollout changes only by `deployment.committed`: a
 * rollout message read back from the journal, applied at the time it was stored with, so every
 * shard (each runs a replica of every deployment) folds the same messages into the same state.
 */
export type DeploymentMessage =
  | {
      readonly type: 'deployment.committed';
      readonly msg: RolloutMessage;
      readonly atMs: number;
      /** Whether this shard wrote the message (it counts installs and answers the writer). */
      readonly local: boolean;
      /** `error`: the engine refused the message (state unchanged). */
      readonly reply: (error: RolloutError | null) => void;
    }
  | { readonly type: 'deployment.read'; readonly reply: (r: Rollout) => void }
  /** Hands a watcher already added to the deployment's {@link RolloutWatchers} the current state. */
  | { readonly type: 'deployment.watch'; readonly listener: RolloutListener }
  /** The wait between waves may have ended: the deployment's home shard journals a tick. */
  | { readonly type: 'deployment.tick' }
  /** This shard became (or stopped being) the deployment's home: it exports the gauges or drops them. */
  | { readonly type: 'deployment.home' };

/** Receives a deployment's rollout state; must not throw and should be cheap (it runs in the actor's turn). */
export type RolloutListener = (rollout: Rollout) => void;

/**
 * The watchers (WatchRollout streams) of one deployment. The shard holds it next to the actor's
 * ref so that adding and removing a watcher are synchronous and never depend on the mailbox
 * having room (a full mailbox must not leak a watcher); the actor only reads it. `onSize` sees
 * the count after every change (the shard exports it as a gauge).
 */
export class RolloutWatchers {
  readonly #listeners = new Set<RolloutListener>();
  readonly #onSize: (n: number) => void;

  constructor(onSize: (n: number) => void = () => undefined) {
    this.#onSize = onSize;
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** Adds `listener`; the returned function removes it (idempotent). */
  add(listener: RolloutListener): () => void {
    this.#listeners.add(listener);
    this.#onSize(this.#listeners.size);
    return () => {
      if (this.#listeners.delete(listener)) this.#onSize(this.#listeners.size);
    };
  }

  /** Calls every watcher; one that throws is logged and cannot break the others or the actor. */
  notify(rollout: Rollout): void {
    for (const listener of [...this.#listeners]) this.notifyOne(listener, rollout);
  }

  /** Calls `listener` if it is still watching (it may have left while a message waited). */
  notifyOne(listener: RolloutListener, rollout: Rollout): void {
    if (!this.#listeners.has(listener)) return;
    try {
      listener(rollout);
    } catch (e) {
      console.error(`deployment ${rollout.deploymentId}: a watcher failed:`, e);
    }
  }
}

export interface DeploymentState {
  readonly rollout: Rollout;
}

/**
 * One deployment (rollout) of an image to a device group: applies the rollout engine's
 * transitions to committed messages one at a time. On its home shard (the owner of the
 * deployment's home partition) it also keeps the `sphere_rollout_*` gauges current, counts wave
 * transitions, and journals a tick when the wait between waves ends; elsewhere it is a replica
 * that update checks read.
 */
export function deploymentDefinition(
  initial: Rollout,
  deps: {
    readonly clock: Clock;
    readonly metrics: ServiceMetrics;
    readonly watchers: RolloutWatchers;
    /** Whether this shard is the deployment's home now. */
    readonly isHome: () => boolean;
    /** Journals a tick (the journal applies it back through `deployment.committed`). */
    readonly commitTick: (nowMs: number) => void;
    /**
     * Simulated ms after which a tick that is due is checked again. A journaled tick can be lost
     * (the journal times out, or home moves while it is in flight); the rollout waits until the
     * wait between waves is over in its state, not until one tick was sent.
     */
    readonly tickRetryMs: number;
  },
): ActorDefinition<DeploymentState, DeploymentMessage> {
  const { clock, metrics, watchers } = deps;
  const deployment = initial.deploymentId;

  // Gauges are a projection over every device (O(devices)); recomputing them per report made a
  // large rollout quadratic. They are refreshed once per event-loop turn from the latest state, and
  // watchers are told in the same place, so a burst of reports costs them one view, not one each.
  // `latest` is always the actor's current state, so whatever order snapshots (`deployment.watch`)
  // and these notifications arrive in, a watcher never sees a state older than one it has seen
  // (unless a supervisor restart really did reset the state).
  let latest: Rollout = initial;
  /** The pending tick timer, one at a time while the rollout waits between waves. */
  let tickTimer: TimerId | null = null;
  function armTick(ctx: ActorContext<DeploymentMessage>, rollout: Rollout, delayMs: number): void {
    if (tickTimer !== null) ctx.cancel(tickTimer);
    tickTimer =
      rollout.waitUntilMs === null ? null : ctx.schedule(Math.max(0, delayMs), { type: 'deployment.tick' });
  }
  let publishQueued = false;
  /** Series this shard exports, so that it can drop them when it stops being home. */
  const exported = new Set<string>();
  let exporting = false;
  function publishSoon(r: Rollout): void {
    latest = r;
    if (publishQueued) return;
    publishQueued = true;
    setImmediate(() => {
      publishQueued = false;
      publish(latest);
      watchers.notify(latest);
    });
  }

  function publish(r: Rollout): void {
    if (!deps.isHome()) {
      // Dropped once, when this shard stops being home (replicas publish nothing).
      if (!exporting) return;
      exporting = false;
      for (const key of exported) {
        const [wave = '', state = ''] = key.split('/');
        metrics.rolloutDevices.remove({ deployment, wave, state });
      }
      exported.clear();
      for (const state of ROLLOUT_STATES) metrics.rolloutState.remove({ deployment, state });
      metrics.rolloutCurrentWave.remove({ deployment });
      return;
    }
    exporting = true;
    const g = rolloutGauges(r);
    for (const d of g.devices) {
      exported.add(`${d.wave}/${d.state}`);
      metrics.rolloutDevices.set({ deployment, wave: String(d.wave), state: d.state }, d.count);
    }
    for (const state of ROLLOUT_STATES)
      metrics.rolloutState.set({ deployment, state }, state === g.state ? 1 : 0);
    metrics.rolloutCurrentWave.set({ deployment }, g.currentWave);
  }

  return {
    name: `deployment:${deployment}`,
    init: (ctx) => {
      // After a supervisor restart too: the state is the last one applied (and journaled), so a
      // crash of the actor loses nothing. Timers of an earlier incarnation never fire.
      publish(latest);
      watchers.notify(latest);
      tickTimer = null;
      armTick(ctx, latest, (latest.waitUntilMs ?? 0) - clock.now());
      return { rollout: latest };
    },
    receive(state, msg, ctx) {
      switch (msg.type) {
        case 'deployment.read':
          msg.reply(state.rollout);
          return state;
        case 'deployment.watch':
          watchers.notifyOne(msg.listener, state.rollout);
          return state;
        case 'deployment.home':
          publish(state.rollout);
          armTick(ctx, state.rollout, 0);
          return state;
        case 'deployment.tick': {
          tickTimer = null;
          const { waitUntilMs } = state.rollout;
          if (waitUntilMs === null) return state;
          const now = clock.now();
          if (now < waitUntilMs) {
            armTick(ctx, state.rollout, waitUntilMs - now);
            return state;
          }
          // Journaled only when it changes something (the same check runs again when it is applied).
          // Checked again until the applied tick ends the wait, on whichever shard is home by then.
          if (deps.isHome()) {
            const stepped = transition(state.rollout, { type: 'rollout.tick', nowMs: now }, { nowMs: now });
            if (stepped.ok && stepped.value[1].some((e) => e.kind === 'persist')) deps.commitTick(now);
          }
          armTick(ctx, state.rollout, deps.tickRetryMs);
          return state;
        }
        case 'deployment.committed': {
          const m = msg.msg;
          const before = state.rollout;
          const stepped = transition(before, m, { nowMs: msg.atMs });
          if (!stepped.ok) {
            msg.reply(stepped.error);
            return state;
          }
          const [rollout, effects] = stepped.value;
          const home = deps.isHome();
          for (const e of effects) {
            switch (e.kind) {
              case 'wave-opened':
                if (home)
                  metrics.rolloutWaveTransitions.inc({ deployment, wave: String(e.wave), reason: e.reason });
                break;
              case 'offer-update':
              case 'order-rollback':
              // Offers and rollback orders are part of the state; update checks read them there.
              case 'halted':
              case 'completed':
              case 'ignored':
              case 'persist':
                break;
              default:
                e satisfies never;
            }
          }
          if (
            msg.local &&
            m.type === 'rollout.device-report' &&
            (m.outcome === 'succeeded' || m.outcome === 'failed' || m.outcome === 'rolled-back')
          ) {
            const accepted = !effects.some((e) => e.kind === 'ignored' && e.deviceId === m.deviceId);
            if (accepted)
              metrics.updateInstalls.inc({ result: m.outcome.replace('-', '_'), kind: rollout.image.kind });
          }
          // Ticks when the wait between waves ends (the home shard journals the tick).
          if (rollout.waitUntilMs !== before.waitUntilMs)
            armTick(ctx, rollout, (rollout.waitUntilMs ?? 0) - clock.now());
          latest = rollout;
          publishSoon(rollout);
          msg.reply(null);
          return { rollout };
        }
        default:
          return msg satisfies never;
      }
    },
  };
}
