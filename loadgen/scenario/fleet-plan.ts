/**
 * Turn a compiled scenario into one plan per device: who it is (seed), what it runs, which
 * fault it has and when it powers on. Planning is a pure function of the scenario: the same
 * scenario (and seed) always gives the same plans, on any machine.
 */
import { OS_VERSIONS, UPDATE_FAULT_LIST } from './catalog.js';
import type { FaultProfile, OsVersion, UpdateFault } from './catalog.js';
import { createRng } from './rng.js';
import type { Rng } from './rng.js';
import type { AppSpec, Scenario } from './schema.js';

/** Everything a device actor needs to know about itself, fixed for the run. */
export interface DevicePlan {
  /** 0-based; plans are in index order, which is also power-on order. */
  readonly index: number;
  /**
   * Identity seed (the security core derives the device's keys from it): `"<scenario seed>/<index>"`,
   * unique per device, except that a cloned twin carries the seed of the device it copies.
   */
  readonly seed: string;
  readonly osVersion: OsVersion;
  readonly securityVersion: number;
  readonly apps: readonly AppSpec[];
  readonly fault: FaultProfile | null;
  /** Simulated ms from run start at which the device powers on; non-decreasing with `index`. */
  readonly powerOnAtMs: number;
  /** Index of the stage that powers this device on. */
  readonly stage: number;
  /** Set on the second device of a `clonedKey` pair: the index of the device it copies (always lower). */
  readonly twinOf?: number;
  /** Initial device clock offset in simulated ms: non-zero only for `wrongClock` devices. */
  readonly clockOffsetMs: number;
  /** How the device's update agent misbehaves; only healthy devices (`fault === null`) have one. */
  readonly updateFault: UpdateFault | null;
  /** How long this device's app postpones an offered OS update (simulated ms; 0: it never does). */
  readonly deferOsMs: number;
  /**
   * The device group (a `RolloutSpec.group`) the run assigns the device to before any rollout,
   * or `null`. Only healthy devices are assigned; each device is in at most one group.
   */
  readonly rolloutGroup: string | null;
}

/**
 * Plan every device of the fleet.
 *
 * - Fault profiles and OS versions get exactly the counts the scenario resolved (largest
 *   remainder); which devices get them is a seeded shuffle, so they are spread over the fleet and
 *   over the stages. `belowMinVersion` devices run `fleet.belowMinOsVersion`; the OS mix covers
 *   the rest.
 * - `clonedKey` devices are paired in index order; the second of each pair is the twin
 *   (`twinOf`, same `seed`) and, powering on no earlier, is the one the service should catch.
 * - Stages power on consecutive index ranges: a boot storm at seeded-uniform times within its
 *   window (sorted, so power-on order follows index), a ramp at exact `1/rate` spacing.
 * - `wrongClock` devices start with a clock ahead or behind by 1x..2x of
 *   `max(1 day, 2 × service.maxClockSkew)`.
 * - Update faults (`updates.faults`) go to a seeded shuffle of the healthy devices (no fault
 *   profile). Rollout groups take disjoint seeded sets of healthy devices, `devices` of each group,
 *   groups in order of their first rollout; rollouts to one group share its devices. The two
 *   draws are independent, so a group gets its share of update faults.
 *
 * Randomness comes from independent forks of `createRng(scenario.seed)` ("faults", "os",
 * "stage/<i>", "clock", "update-faults", "rollout-groups",
 * "defer-os"), so changing one aspect of a scenario
 * does not reshuffle the others.
 */
