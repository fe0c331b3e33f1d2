import { describe, expect, it } from 'vitest';
import {
  compileRolloutConfig,
  deserializeRollout,
  rolloutGauges,
  serializeRollout,
  transition,
} from '../../../services/rollouts/index.js';
import type { RolloutEffect, RolloutMessage } from '../../../services/rollouts/index.js';
import {
  config,
  deviceId,
  deviceState,
  kinds,
  offered,
  refused,
  report,
  reportAll,
  rolledBack,
  rolloutWith,
  send,
} from './harness.js';

const base = {
  waves: [{ share: 1 }],
  successThreshold: 1,
  errorThreshold: { count: 5 },
  autoRollback: false,
};

describe('rollouts - config', () => {
  it('compiles a valid config and fills defaults', () => {
    const r = compileRolloutConfig({ ...base, waves: [{ count: 5 }, { share: 0.5 }, { share: 1 }] });
    expect(r.ok && r.value).toEqual({
      waves: [{ count: 5 }, { share: 0.5 }, { share: 1 }],
      successThreshold: 1,
      errorThreshold: { count: 5, share: null },
      autoRollback: false,
      pauseBetweenWavesMs: 0,
    });
  });

  it.each([
    [{ ...base, waves: [] }, 'waves'],
    [{ ...base, waves: [{ share: 1.5 }] }, 'waves[0].share'],
    [{ ...base, waves: [{ share: 0.5 }] }, 'waves[0]'],
    [{ ...base, waves: [{ share: 0.5 }, { share: 0.4 }, { share: 1 }] }, 'waves[1].share'],
    [{ ...base, waves: [{ count: 0 }, { share: 1 }] }, 'waves[0].count'],
    [{ ...base, waves: [{ share: 0.5, count: 3 }, { share: 1 }] }, 'waves[0]'],
    [{ ...base, successThreshold: 2 }, 'successThreshold'],
    [{ ...base, errorThreshold: {} }, 'errorThreshold'],
    [{ ...base, errorThreshold: { count: 1.5 } }, 'errorThreshold.count'],
    [{ ...base, errorThreshold: { share: 0 } }, 'errorThreshold.share'],
    [{ ...base, autoRollback: 'yes' }, 'autoRollback'],
    [{ ...base, pauseBetweenWavesMs: -1 }, 'pauseBetweenWavesMs'],
    [null, 'config'],
  ])('refuses %j naming %s', (input, field) => {
    const r = compileRolloutConfig(input);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('ROLLOUT_INVALID_CONFIG');
      expect(r.error.field).toBe(field);
      expect(r.error.message).toContain(field);
    }
  });
});

