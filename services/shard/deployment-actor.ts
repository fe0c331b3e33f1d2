import type { ActorDefinition } from '../../actors/runtime/index.js';
import { ROLLOUT_STATES, rolloutGauges, transition } from '../rollouts/index.js';
import type { Rollout, RolloutError, RolloutMessage } from '../rollouts/index.js';
import type { ServiceMetrics } from '../metrics/index.js';
import type { Clock } from '../../actors/runtime/index.js';

/** Messages a deployment actor handles: the engine's, plus reads and commands with replies. */
export type DeploymentMessage =
  | {
      readonly type: 'deployment.apply';
      readonly msg: RolloutMessage;
      readonly reply?: (r: RolloutError | null) => void;
    }
  | { readonly type: 'deployment.read'; readonly reply: (r: Rollout) => void }
  /** Hands a watcher already added to the deployment's {@link RolloutWatchers} the current state. */
  | { readonly type: 'deployment.watch'; readonly listener: RolloutListener }
  | { readonly type: 'deployment.tick' };

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
  /** Devices offered the update and not yet told to roll back (what update checks will answer). */
  readonly offered: ReadonlySet<string>;
  readonly rollbacks: ReadonlySet<string>;
}

/**
 * One deployment (rollout) of an image to a device group: applies the rollout engine's
 * transitions one message at a time, keeps `sphere_rollout_*` gauges current, counts wave
 * transitions and installs, and ticks itself while waiting between waves. State is in memory
 * (JetStream persistence comes next: the engine's state is already plain JSON).
 */
export function deploymentDefinition(
  initial: Rollout,
  deps: { readonly clock: Clock; readonly metrics: ServiceMetrics; readonly watchers: RolloutWatchers },
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
  let publishQueued = false;
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
    const g = rolloutGauges(r);
    for (const d of g.devices) {
      metrics.rolloutDevices.set({ deployment, wave: String(d.wave), state: d.state }, d.count);
    }
    for (const state of ROLLOUT_STATES)
      metrics.rolloutState.set({ deployment, state }, state === g.state ? 1 : 0);
    metrics.rolloutCurrentWave.set({ deployment }, g.currentWave);
  }

  return {
    name: `deployment:${deployment}`,
    init: () => {
      // Also after a supervisor restart, which resets the state: watchers learn of the reset.
      latest = initial;
      publish(initial);
      watchers.notify(initial);
      return { rollout: initial, offered: new Set(), rollbacks: new Set() };
    },
    receive(state, msg, ctx) {
      switch (msg.type) {
        case 'deployment.read':
          msg.reply(state.rollout);
          return state;
        case 'deployment.watch':
          watchers.notifyOne(msg.listener, state.rollout);
          return state;
        case 'deployment.tick':
        case 'deployment.apply': {
          const m: RolloutMessage =
            msg.type === 'deployment.tick' ? { type: 'rollout.tick', nowMs: clock.now() } : msg.msg;
          const before = state.rollout;
          const stepped = transition(before, m, { nowMs: clock.now() });
          if (!stepped.ok) {
            if (msg.type === 'deployment.apply') msg.reply?.(stepped.error);
            return state;
          }
          const [rollout, effects] = stepped.value;
          const offered = new Set(state.offered);
          const rollbacks = new Set(state.rollbacks);
          for (const e of effects) {
            switch (e.kind) {
              case 'offer-update':
                for (const id of e.deviceIds) offered.add(id);
                break;
              case 'order-rollback':
                for (const id of e.deviceIds) rollbacks.add(id);
                break;
              case 'wave-opened':
                metrics.rolloutWaveTransitions.inc({ deployment, wave: String(e.wave), reason: e.reason });
                break;
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
            m.type === 'rollout.device-report' &&
            (m.outcome === 'succeeded' || m.outcome === 'failed' || m.outcome === 'rolled-back')
          ) {
            const accepted = !effects.some((e) => e.kind === 'ignored' && e.deviceId === m.deviceId);
            if (accepted)
              metrics.updateInstalls.inc({ result: m.outcome.replace('-', '_'), kind: rollout.image.kind });
          }
          if (rollout.waitUntilMs !== null && rollout.waitUntilMs !== before.waitUntilMs) {
            ctx.schedule(Math.max(0, rollout.waitUntilMs - clock.now()), { type: 'deployment.tick' });
          }
          publishSoon(rollout);
          if (msg.type === 'deployment.apply') msg.reply?.(null);
          return { rollout, offered, rollbacks };
        }
        default:
          return msg satisfies never;
      }
    },
  };
}