export function planFleet(scenario: Scenario): DevicePlan[] {
  const { fleet } = scenario;
  const rng = createRng(scenario.seed);

  const faults: (FaultProfile | null)[] = [];
  for (const [profile, count] of Object.entries(fleet.faults) as [FaultProfile, number][]) {
    for (let i = 0; i < count; i++) faults.push(profile);
  }
  while (faults.length < fleet.size) faults.push(null);
  shuffle(faults, rng.fork('faults'));

  const versions: OsVersion[] = [];
  for (const share of fleet.osMix) for (let i = 0; i < share.count; i++) versions.push(share.version);
  shuffle(versions, rng.fork('os'));

  const healthy: number[] = [];
  faults.forEach((fault, index) => {
    if (fault === null) healthy.push(index);
  });
  const updateFaults = assignUpdateFaults(scenario, healthy, rng.fork('update-faults'));
  const groups = assignRolloutGroups(scenario, healthy, rng.fork('rollout-groups'));
  const deferring = pickDevices(healthy, scenario.updates.deferOs.devices, rng.fork('defer-os'));

  const powerOn = powerOnTimes(scenario, rng);
  const clockRng = rng.fork('clock');
  // At least a day, and always well outside the allowed skew.
  const skewBase = Math.max(2 * scenario.service.maxClockSkewMs, 86_400_000);

  const plans: DevicePlan[] = new Array<DevicePlan>(fleet.size);
  let nextVersion = 0;
  let unpairedClone: number | undefined;
  for (let index = 0; index < fleet.size; index++) {
    const fault = faults[index] ?? null;
    const osVersion =
      fault === 'belowMinVersion' && fleet.belowMinOsVersion !== null
        ? fleet.belowMinOsVersion
        : (versions[nextVersion++] ?? fleet.osMix[0]?.version ?? '25.10');
    let seed = `${scenario.seed}/${index}`;
    let twinOf: number | undefined;
    if (fault === 'clonedKey') {
      if (unpairedClone === undefined) {
        unpairedClone = index;
      } else {
        twinOf = unpairedClone;
        seed = plans[unpairedClone]?.seed ?? seed;
        unpairedClone = undefined;
      }
    }
    const clockOffsetMs =
      fault === 'wrongClock'
        ? Math.round((clockRng.next() < 0.5 ? -1 : 1) * skewBase * (1 + clockRng.next()))
        : 0;
    const timing = powerOn[index] ?? { atMs: 0, stage: 0 };
    plans[index] = {
      index,
      seed,
      osVersion,
      securityVersion: OS_VERSIONS[osVersion].securityVersion,
      apps: fleet.apps,
      fault,
      powerOnAtMs: timing.atMs,
      stage: timing.stage,
      clockOffsetMs,
      updateFault: updateFaults[index] ?? null,
      deferOsMs: deferring.has(index) ? scenario.updates.deferOs.forMs : 0,
      rolloutGroup: groups[index] ?? null,
      ...(twinOf === undefined ? {} : { twinOf }),
    };
  }
  return plans;
}

/** Update fault per device index: the scenario's counts over a seeded shuffle of `healthy`. */
function assignUpdateFaults(
  scenario: Scenario,
  healthy: readonly number[],
  rng: Rng,
): (UpdateFault | null)[] {
  const deck: (UpdateFault | null)[] = [];
  for (const fault of UPDATE_FAULT_LIST) {
    for (let i = 0; i < scenario.updates.faults[fault]; i++) deck.push(fault);
  }
  if (deck.length === 0) return [];
  while (deck.length < healthy.length) deck.push(null);
  shuffle(deck, rng);
  const out: (UpdateFault | null)[] = [];
  healthy.forEach((index, k) => {
    out[index] = deck[k] ?? null;
  });
  return out;
}

/** `count` device indexes drawn from `from` (a seeded shuffle). */
function pickDevices(from: readonly number[], count: number, rng: Rng): Set<number> {
  if (count === 0) return new Set();
  const order = [...from];
  shuffle(order, rng);
  return new Set(order.slice(0, count));
}

/** Rollout group per device index: consecutive slices of a seeded shuffle of `healthy`. */
function assignRolloutGroups(scenario: Scenario, healthy: readonly number[], rng: Rng): (string | null)[] {
  const sizes = new Map<string, number>();
  for (const rollout of scenario.rollouts)
    if (!sizes.has(rollout.group)) sizes.set(rollout.group, rollout.devices);
  if (sizes.size === 0) return [];
  const order = [...healthy];
  shuffle(order, rng);
  const out: (string | null)[] = [];
  let next = 0;
  for (const [group, devices] of sizes) {
    for (let k = 0; k < devices && next < order.length; k++) out[order[next++] as number] = group;
  }
  return out;
}

/** Power-on time and stage for each device index. */
function powerOnTimes(scenario: Scenario, rng: Rng): { atMs: number; stage: number }[] {
  const out: { atMs: number; stage: number }[] = [];
  for (const stage of scenario.stages) {
    if (stage.kind === 'hold') continue;
    const stageRng = rng.fork(`stage/${stage.index}`);
    const lengthMs = stage.endMs - stage.startMs;
    const times: number[] = [];
    for (let k = 0; k < stage.devices; k++) {
      times.push(
        stage.kind === 'ramp'
          ? stage.startMs + Math.floor((k * 1_000) / stage.ratePerSec)
          : stage.startMs + Math.floor(stageRng.next() * lengthMs),
      );
    }
    times.sort((a, b) => a - b);
    for (const atMs of times) out.push({ atMs, stage: stage.index });
  }
  return out;
}

/** Fisher-Yates shuffle in place. */
function shuffle<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
}
