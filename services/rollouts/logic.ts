/**
 * The rollout engine's pure logic: the state machine of ONE deployment (one image to one device
 * group). No I/O and no clock: simulated time arrives in {@link RolloutEnv.nowMs} (and in
 * `rollout.tick`). Same (rollout, message, env) → same result; the input is never mutated.
 *
 * ## Model
 *
 * - **Population.** `rollout.device-joined` adds a device. Before `start` (and after a halt or a
 *   cancel) a joiner only joins the population (wave 0 = unassigned, never offered). While running,
 *   waiting or paused it is assigned to the current wave; it is offered at once when running or
 *   waiting, and on `resume` when paused. A **completed** rollout keeps serving its group: a joiner
 *   is assigned to the last wave and offered immediately (the error budget still applies to it).
 * - **Waves** (numbered from 1) are cumulative targets computed when the wave opens, over the
 *   population at that moment: `ceil(share × population)` or `min(count, population)`; the last
 *   wave takes everyone. Unassigned devices fill the wave in join order. Wave k+1 opens once at
 *   least `ceil(successThreshold × size(k))` devices of wave k succeeded (an empty wave passes),
 *   after `pauseBetweenWavesMs` of `waiting` if set (only a `rollout.tick` ends the wait). If every
 *   device of the current wave is final and the threshold is not met, the rollout halts
 *   (`success-threshold-unmet`). When the last wave meets the threshold the rollout is `completed`;
 *   stragglers may still report.
 * - **Devices**: pending → downloading → installing → succeeded | failed; succeeded → rolled_back
 *   after an ordered rollback. States only move forward: a progress report that is not ahead of
 *   the current state, any report for a final device, a repeated `reportId`, a report for a device
 *   that is not currently offered or unknown — all are ignored with an `ignored` effect naming the
 *   reason, and change nothing. An unsolicited `rolled-back` from a device still installing is a
 *   device-side (A/B) rollback and counts as a failure. Reports after the rollout finished are
 *   still applied (they are facts about devices); after a halt with `autoRollback`, a late success
 *   gets its own `order-rollback`.
 * - **Error budget.** `failures` counts every accepted failure, `attempted` every offer (one per
 *   device per attempt). The error condition is `failures >= errorThreshold.count` OR
 *   `attempted > 0 && failures / attempted >= errorThreshold.share`. It is checked after every
 *   accepted failure while running, waiting, paused or completed; when met the rollout halts
 *   (`halted` effect, and with `autoRollback` an `order-rollback` of every succeeded device).
 *   `retry-failed` moves failed devices back to pending in the current wave and re-offers them (when
 *   running or waiting); it does NOT reset `failures` (the budget is for the rollout, not the
 *   attempt), while re-offers add to `attempted`.
 * - **Commands** are refused with a typed {@link RolloutError} and leave the state unchanged; see
 *   `ROLLOUT_ERROR_CODES`. `completed`, `halted` and `cancelled` refuse every command.
 *
 * ## Invariants (checked by the property tests)
 *
 * 1. **Error budget.** Offers never make the error condition true (they leave `failures` unchanged
 *    and only lower the failure share), so it first becomes true on an accepted failure, in that
 *    same step the rollout halts (unless it already halted or was cancelled), and `halted` and
 *    `cancelled` never offer (both are absorbing).
 *    Hence, with t the first step after which the condition holds: no `offer-update` at or after t,
 *    `attempted` is frozen at its value at t, and
 *    `failures(any later time) <= failures(t) + inFlight(t)`, where `inFlight(t)` is the number of
 *    devices offered but not final right after t. With a count threshold `failures(t) <= count`
 *    (equal when the count tripped it); with a share threshold `failures(t) - 1 < share × attempted(t)`.
 * 2. A device is offered at most once per attempt: at most `1 + (times retry-failed reset it)`.
 * 3. `rolloutGauges` counts sum to the population; the state is plain JSON.
 */