describe('rollouts - behaviour', () => {
  it('rolls 3 waves out to 100% of the group and completes', () => {
    let r = rolloutWith(20, config({ waves: [{ share: 0.1 }, { share: 0.5 }, { share: 1 }] }));
    let s = send(r, { type: 'rollout.start' });
    expect(s.effects).toContainEqual({ kind: 'wave-opened', wave: 1, reason: 'rollout-started' });
    const wave1 = offered(s.effects);
    expect(wave1).toEqual([deviceId(0), deviceId(1)]);
    s = reportAll(s.rollout, wave1, 'succeeded');
    expect(s.effects).toContainEqual({ kind: 'wave-opened', wave: 2, reason: 'previous-wave-succeeded' });
    const wave2 = offered(s.effects);
    expect(wave2).toHaveLength(8);
    s = reportAll(s.rollout, wave2, 'succeeded');
    const wave3 = offered(s.effects);
    expect(wave3).toHaveLength(10);
    s = reportAll(s.rollout, wave3, 'succeeded');
    r = s.rollout;
    expect(kinds(s.effects)).toContain('completed');
    expect(r.state).toBe('completed');
    expect(new Set([...wave1, ...wave2, ...wave3]).size).toBe(20);
    const g = rolloutGauges(r);
    expect(g.currentWave).toBe(3);
    expect(g.devices.filter((d) => d.state === 'succeeded').map((d) => d.count)).toEqual([0, 2, 8, 10]);
    expect(g.devices.reduce((n, d) => n + d.count, 0)).toBe(20);
  });

  it('opens the next wave only once the success threshold of the current wave is met', () => {
    const s0 = send(rolloutWith(8, config({ waves: [{ count: 4 }, { share: 1 }], successThreshold: 0.75 })), {
      type: 'rollout.start',
    });
    const wave1 = offered(s0.effects);
    let s = reportAll(s0.rollout, wave1.slice(0, 2), 'succeeded');
    expect(offered(s.effects)).toEqual([]);
    s = report(s.rollout, wave1[2] ?? '', 'installing');
    expect(offered(s.effects)).toEqual([]);
    s = report(s.rollout, wave1[2] ?? '', 'succeeded');
    expect(offered(s.effects)).toEqual([4, 5, 6, 7].map(deviceId));
    expect(s.rollout.currentWave).toBe(2);
  });

  it('waits pauseBetweenWavesMs of simulated time before opening the next wave', () => {
    const cfg = config({ waves: [{ count: 1 }, { share: 1 }], pauseBetweenWavesMs: 1000 });
    let s = send(rolloutWith(3, cfg), { type: 'rollout.start' }, 0);
    s = send(
      s.rollout,
      { type: 'rollout.device-report', deviceId: deviceId(0), reportId: 'a', outcome: 'succeeded', atMs: 1 },
      500,
    );
    expect(s.rollout.state).toBe('waiting');
    expect(s.rollout.waitUntilMs).toBe(1500);
    const early = send(s.rollout, { type: 'rollout.tick', nowMs: 1499 }, 1499);
    expect(early.effects).toEqual([]);
    expect(early.rollout).toBe(s.rollout);
    s = send(s.rollout, { type: 'rollout.tick', nowMs: 1500 }, 1500);
    expect(s.effects).toContainEqual({ kind: 'wave-opened', wave: 2, reason: 'pause-elapsed' });
    expect(offered(s.effects)).toEqual([deviceId(1), deviceId(2)]);
  });

  it('halts when failures reach the count, offering nothing more', () => {
    const cfg = config({
      waves: [{ count: 5 }, { share: 1 }],
      successThreshold: 0.2,
      errorThreshold: { count: 2 },
    });
    let s = send(rolloutWith(10, cfg), { type: 'rollout.start' });
    s = report(s.rollout, deviceId(0), 'failed');
    expect(s.rollout.state).toBe('running');
    s = report(s.rollout, deviceId(1), 'failed');
    expect(s.rollout.state).toBe('halted');
    expect(s.effects).toContainEqual({ kind: 'halted', reason: 'error-count', failures: 2, attempted: 5 });
    expect(s.rollout.halt).toMatchObject({ reason: 'error-count', failures: 2, attempted: 5, inFlight: 3 });
    s = reportAll(s.rollout, [2, 3, 4].map(deviceId), 'succeeded');
    expect(offered(s.effects)).toEqual([]);
    s = send(s.rollout, { type: 'rollout.device-joined', deviceId: 'late' });
    expect(offered(s.effects)).toEqual([]);
    expect(s.rollout.attempted).toBe(5);
  });

  it('halts when the failure share of attempted devices reaches the threshold', () => {
    const cfg = config({ waves: [{ count: 4 }, { share: 1 }], errorThreshold: { share: 0.5 } });
    let s = send(rolloutWith(10, cfg), { type: 'rollout.start' });
    s = report(s.rollout, deviceId(0), 'succeeded');
    s = report(s.rollout, deviceId(1), 'failed');
    expect(s.rollout.state).toBe('running'); // 1/4
    s = report(s.rollout, deviceId(2), 'failed'); // 2/4
    expect(s.effects).toContainEqual({ kind: 'halted', reason: 'error-share', failures: 2, attempted: 4 });
  });

  it('auto-rollback orders exactly the devices that succeeded, and late successes individually', () => {
    const cfg = config({
      waves: [{ share: 1 }],
      successThreshold: 1,
      errorThreshold: { count: 1 },
      autoRollback: true,
    });
    let s = send(rolloutWith(6, cfg), { type: 'rollout.start' });
    s = reportAll(s.rollout, [0, 1, 2].map(deviceId), 'succeeded');
    s = report(s.rollout, deviceId(3), 'installing');
    s = report(s.rollout, deviceId(4), 'failed');
    expect(s.rollout.state).toBe('halted');
    expect(rolledBack(s.effects)).toEqual([0, 1, 2].map(deviceId));
    s = report(s.rollout, deviceId(3), 'succeeded');
    expect(s.effects).toContainEqual({ kind: 'order-rollback', deviceIds: [deviceId(3)] });
    s = report(s.rollout, deviceId(0), 'rolled-back');
    expect(deviceState(s.rollout, deviceId(0))).toBe('rolled_back');
    s = report(s.rollout, deviceId(0), 'succeeded');
    expect(s.effects).toEqual([{ kind: 'ignored', deviceId: deviceId(0), reason: 'already-final' }]);
    // Device 5 never reported; it was offered, so its late success is applied and rolled back too.
    s = report(s.rollout, deviceId(5), 'succeeded');
    expect(rolledBack(s.effects)).toEqual([deviceId(5)]);
  });

  it('without auto-rollback a halt orders nothing; an unordered rolled-back report is ignored', () => {
    let s = send(rolloutWith(3, config({ errorThreshold: { count: 1 } })), { type: 'rollout.start' });
    s = report(s.rollout, deviceId(0), 'succeeded');
    s = report(s.rollout, deviceId(1), 'failed');
    expect(rolledBack(s.effects)).toEqual([]);
    s = report(s.rollout, deviceId(0), 'rolled-back');
    expect(s.effects).toEqual([{ kind: 'ignored', deviceId: deviceId(0), reason: 'rollback-not-ordered' }]);
  });

  it('counts a device-side (A/B) rollback during install as a failure', () => {
    let s = send(rolloutWith(4, config({ errorThreshold: { count: 1 } })), { type: 'rollout.start' });
    s = report(s.rollout, deviceId(0), 'installing');
    s = report(s.rollout, deviceId(0), 'rolled-back');
    expect(deviceState(s.rollout, deviceId(0))).toBe('failed');
    expect(s.rollout.state).toBe('halted');
  });

  it('halts when a wave settles below the success threshold', () => {
    const cfg = config({
      waves: [{ count: 2 }, { share: 1 }],
      successThreshold: 1,
      errorThreshold: { count: 10 },
    });
    let s = send(rolloutWith(6, cfg), { type: 'rollout.start' });
    s = report(s.rollout, deviceId(0), 'failed');
    expect(s.rollout.state).toBe('running');
    s = report(s.rollout, deviceId(1), 'succeeded');
    expect(s.effects).toContainEqual({
      kind: 'halted',
      reason: 'success-threshold-unmet',
      failures: 1,
      attempted: 2,
    });
  });

  it('pause holds the next wave, resume opens it, cancel is final; wrong commands are refused', () => {
    const cfg = config({ waves: [{ count: 1 }, { share: 1 }] });
    let r = rolloutWith(3, cfg);
    expect(refused(r, { type: 'rollout.pause' }).code).toBe('ROLLOUT_NOT_STARTED');
    expect(refused(r, { type: 'rollout.resume' }).code).toBe('ROLLOUT_NOT_PAUSED');
    expect(refused(r, { type: 'rollout.retry-failed' }).code).toBe('ROLLOUT_NOT_STARTED');
    r = send(r, { type: 'rollout.start' }).rollout;
    expect(refused(r, { type: 'rollout.start' }).code).toBe('ROLLOUT_NOT_SCHEDULED');
    expect(refused(r, { type: 'rollout.resume' }).code).toBe('ROLLOUT_NOT_PAUSED');
    let s = send(r, { type: 'rollout.pause' });
    expect(s.rollout.state).toBe('paused');
    expect(kinds(s.effects)).toEqual(['persist']);
    expect(refused(s.rollout, { type: 'rollout.pause' }).code).toBe('ROLLOUT_NOT_RUNNING');
    s = report(s.rollout, deviceId(0), 'succeeded'); // reports still count while paused
    expect(deviceState(s.rollout, deviceId(0))).toBe('succeeded');
    expect(offered(s.effects)).toEqual([]);
    s = send(s.rollout, { type: 'rollout.resume' });
    expect(s.rollout.state).toBe('running');
    expect(offered(s.effects)).toEqual([deviceId(1), deviceId(2)]);
    s = send(s.rollout, { type: 'rollout.cancel' });
    expect(s.rollout.state).toBe('cancelled');
    for (const type of ['rollout.pause', 'rollout.resume', 'rollout.cancel', 'rollout.retry-failed'] as const)
      expect(refused(s.rollout, { type }).code).toBe('ROLLOUT_FINISHED');
    // Reports after cancel are still facts about the devices.
    s = report(s.rollout, deviceId(1), 'succeeded');
    expect(deviceState(s.rollout, deviceId(1))).toBe('succeeded');
    expect(offered(s.effects)).toEqual([]);
  });

  it('a failure while paused still halts the rollout', () => {
    let s = send(rolloutWith(3, config({ errorThreshold: { count: 1 } })), { type: 'rollout.start' });
    s = send(s.rollout, { type: 'rollout.pause' });
    s = report(s.rollout, deviceId(0), 'failed');
    expect(s.rollout.state).toBe('halted');
  });

  it('retry-failed re-offers failed devices in the current wave without resetting the error budget', () => {
    const cfg = config({ waves: [{ count: 2 }, { share: 1 }], errorThreshold: { count: 3 } });
    let s = send(rolloutWith(5, cfg), { type: 'rollout.start' });
    expect(refused(s.rollout, { type: 'rollout.retry-failed' }).code).toBe('ROLLOUT_NO_FAILED_DEVICES');
    s = report(s.rollout, deviceId(0), 'failed');
    s = report(s.rollout, deviceId(1), 'installing');
    s = send(s.rollout, { type: 'rollout.retry-failed' });
    expect(offered(s.effects)).toEqual([deviceId(0)]);
    expect(s.rollout.failures).toBe(1);
    expect(s.rollout.attempted).toBe(3);
    expect(s.rollout.devices[0]).toMatchObject({ state: 'pending', offered: true, attempts: 2, wave: 1 });
    s = report(s.rollout, deviceId(0), 'failed');
    expect(s.rollout.failures).toBe(2);
    s = send(s.rollout, { type: 'rollout.pause' });
    s = send(s.rollout, { type: 'rollout.retry-failed' });
    expect(offered(s.effects)).toEqual([]); // paused: offered on resume
    s = report(s.rollout, deviceId(0), 'succeeded', 'stale');
    expect(s.effects).toEqual([{ kind: 'ignored', deviceId: deviceId(0), reason: 'not-offered' }]);
    s = send(s.rollout, { type: 'rollout.resume' });
    expect(offered(s.effects)).toEqual([deviceId(0)]);
    s = report(s.rollout, deviceId(0), 'failed');
    expect(s.rollout.state).toBe('halted'); // 3 failures over the rollout, though each attempt failed once
  });

  it('joiners: population before start, current wave while running, offered at once after completion', () => {
    const cfg = config({ waves: [{ count: 1 }, { share: 1 }] });
    let r = rolloutWith(2, cfg);
    let s = send(r, { type: 'rollout.device-joined', deviceId: 'early' });
    expect(offered(s.effects)).toEqual([]);
    expect(s.rollout.devices.at(-1)?.wave).toBe(0);
    s = send(s.rollout, { type: 'rollout.start' });
    s = send(s.rollout, { type: 'rollout.device-joined', deviceId: 'mid' });
    expect(offered(s.effects)).toEqual(['mid']);
    expect(s.rollout.devices.at(-1)?.wave).toBe(1);
    s = reportAll(s.rollout, [deviceId(0), 'mid'], 'succeeded');
    expect(s.rollout.currentWave).toBe(2);
    s = send(s.rollout, { type: 'rollout.pause' });
    s = send(s.rollout, { type: 'rollout.device-joined', deviceId: 'paused' });
    expect(offered(s.effects)).toEqual([]);
    s = send(s.rollout, { type: 'rollout.resume' });
    expect(offered(s.effects)).toEqual(['paused']);
    s = reportAll(s.rollout, [deviceId(1), 'early', 'paused'], 'succeeded');
    r = s.rollout;
    expect(r.state).toBe('completed');
    s = send(r, { type: 'rollout.device-joined', deviceId: 'after' });
    expect(offered(s.effects)).toEqual(['after']);
    expect(s.rollout.devices.at(-1)?.wave).toBe(2);
    s = send(s.rollout, { type: 'rollout.device-joined', deviceId: 'after' });
    expect(s.effects).toEqual([{ kind: 'ignored', deviceId: 'after', reason: 'already-member' }]);
  });

  it('a completed rollout still halts when joiners exhaust the error budget', () => {
    let s = send(rolloutWith(1, config({ errorThreshold: { count: 1 } })), { type: 'rollout.start' });
    s = report(s.rollout, deviceId(0), 'succeeded');
    expect(s.rollout.state).toBe('completed');
    s = send(s.rollout, { type: 'rollout.device-joined', deviceId: 'late' });
    s = report(s.rollout, 'late', 'failed');
    expect(s.rollout.state).toBe('halted');
    s = send(s.rollout, { type: 'rollout.device-joined', deviceId: 'later' });
    expect(offered(s.effects)).toEqual([]);
  });

  it('ignores duplicate, stale, late and unknown reports with a reason and without persisting', () => {
    let s = send(rolloutWith(3, config({ waves: [{ count: 1 }, { share: 1 }] })), { type: 'rollout.start' });
    const ignoredOnly = (effects: readonly RolloutEffect[], reason: string): void => {
      expect(effects).toEqual([{ kind: 'ignored', deviceId: expect.any(String) as string, reason }]);
    };
    s = report(s.rollout, deviceId(0), 'installing', 'x1');
    const before = s.rollout;
    s = report(before, deviceId(0), 'installing', 'x1');
    ignoredOnly(s.effects, 'duplicate-report');
    expect(s.rollout).toBe(before);
    s = report(s.rollout, deviceId(0), 'downloading', 'x0');
    ignoredOnly(s.effects, 'stale-report');
    s = report(s.rollout, 'ghost', 'succeeded');
    ignoredOnly(s.effects, 'unknown-device');
    s = report(s.rollout, deviceId(2), 'succeeded');
    ignoredOnly(s.effects, 'not-offered');
    s = report(s.rollout, deviceId(0), 'succeeded', 'x2');
    expect(kinds(s.effects)).toEqual(['wave-opened', 'offer-update', 'persist']);
    s = report(s.rollout, deviceId(0), 'installing', 'x1b');
    ignoredOnly(s.effects, 'already-final');
    s = report(s.rollout, deviceId(0), 'failed', 'x3');
    ignoredOnly(s.effects, 'already-final');
    expect(s.rollout.failures).toBe(0);
  });

  it('survives a serialization round trip and resumes identically', () => {
    const cfg = config({
      waves: [{ count: 3 }, { share: 0.6 }, { share: 1 }],
      successThreshold: 0.6,
      errorThreshold: { count: 4, share: 0.5 },
      autoRollback: true,
      pauseBetweenWavesMs: 100,
    });
    let s = send(rolloutWith(10, cfg), { type: 'rollout.start' });
    s = reportAll(s.rollout, [0, 1].map(deviceId), 'succeeded');
    s = report(s.rollout, deviceId(2), 'installing');
    const text = serializeRollout(s.rollout);
    const restored = deserializeRollout(text);
    expect(restored.ok).toBe(true);
    if (!restored.ok) return;
    expect(restored.value).toEqual(s.rollout);
    const rest: RolloutMessage[] = [
      { type: 'rollout.tick', nowMs: 100 },
      { type: 'rollout.device-joined', deviceId: 'j' },
      { type: 'rollout.device-report', deviceId: deviceId(3), reportId: 'q', outcome: 'failed', atMs: 0 },
      { type: 'rollout.device-report', deviceId: deviceId(4), reportId: 'w', outcome: 'failed', atMs: 0 },
      { type: 'rollout.device-report', deviceId: deviceId(2), reportId: 'e', outcome: 'succeeded', atMs: 0 },
      { type: 'rollout.device-report', deviceId: 'j', reportId: 'r', outcome: 'failed', atMs: 0 },
    ];
    const run = (start: typeof s.rollout): unknown[] => {
      let r = start;
      const trace: unknown[] = [];
      for (const msg of rest) {
        const out = transition(r, msg, { nowMs: 100 });
        trace.push(out);
        if (out.ok) r = out.value[0];
      }
      return [trace, r];
    };
    expect(run(restored.value)).toEqual(run(s.rollout));
    expect(deserializeRollout('{').ok).toBe(false);
    expect(deserializeRollout('null').ok).toBe(false);
    expect(deserializeRollout(JSON.stringify({ ...s.rollout, index: {} })).ok).toBe(false);
  });
});

