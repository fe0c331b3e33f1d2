import { describe, expect, it } from 'vitest';
import { ActorSystem, createManualClock, createPromMeter, createRng } from '../../../actors/runtime/index.js';
import type { ActorHandle } from '../../../actors/runtime/index.js';
import { createServiceMetrics } from '../../../services/metrics/index.js';
import type { Rollout, RolloutMessage } from '../../../services/rollouts/index.js';
import {
  deploymentDefinition,
  RolloutWatchers,
  type DeploymentMessage,
  type DeploymentState,
} from '../../../services/shard/deployment-actor.js';
import { config, deviceId, report, rolloutWith, send } from '../rollouts/harness.js';

const PAUSE_MS = 60_000;
const RETRY_MS = 1_000;

/**
 * A deployment actor whose journal is the test: `commitTick` records the tick, and the test
 * decides whether it is applied (told back as `deployment.committed`) or lost.
 */
function setup(home: { value: boolean }) {
  const clock = createManualClock(1_700_000_000_000);
  const system = new ActorSystem({ clock, rng: createRng('deployment-actor') });
  const ticks: number[] = [];
  // Wave 1 is one device; wave 2 everyone, opened PAUSE_MS after wave 1 succeeded.
  let r: Rollout = rolloutWith(
    3,
    config({ waves: [{ count: 1 }, { share: 1 }], pauseBetweenWavesMs: PAUSE_MS }),
  );
  r = send(r, { type: 'rollout.start' }, clock.now()).rollout;
  r = report(r, deviceId(0), 'succeeded', 'r-0', clock.now()).rollout;
  expect(r.state).toBe('waiting');
  const ref: ActorHandle<DeploymentState, DeploymentMessage> = system.spawn<
    DeploymentState,
    DeploymentMessage
  >(
    deploymentDefinition(r, {
      clock,
      metrics: createServiceMetrics(createPromMeter()),
      watchers: new RolloutWatchers(),
      isHome: () => home.value,
      commitTick: (nowMs) => ticks.push(nowMs),
      tickRetryMs: RETRY_MS,
    }),
  );
  const apply = (msg: RolloutMessage, atMs: number): Promise<unknown> =>
    new Promise((reply) => ref.tell({ type: 'deployment.committed', msg, atMs, local: true, reply }));
  return { clock, system, ref, ticks, waitUntil: r.waitUntilMs ?? 0, apply };
}

describe('deployment actor', () => {
  it('deployment actor - a lost tick is sent again until one is applied and the next wave opens', async () => {
    const home = { value: true };
    const { clock, system, ref, ticks, waitUntil, apply } = setup(home);
    await system.whenIdle();
    clock.advanceTo(waitUntil);
    await system.whenIdle();
    expect(ticks).toEqual([waitUntil]);
    // The journal lost it: nothing changed, and the actor checks again after the retry delay.
    expect(ref.state().rollout.state).toBe('waiting');
    clock.advance(RETRY_MS);
    await system.whenIdle();
    expect(ticks).toEqual([waitUntil, waitUntil + RETRY_MS]);
    await apply({ type: 'rollout.tick', nowMs: ticks[1] ?? 0 }, ticks[1] ?? 0);
    expect(ref.state().rollout.state).toBe('running');
    expect(ref.state().rollout.currentWave).toBe(2);
    // The wait is over: no tick is journaled again, and no timer is left behind.
    clock.advance(10 * RETRY_MS);
    await system.whenIdle();
    expect(ticks).toHaveLength(2);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('deployment actor - a shard that becomes home after the wait ended ticks without being told', async () => {
    const home = { value: false };
    const { clock, system, ticks, waitUntil } = setup(home);
    clock.advanceTo(waitUntil + 5 * RETRY_MS);
    await system.whenIdle();
    // Not home: replicas never journal ticks.
    expect(ticks).toEqual([]);
    // Home moves here while no `deployment.home` reaches this replica (it was spawned after it).
    home.value = true;
    clock.advance(RETRY_MS);
    await system.whenIdle();
    expect(ticks).toHaveLength(1);
  });
});