import type { ErrorInfo, Result } from '../../actors/runtime/index.js';
import type { RolloutConfig, WaveSpec } from './config.js';
import type {
  HaltReason,
  IgnoreReason,
  RolloutEffect,
  RolloutError,
  RolloutErrorCode,
  RolloutMessage,
  WaveOpenReason,
} from './messages.js';
import { ROLLOUT_ERROR_CODES } from './messages.js';

export const ROLLOUT_STATES = [
  'scheduled',
  'running',
  'paused',
  'waiting',
  'halted',
  'completed',
  'cancelled',
] as const;
/**
 * Lifecycle of the deployment. Commands are refused in the last three; `halted` and `cancelled`
 * are absorbing, `completed` can still become `halted` when late failures exhaust the error budget.
 */
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export const DEVICE_ROLLOUT_STATES = [
  'pending',
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled_back',
] as const;
export type DeviceRolloutState = (typeof DEVICE_ROLLOUT_STATES)[number];

const FINAL: ReadonlySet<DeviceRolloutState> = new Set(['succeeded', 'failed', 'rolled_back']);
const RANK: Readonly<Record<DeviceRolloutState, number>> = {
  pending: 0,
  downloading: 1,
  installing: 2,
  succeeded: 3,
  failed: 3,
  rolled_back: 4,
};

/** Whether a device state is final (succeeded, failed or rolled_back). */
export function isFinalDeviceState(s: DeviceRolloutState): boolean {
  return FINAL.has(s);
}

/** The image being rolled out. */
export interface RolloutImage {
  readonly imageId: string;
  readonly kind: 'os' | 'app';
  readonly version: string;
  readonly securityVersion: number;
}

/** One member of the group, as far as this deployment knows it. */
export interface RolloutDevice {
  readonly deviceId: string;
  /** 1-based wave; 0 while unassigned. */
  readonly wave: number;
  readonly state: DeviceRolloutState;
  /** Offered in its current attempt (reset by retry-failed). A pending, un-offered device accepts no report. */
  readonly offered: boolean;
  /** Offers made to this device over the rollout (1 + re-offers after retry-failed). */
  readonly attempts: number;
  readonly rollbackOrdered: boolean;
  /** Accepted report ids (ignored reports are not recorded, so ignoring never changes state). */
  readonly reportIds: readonly string[];
}

/** Snapshot taken when the rollout halted. */
export interface RolloutHalt {
  readonly reason: HaltReason;
  readonly atMs: number;
  readonly failures: number;
  readonly attempted: number;
  /** Offered devices not final at the halt: the most failures that can still arrive (per attempt). */
  readonly inFlight: number;
}

/**
 * The whole persisted state of one deployment: plain JSON (no Map/Set/undefined), so
 * `JSON.parse(JSON.stringify(r))` is an equivalent rollout.
 */
export interface Rollout {
  readonly schema: 1;
  readonly deploymentId: string;
  readonly groupId: string;
  readonly image: RolloutImage;
  readonly config: RolloutConfig;
  readonly state: RolloutState;
  /** 1-based; 0 before start. */
  readonly currentWave: number;
  /** Set while waiting between waves (kept while paused from waiting). */
  readonly waitUntilMs: number | null;
  /** Devices in join order. */
  readonly devices: readonly RolloutDevice[];
  /** deviceId → position in `devices`. */
  readonly index: Readonly<Record<string, number>>;
  readonly failures: number;
  readonly attempted: number;
  readonly halt: RolloutHalt | null;
}

/** Inputs besides state and message: the current simulated time. */
export interface RolloutEnv {
  readonly nowMs: number;
}

export type RolloutStep = readonly [Rollout, readonly RolloutEffect[]];

/** A new deployment in state `scheduled` with an empty population. */
export function initialRollout(init: {
  readonly deploymentId: string;
  readonly groupId: string;
  readonly image: RolloutImage;
  readonly config: RolloutConfig;
}): Rollout {
  return {
    schema: 1,
    deploymentId: init.deploymentId,
    groupId: init.groupId,
    image: init.image,
    config: init.config,
    state: 'scheduled',
    currentWave: 0,
    waitUntilMs: null,
    devices: [],
    index: {},
    failures: 0,
    attempted: 0,
    halt: null,
  };
}