describe('rollouts - bulk joins', () => {
  const cfg = (() => {
    const c = compileRolloutConfig({ ...base, waves: [{ count: 3 }, { share: 1 }], successThreshold: 0.5 });
    if (!c.ok) throw new Error('bad config');
    return c.value;
  })();

  it('a bulk join before start builds the same population as joins one by one', () => {
    const ids = Array.from({ length: 50 }, (_, i) => deviceId(i));
    const one = rolloutWith(50, cfg);
    const bulk = send(rolloutWith(0, cfg), { type: 'rollout.devices-joined', deviceIds: ids }).rollout;
    expect(bulk).toEqual(one);
    expect(send(one, { type: 'rollout.start' }).rollout).toEqual(
      send(bulk, { type: 'rollout.start' }).rollout,
    );
  });

  it('a bulk join while running offers the newcomers of the open wave in one effect, ignores members and repeats', () => {
    const started = send(rolloutWith(5, cfg), { type: 'rollout.start' });
    const joined = send(started.rollout, {
      type: 'rollout.devices-joined',
      deviceIds: [deviceId(1), deviceId(7), deviceId(8), deviceId(7)],
    });
    expect(offered(joined.effects)).toEqual([deviceId(7), deviceId(8)]);
    expect(
      joined.effects.filter((e) => e.kind === 'ignored').map((e) => e.kind === 'ignored' && e.deviceId),
    ).toEqual([deviceId(1), deviceId(7)]);
    expect(joined.rollout.devices).toHaveLength(7);
    // Only already-known devices: nothing changes, nothing to persist.
    const again = send(joined.rollout, { type: 'rollout.devices-joined', deviceIds: [deviceId(7)] });
    expect(again.rollout).toBe(joined.rollout);
    expect(kinds(again.effects)).toEqual(['ignored']);
  });
});
