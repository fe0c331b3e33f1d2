import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  compileRolloutConfig,
  deserializeRollout,
  initialRollout,
  isFinalDeviceState,
  rolloutGauges,
  serializeRollout,
  transition,
} from '../../../services/rollouts/index.js';
import type {
  DeviceReportOutcome,
  Rollout,
  RolloutConfig,
  RolloutConfigInput,
  RolloutEffect,
  RolloutMessage,
  WaveSpec,
} from '../../../services/rollouts/index.js';
import { IMAGE, deviceId } from './harness.js';

/** Small seeded PRNG for the network's choices (outcomes, duplicates, drain order). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Op =
  | { readonly k: 'deliver'; readonly pick: number }
  | { readonly k: 'pause' }
  | { readonly k: 'resume' }
  | { readonly k: 'tick'; readonly dt: number }
  | { readonly k: 'join' }
  | { readonly k: 'retry' }
  | { readonly k: 'cancel' }
  | { readonly k: 'start' }
  | { readonly k: 'bogus'; readonly pick: number }
  | { readonly k: 'conflict'; readonly pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 12, arbitrary: fc.nat().map((pick) => ({ k: 'deliver' as const, pick })) },
  { weight: 2, arbitrary: fc.constant({ k: 'pause' as const }) },
  { weight: 2, arbitrary: fc.constant({ k: 'resume' as const }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3000 }).map((dt) => ({ k: 'tick' as const, dt })) },
  { weight: 2, arbitrary: fc.constant({ k: 'join' as const }) },
  { weight: 4, arbitrary: fc.constant({ k: 'retry' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'start' as const }) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ k: 'bogus' as const, pick })) },
  { weight: 1, arbitrary: fc.constant({ k: 'cancel' as const }) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ k: 'conflict' as const, pick })) },
);

const wavesArb: fc.Arbitrary<WaveSpec[]> = fc
  .array(fc.oneof(fc.double({ min: 0.01, max: 0.99, noNaN: true }), fc.integer({ min: 1, max: 120 })), {
    maxLength: 4,
  })
  .map((xs) => {
    const shares = [...new Set(xs.filter((x) => !Number.isInteger(x)))].sort((a, b) => a - b);
    const counts = [...new Set(xs.filter((x) => Number.isInteger(x)))].sort((a, b) => a - b);
    // Interleave keeping each kind increasing; the last wave always reaches 100%.
    const waves: WaveSpec[] = [];
    while (shares.length + counts.length > 0) {
      const s = shares.shift();
      if (s !== undefined) waves.push({ share: s });
      const c = counts.shift();
      if (c !== undefined) waves.push({ count: c });
    }
    return [...waves, { share: 1 }];
  });

const configArb: fc.Arbitrary<RolloutConfigInput> = fc.record({
  waves: wavesArb,
  successThreshold: fc.constantFrom(0, 0.5, 0.8, 0.95, 1),
  errorThreshold: fc.oneof(
    fc.record({ count: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ share: fc.double({ min: 0.05, max: 1, noNaN: true }) }),
    fc.record({
      count: fc.integer({ min: 1, max: 40 }),
      share: fc.double({ min: 0.05, max: 1, noNaN: true }),
    }),
  ),
  autoRollback: fc.boolean(),
  pauseBetweenWavesMs: fc.constantFrom(0, 0, 500, 2000),
});

const scenarioArb = fc.record({
  population: fc.integer({ min: 10, max: 300 }),
  config: configArb,
  failRate: fc.constantFrom(0, 0.02, 0.1, 0.3, 0.7),
  seed: fc.integer(),
  ops: fc.array(opArb, { maxLength: 300 }),
  restartAt: fc.nat({ max: 300 }),
  resumeAtEnd: fc.boolean(),
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

interface InFlightReport {
  readonly deviceId: string;
  readonly reportId: string;
  readonly outcome: DeviceReportOutcome;
  /** `${deviceId}#${attempt}` for install reports. */
  readonly attemptKey: string | null;
}

/** The oracle's own independent errorCondition (same spec, separate code). */
function conditionMet(cfg: RolloutConfig, failures: number, attempted: number): boolean {
  const { count, share } = cfg.errorThreshold;
  return (
    (count !== null && failures >= count) ||
    (share !== null && attempted > 0 && failures / attempted >= share - 1e-12)
  );
}

/** Cheap assertion for the hot path (vitest's expect is comparatively slow per call). */
function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(message);
}