/** Which error threshold (if any) the counts meet. Shares compare by division to avoid `0.1 × 30 > 3`. */
export function errorCondition(
  config: RolloutConfig,
  failures: number,
  attempted: number,
): 'error-count' | 'error-share' | null {
  const { count, share } = config.errorThreshold;
  if (count !== null && failures >= count) return 'error-count';
  if (share !== null && attempted > 0 && failures / attempted >= share - 1e-12) return 'error-share';
  return null;
}

/** Mutable working copy used inside one step; never escapes. */
type Draft = {
  -readonly [K in keyof Rollout]: Rollout[K];
};
interface Work {
  readonly d: Draft;
  readonly devices: RolloutDevice[];
  readonly effects: RolloutEffect[];
  readonly nowMs: number;
}

function lookup(r: Rollout, deviceId: string): number | null {
  return Object.hasOwn(r.index, deviceId) ? (r.index[deviceId] ?? null) : null;
}

function patchDevice(w: Work, i: number, patch: Partial<RolloutDevice>): RolloutDevice {
  const dev = w.devices[i];
  if (dev === undefined) throw new Error(`rollout: no device at ${i}`); // unreachable by construction
  const next = { ...dev, ...patch };
  w.devices[i] = next;
  return next;
}

function offer(w: Work, positions: readonly number[]): void {
  if (positions.length === 0) return;
  const ids: string[] = [];
  for (const i of positions) {
    const dev = patchDevice(w, i, { offered: true });
    ids.push(patchDevice(w, i, { attempts: dev.attempts + 1 }).deviceId);
  }
  w.d.attempted += positions.length;
  w.effects.push({ kind: 'offer-update', deviceIds: ids });
}

function waveTarget(spec: WaveSpec, isLast: boolean, population: number): number {
  if (isLast) return population;
  if ('share' in spec) return Math.min(population, Math.ceil(spec.share * population - 1e-9));
  return Math.min(spec.count, population);
}

function openNextWave(w: Work, reason: WaveOpenReason): void {
  const waves = w.d.config.waves;
  const k = w.d.currentWave + 1;
  const spec = waves[k - 1];
  if (spec === undefined) return; // unreachable: callers check k <= waves.length
  const target = waveTarget(spec, k === waves.length, w.devices.length);
  let assigned = w.devices.filter((dev) => dev.wave > 0).length;
  const fresh: number[] = [];
  for (let i = 0; i < w.devices.length && assigned < target; i++) {
    if (w.devices[i]?.wave !== 0) continue;
    patchDevice(w, i, { wave: k });
    fresh.push(i);
    assigned++;
  }
  w.d.currentWave = k;
  w.d.state = 'running';
  w.d.waitUntilMs = null;
  w.effects.push({ kind: 'wave-opened', wave: k, reason });
  offer(w, fresh);
}

function halt(w: Work, reason: HaltReason): void {
  const inFlight = w.devices.filter((dev) => dev.offered && !FINAL.has(dev.state)).length;
  w.d.state = 'halted';
  w.d.waitUntilMs = null;
  w.d.halt = { reason, atMs: w.nowMs, failures: w.d.failures, attempted: w.d.attempted, inFlight };
  w.effects.push({ kind: 'halted', reason, failures: w.d.failures, attempted: w.d.attempted });
  if (!w.d.config.autoRollback) return;
  const back: number[] = [];
  w.devices.forEach((dev, i) => {
    if (dev.state === 'succeeded' && !dev.rollbackOrdered) back.push(i);
  });
  orderRollback(w, back);
}

function orderRollback(w: Work, positions: readonly number[]): void {
  if (positions.length === 0) return;
  const ids = positions.map((i) => patchDevice(w, i, { rollbackOrdered: true }).deviceId);
  w.effects.push({ kind: 'order-rollback', deviceIds: ids });
}

/** Opens waves / completes / halts on an unmet threshold as far as the current state allows. */
function advance(w: Work): void {
  const { config } = w.d;
  for (;;) {
    if (w.d.state === 'waiting') {
      if (w.d.waitUntilMs !== null && w.nowMs < w.d.waitUntilMs) return;
      openNextWave(w, 'pause-elapsed');
      continue;
    }
    if (w.d.state !== 'running') return;
    let size = 0;
    let succeeded = 0;
    let open = 0;
    for (const dev of w.devices) {
      if (dev.wave !== w.d.currentWave) continue;
      size++;
      if (dev.state === 'succeeded') succeeded++;
      if (!FINAL.has(dev.state)) open++;
    }
    if (succeeded >= Math.ceil(config.successThreshold * size - 1e-9)) {
      if (w.d.currentWave >= config.waves.length) {
        w.d.state = 'completed';
        w.effects.push({ kind: 'completed' });
        return;
      }
      if (config.pauseBetweenWavesMs > 0) {
        w.d.state = 'waiting';
        w.d.waitUntilMs = w.nowMs + config.pauseBetweenWavesMs;
        return;
      }
      openNextWave(w, 'previous-wave-succeeded');
      continue;
    }
    if (open === 0) halt(w, 'success-threshold-unmet');
    return;
  }
}

function recordFailure(w: Work): void {
  w.d.failures += 1;
  const s = w.d.state;
  if (s !== 'running' && s !== 'waiting' && s !== 'paused' && s !== 'completed') return;
  const reason = errorCondition(w.d.config, w.d.failures, w.d.attempted);
  if (reason !== null) halt(w, reason);
}

function ignore(w: Work, deviceId: string, reason: IgnoreReason): void {
  w.effects.push({ kind: 'ignored', deviceId, reason });
}

function refuse(
  code: RolloutErrorCode,
  message: string,
): { readonly ok: false; readonly error: RolloutError } {
  return { ok: false, error: { code, message } };
}

/** Offers every assigned, un-offered, pending device of an opened wave (after resume / retry). */
function offerWaiting(w: Work): void {
  const todo: number[] = [];
  w.devices.forEach((dev, i) => {
    if (dev.wave > 0 && dev.state === 'pending' && !dev.offered) todo.push(i);
  });
  offer(w, todo);
}

function onReport(
  w: Work,
  r: Rollout,
  msg: Extract<RolloutMessage, { type: 'rollout.device-report' }>,
): void {
  const i = lookup(r, msg.deviceId);
  const dev = i === null ? undefined : w.devices[i];
  if (i === null || dev === undefined) return ignore(w, msg.deviceId, 'unknown-device');
  if (dev.reportIds.includes(msg.reportId)) return ignore(w, msg.deviceId, 'duplicate-report');
  if (dev.state === 'pending' && !dev.offered) return ignore(w, msg.deviceId, 'not-offered');
  const accept = (state: DeviceRolloutState): RolloutDevice =>
    patchDevice(w, i, { state, reportIds: [...dev.reportIds, msg.reportId] });
  const final = FINAL.has(dev.state);
  switch (msg.outcome) {
    case 'downloading':
    case 'installing':
      if (final) return ignore(w, msg.deviceId, 'already-final');
      if (RANK[msg.outcome] <= RANK[dev.state]) return ignore(w, msg.deviceId, 'stale-report');
      accept(msg.outcome);
      break;
    case 'succeeded':
      if (final) return ignore(w, msg.deviceId, 'already-final');
      accept('succeeded');
      if (w.d.state === 'halted' && w.d.config.autoRollback) orderRollback(w, [i]);
      break;
    case 'failed':
      if (final) return ignore(w, msg.deviceId, 'already-final');
      accept('failed');
      recordFailure(w);
      break;
    case 'rolled-back':
      if (dev.state === 'succeeded' && dev.rollbackOrdered) accept('rolled_back');
      else if (dev.state === 'succeeded') return ignore(w, msg.deviceId, 'rollback-not-ordered');
      else if (final) return ignore(w, msg.deviceId, 'already-final');
      else {
        // The device reverted by itself (A/B rollback after a bad boot): the install failed.
        accept('failed');
        recordFailure(w);
      }
      break;
    default:
      msg.outcome satisfies never;
  }
  advance(w);
}