function runScenario(sc: Scenario): void {
  const compiled = compileRolloutConfig(sc.config);
  if (!compiled.ok) throw new Error(compiled.error.message);
  const cfg = compiled.value;
  const rng = mulberry32(sc.seed);
  let now = 0;
  let r: Rollout = initialRollout({ deploymentId: 'dep', groupId: 'grp', image: IMAGE, config: cfg });

  // --- the network and the oracle's bookkeeping ---
  const pool: InFlightReport[] = [];
  const population: string[] = [];
  const willFail = new Map<string, boolean>();
  const offers = new Map<string, number>();
  const retries = new Map<string, number>();
  const finalDelivered = new Set<string>();
  const failedKeys = new Set<string>();
  const rollbackOrders = new Map<string, number>();
  let attempted = 0;
  let trip: { failures: number; attempted: number; inFlight: number } | null = null;
  let steps = 0;

  const inFlightNow = (): number =>
    [...offers].filter(([id, n]) => n > 0 && !finalDelivered.has(`${id}#${n}`)).length;

  const produce = (effects: readonly RolloutEffect[]): void => {
    for (const e of effects) {
      if (e.kind === 'offer-update') {
        // (1) nothing is offered once the error condition held.
        check(trip === null, 'offer after the error condition was met');
        for (const id of e.deviceIds) {
          const attempt = (offers.get(id) ?? 0) + 1;
          offers.set(id, attempt);
          attempted++;
          // (3) offered at most once per attempt.
          check(attempt <= 1 + (retries.get(id) ?? 0), `${id} offered twice in one attempt`);
          const fails = (willFail.get(id) ?? false) && (attempt === 1 || rng() < 0.5);
          const key = `${id}#${attempt}`;
          const seq: DeviceReportOutcome[] = [];
          if (rng() < 0.7) seq.push('downloading');
          if (rng() < 0.7) seq.push('installing');
          seq.push(fails ? 'failed' : 'succeeded');
          seq.forEach((outcome, i) => {
            const rep = { deviceId: id, reportId: `${key}#${i}`, outcome, attemptKey: key };
            pool.push(rep);
            if (rng() < 0.3) pool.push(rep); // duplicated delivery
          });
        }
      } else if (e.kind === 'order-rollback') {
        check(cfg.autoRollback, 'rollback ordered without autoRollback');
        for (const id of e.deviceIds) {
          rollbackOrders.set(id, (rollbackOrders.get(id) ?? 0) + 1);
          const rep = {
            deviceId: id,
            reportId: `${id}#rb${rollbackOrders.get(id)}`,
            outcome: 'rolled-back' as const,
            attemptKey: null,
          };
          pool.push(rep);
          if (rng() < 0.3) pool.push(rep);
        }
      }
    }
  };

  const apply = (msg: RolloutMessage): boolean => {
    const out = transition(r, msg, { nowMs: now });
    steps++;
    if (!out.ok) {
      check(msg.type !== 'rollout.device-report', 'report refused');
      return false;
    }
    const [next, effects] = out.value;
    if (msg.type === 'rollout.retry-failed')
      for (const d of r.devices)
        if (d.state === 'failed') retries.set(d.deviceId, (retries.get(d.deviceId) ?? 0) + 1);
    if (
      msg.type === 'rollout.device-report' &&
      msg.outcome !== 'rolled-back' &&
      !msg.reportId.startsWith('bogus-')
    ) {
      const attempt = msg.reportId.split('#')[1];
      const key = `${msg.deviceId}#${attempt}`;
      const current = `${msg.deviceId}#${offers.get(msg.deviceId) ?? 0}`;
      if ((msg.outcome === 'succeeded' || msg.outcome === 'failed') && key === current)
        finalDelivered.add(key);
      if (msg.outcome === 'failed') failedKeys.add(key);
    }
    r = next;
    check(r.state !== 'paused' || !effects.some((e) => e.kind === 'offer-update'), 'offer while paused');
    produce(effects);
    check(effects.filter((e) => e.kind === 'persist').length <= 1, 'several persist effects');
    // The engine's accounting matches the oracle's.
    check(r.attempted === attempted, `attempted ${r.attempted} != oracle ${attempted}`);
    check(r.failures === failedKeys.size, `failures ${r.failures} != oracle ${failedKeys.size}`);
    if (trip === null && conditionMet(cfg, failedKeys.size, attempted)) {
      trip = { failures: failedKeys.size, attempted, inFlight: inFlightNow() };
      expect(['halted', 'cancelled']).toContain(r.state);
      if (r.halt !== null && r.halt.reason !== 'success-threshold-unmet') {
        expect(r.halt).toMatchObject(trip);
      }
      if (cfg.errorThreshold.count !== null)
        expect(trip.failures).toBeLessThanOrEqual(cfg.errorThreshold.count);
      if (cfg.errorThreshold.share !== null)
        expect(trip.failures - 1).toBeLessThan(cfg.errorThreshold.share * trip.attempted + 1e-9);
    }
    return true;
  };

  const deliver = (pick: number): void => {
    const [rep] = pool.splice(pick % pool.length, 1);
    if (rep === undefined) return;
    apply({
      type: 'rollout.device-report',
      deviceId: rep.deviceId,
      reportId: rep.reportId,
      outcome: rep.outcome,
      atMs: now,
    });
  };

  const join = (id: string): void => {
    willFail.set(id, rng() < sc.failRate);
    population.push(id);
    apply({ type: 'rollout.device-joined', deviceId: id });
  };

  for (let i = 0; i < sc.population; i++) join(deviceId(i));
  apply({ type: 'rollout.start' });
  let joined = 0;
  sc.ops.forEach((op, i) => {
    if (i === sc.restartAt) {
      // A restarted shard resumes from the persisted state.
      const restored = deserializeRollout(serializeRollout(r));
      expect(restored.ok).toBe(true);
      if (restored.ok) r = restored.value;
    }
    switch (op.k) {
      case 'deliver':
        if (pool.length > 0) deliver(op.pick);
        break;
      case 'pause':
      case 'resume':
      case 'cancel':
      case 'start':
        apply({ type: `rollout.${op.k}` });
        break;
      case 'retry':
        apply({ type: 'rollout.retry-failed' });
        break;
      case 'tick':
        now += op.dt;
        apply({ type: 'rollout.tick', nowMs: now });
        break;
      case 'join':
        join(`joiner-${joined++}`);
        break;
      case 'bogus': {
        // Reports for unknown devices or devices never offered: must change nothing.
        const never = population.find((id, j) => j >= op.pick % population.length && !offers.has(id));
        const id = never ?? `ghost-${op.pick}`;
        const before = r;
        apply({
          type: 'rollout.device-report',
          deviceId: id,
          reportId: `bogus-${steps}`,
          outcome: 'failed',
          atMs: now,
        });
        expect(r).toBe(before);
        break;
      }
      case 'conflict': {
        // A contradicting report for a device already final (e.g. 'failed' after 'succeeded'): ignored.
        const finals = r.devices.filter((d) => isFinalDeviceState(d.state));
        const dev = finals[op.pick % Math.max(1, finals.length)];
        if (dev === undefined) break;
        const before = r;
        const outcome = dev.state === 'failed' ? 'succeeded' : 'failed';
        apply({
          type: 'rollout.device-report',
          deviceId: dev.deviceId,
          reportId: `bogus-${steps}`,
          outcome,
          atMs: now,
        });
        expect(r).toBe(before);
        break;
      }
      default:
        op satisfies never;
    }
  });

  // Drain: deliver everything (shuffled), let waits elapse, until nothing moves.
  if (sc.resumeAtEnd && r.state === 'paused') apply({ type: 'rollout.resume' });
  for (let round = 0; round < 1000; round++) {
    while (pool.length > 0) deliver(Math.floor(rng() * pool.length));
    now += cfg.pauseBetweenWavesMs + 1;
    const out = transition(r, { type: 'rollout.tick', nowMs: now }, { nowMs: now });
    if (!out.ok) throw new Error('tick refused');
    if (out.value[1].length === 0 && pool.length === 0) break;
    apply({ type: 'rollout.tick', nowMs: now });
  }
  expect(pool).toHaveLength(0);

  // (1) the error budget: overshoot bounded by what was in flight when it was reached.
  if (trip !== null) {
    const t: { failures: number; attempted: number; inFlight: number } = trip;
    expect(r.failures).toBeLessThanOrEqual(t.failures + t.inFlight);
    expect(r.attempted).toBe(t.attempted);
  }
  // (2) every offered device ends final, unless a retry reset it and the rollout stopped before re-offering.
  const stopped = r.state === 'halted' || r.state === 'cancelled' || r.state === 'paused';
  for (const dev of r.devices) {
    const n = offers.get(dev.deviceId) ?? 0;
    if (n === 0) {
      check(dev.state === 'pending', `${dev.deviceId} never offered but ${dev.state}`);
      check(stopped, `${dev.deviceId} never offered in a ${r.state} rollout`);
    } else if (!isFinalDeviceState(dev.state)) {
      check(dev.state === 'pending' && !dev.offered, `${dev.deviceId} offered, left ${dev.state}`);
      check(stopped, `${dev.deviceId} reset by retry in a ${r.state} rollout`);
    } else {
      check(dev.attempts === n, `${dev.deviceId} attempts ${dev.attempts} != offers ${n}`);
      const lastKey = `${dev.deviceId}#${n}`;
      check((dev.state === 'failed') === failedKeys.has(lastKey), `${dev.deviceId} ${dev.state}`);
    }
    check((dev.state === 'rolled_back') === rollbackOrders.has(dev.deviceId), `${dev.deviceId} rollback`);
    check((rollbackOrders.get(dev.deviceId) ?? 0) <= 1, `${dev.deviceId} rollback ordered twice`);
  }
  if (r.state === 'halted' && cfg.autoRollback)
    expect(r.devices.some((d) => d.state === 'succeeded')).toBe(false);
  // (4) gauges account for the whole population.
  const g = rolloutGauges(r);
  expect(g.devices.reduce((s, d) => s + d.count, 0)).toBe(population.length);
  expect(r.devices).toHaveLength(population.length);
  expect(g.state).toBe(r.state);
  // (5) without an outstanding pause the rollout reaches a terminal state.
  if (r.state !== 'paused') expect(['completed', 'halted', 'cancelled']).toContain(r.state);
  // The final state is plain JSON.
  expect(JSON.parse(serializeRollout(r))).toEqual(r);
}

describe('rollouts - properties', () => {
  it('keeps the error budget, final states, single offers and gauges under a hostile network', () => {
    fc.assert(fc.property(scenarioArb, runScenario), { numRuns: 300 });
  });
});