/**
 * Adds the devices that are not members yet (in order) and offers the image to those landing in
 * an open wave. The index is copied once per call, so a bulk join is linear.
 */
function onJoin(w: Work, deviceIds: readonly string[]): void {
  const s = w.d.state;
  const assigned = s === 'running' || s === 'waiting' || s === 'paused' || s === 'completed';
  const index: Record<string, number> = { ...w.d.index };
  const members = w.devices.length;
  const toOffer: number[] = [];
  for (const deviceId of deviceIds) {
    if (Object.hasOwn(index, deviceId)) {
      ignore(w, deviceId, 'already-member');
      continue;
    }
    const i = w.devices.length;
    w.devices.push({
      deviceId,
      wave: assigned ? w.d.currentWave : 0,
      state: 'pending',
      offered: false,
      attempts: 0,
      rollbackOrdered: false,
      reportIds: [],
    });
    index[deviceId] = i;
    if (s === 'running' || s === 'waiting' || s === 'completed') toOffer.push(i);
  }
  // Only a real join replaces the index: an all-duplicate join must leave the state unchanged.
  if (w.devices.length > members) w.d.index = index;
  offer(w, toOffer);
}

/**
 * The deployment's state machine. Returns the next state and the effects to carry out (with a
 * final `persist` iff the state changed), or a {@link RolloutError} for a refused command (state
 * unchanged). Device reports, joins and ticks are never refused.
 */
export function transition(
  r: Rollout,
  msg: RolloutMessage,
  env: RolloutEnv,
): Result<RolloutStep, RolloutError> {
  const nowMs = msg.type === 'rollout.tick' ? Math.max(env.nowMs, msg.nowMs) : env.nowMs;
  const w: Work = { d: { ...r }, devices: r.devices.slice(), effects: [], nowMs };
  const finished = r.state === 'completed' || r.state === 'halted' || r.state === 'cancelled';
  const finishedError = (): { readonly ok: false; readonly error: RolloutError } =>
    refuse(ROLLOUT_ERROR_CODES.finished, `rollout ${r.deploymentId} is ${r.state}`);
  switch (msg.type) {
    case 'rollout.start':
      if (r.state !== 'scheduled')
        return refuse(
          ROLLOUT_ERROR_CODES.notScheduled,
          `rollout ${r.deploymentId} already started (${r.state})`,
        );
      openNextWave(w, 'rollout-started');
      advance(w);
      break;
    case 'rollout.pause':
      if (finished) return finishedError();
      if (r.state === 'scheduled') return refuse(ROLLOUT_ERROR_CODES.notStarted, 'cannot pause before start');
      if (r.state !== 'running' && r.state !== 'waiting')
        return refuse(ROLLOUT_ERROR_CODES.notRunning, `cannot pause while ${r.state}`);
      w.d.state = 'paused';
      break;
    case 'rollout.resume':
      if (finished) return finishedError();
      if (r.state !== 'paused')
        return refuse(ROLLOUT_ERROR_CODES.notPaused, `cannot resume while ${r.state}`);
      w.d.state = r.waitUntilMs === null ? 'running' : 'waiting';
      offerWaiting(w);
      advance(w);
      break;
    case 'rollout.cancel':
      if (finished) return finishedError();
      w.d.state = 'cancelled';
      w.d.waitUntilMs = null;
      break;
    case 'rollout.retry-failed': {
      if (finished) return finishedError();
      if (r.state === 'scheduled') return refuse(ROLLOUT_ERROR_CODES.notStarted, 'cannot retry before start');
      const failed: number[] = [];
      r.devices.forEach((dev, i) => {
        if (dev.state === 'failed') failed.push(i);
      });
      if (failed.length === 0)
        return refuse(ROLLOUT_ERROR_CODES.noFailedDevices, 'no failed device to retry');
      for (const i of failed) patchDevice(w, i, { state: 'pending', offered: false, wave: r.currentWave });
      if (r.state !== 'paused') offer(w, failed);
      advance(w);
      break;
    }
    case 'rollout.tick':
      advance(w);
      break;
    case 'rollout.device-joined':
      onJoin(w, [msg.deviceId]);
      advance(w);
      break;
    case 'rollout.devices-joined':
      onJoin(w, msg.deviceIds);
      advance(w);
      break;
    case 'rollout.device-report':
      onReport(w, r, msg);
      break;
    default:
      return msg satisfies never;
  }
  const changed =
    w.devices.some((dev, i) => dev !== r.devices[i]) ||
    w.devices.length !== r.devices.length ||
    (Object.keys(w.d) as (keyof Rollout)[]).some((k) => k !== 'devices' && w.d[k] !== r[k]);
  if (!changed) return { ok: true, value: [r, w.effects] };
  w.effects.push({ kind: 'persist' });
  return { ok: true, value: [{ ...w.d, devices: w.devices }, w.effects] };
}

/** Gauge values for `sphere_rollout_devices{wave,state}`, `sphere_rollout_state` and `sphere_rollout_current_wave`. */
export interface RolloutGauges {
  /** Every (wave 0..waves.length, state) pair, zeros included so stale series reset; wave 0 = unassigned. */
  readonly devices: ReadonlyArray<{
    readonly wave: number;
    readonly state: DeviceRolloutState;
    readonly count: number;
  }>;
  readonly state: RolloutState;
  readonly currentWave: number;
}

/** Pure projection of a rollout into gauge values; device counts sum to the population. */
export function rolloutGauges(r: Rollout): RolloutGauges {
  const waves = r.config.waves.length;
  const counts = Array.from({ length: waves + 1 }, () =>
    new Array<number>(DEVICE_ROLLOUT_STATES.length).fill(0),
  );
  for (const dev of r.devices) {
    const row = counts[dev.wave];
    const j = DEVICE_ROLLOUT_STATES.indexOf(dev.state);
    if (row !== undefined) row[j] = (row[j] ?? 0) + 1;
  }
  const devices = counts.flatMap((row, wave) =>
    DEVICE_ROLLOUT_STATES.map((state, j) => ({ wave, state, count: row[j] ?? 0 })),
  );
  return { devices, state: r.state, currentWave: r.currentWave };
}

/** JSON text of a rollout (its state is plain JSON already). */
export function serializeRollout(r: Rollout): string {
  return JSON.stringify(r);
}

/**
 * Parses {@link serializeRollout} output. Checks the schema version and that the device index is
 * consistent; it trusts the rest (the text comes from our own KV bucket, not from users).
 */
export function deserializeRollout(text: string): Result<Rollout, ErrorInfo> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: { code: 'ROLLOUT_CORRUPT', message: `not JSON: ${String(e)}` } };
  }
  const r = parsed as Rollout;
  if (typeof parsed !== 'object' || parsed === null)
    return { ok: false, error: { code: 'ROLLOUT_CORRUPT', message: 'not a schema-1 rollout' } };
  const devices: unknown = r.devices;
  if (r.schema !== 1 || !Array.isArray(devices) || typeof r.index !== 'object' || r.index === null)
    return { ok: false, error: { code: 'ROLLOUT_CORRUPT', message: 'not a schema-1 rollout' } };
  // Each entry must at least be keyed by a string device ID before the index can be checked.
  const bad = devices.findIndex(
    (dev: unknown) =>
      typeof dev !== 'object' || dev === null || typeof (dev as { deviceId?: unknown }).deviceId !== 'string',
  );
  if (bad >= 0)
    return {
      ok: false,
      error: { code: 'ROLLOUT_CORRUPT', message: `devices[${bad}] is not a device with a string deviceId` },
    };
  const indexOk =
    Object.keys(r.index).length === r.devices.length &&
    r.devices.every((dev, i) => Object.hasOwn(r.index, dev.deviceId) && r.index[dev.deviceId] === i);
  if (!indexOk)
    return { ok: false, error: { code: 'ROLLOUT_CORRUPT', message: 'device index inconsistent' } };
  return { ok: true, value: r };
}
