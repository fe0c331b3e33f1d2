import { expect } from 'vitest';
import { compileRolloutConfig, initialRollout, transition } from '../../../services/rollouts/index.js';
import type {
  DeviceReportOutcome,
  Rollout,
  RolloutConfig,
  RolloutConfigInput,
  RolloutEffect,
  RolloutError,
  RolloutMessage,
} from '../../../services/rollouts/index.js';

export const IMAGE = { imageId: 'img-os-25.11', kind: 'os', version: '25.11', securityVersion: 7 } as const;

export function config(over: Partial<RolloutConfigInput> = {}): RolloutConfig {
  const result = compileRolloutConfig({
    waves: [{ share: 1 }],
    successThreshold: 1,
    errorThreshold: { count: 1000 },
    autoRollback: false,
    ...over,
  });
  if (!result.ok) throw new Error(result.error.message);
  return result.value;
}

export function deviceId(i: number): string {
  return `dev-${String(i).padStart(3, '0')}`;
}

/** A scheduled rollout whose group already holds `n` devices (dev-000..). */
export function rolloutWith(n: number, cfg: RolloutConfig): Rollout {
  let r = initialRollout({ deploymentId: 'dep-1', groupId: 'grp-1', image: IMAGE, config: cfg });
  for (let i = 0; i < n; i++) r = send(r, { type: 'rollout.device-joined', deviceId: deviceId(i) }).rollout;
  return r;
}

export interface Sent {
  readonly rollout: Rollout;
  readonly effects: readonly RolloutEffect[];
}

/** Applies a message that must be accepted. */
export function send(r: Rollout, msg: RolloutMessage, nowMs = 0): Sent {
  const result = transition(r, msg, { nowMs });
  if (!result.ok) throw new Error(`refused: ${result.error.code}`);
  return { rollout: result.value[0], effects: result.value[1] };
}

/** Applies a command that must be refused; returns the error. */
export function refused(r: Rollout, msg: RolloutMessage): RolloutError {
  const result = transition(r, msg, { nowMs: 0 });
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('accepted');
  return result.error;
}

let reportSeq = 0;
export function report(
  r: Rollout,
  id: string,
  outcome: DeviceReportOutcome,
  reportId = `r-${++reportSeq}`,
  nowMs = 0,
): Sent {
  return send(r, { type: 'rollout.device-report', deviceId: id, reportId, outcome, atMs: nowMs }, nowMs);
}

/** Reports `outcome` for every id, threading the state. */
export function reportAll(r: Rollout, ids: readonly string[], outcome: DeviceReportOutcome): Sent {
  let rollout = r;
  const effects: RolloutEffect[] = [];
  for (const id of ids) {
    const s = report(rollout, id, outcome);
    rollout = s.rollout;
    effects.push(...s.effects);
  }
  return { rollout, effects };
}

export function offered(effects: readonly RolloutEffect[]): string[] {
  return effects.flatMap((e) => (e.kind === 'offer-update' ? e.deviceIds : []));
}

export function rolledBack(effects: readonly RolloutEffect[]): string[] {
  return effects.flatMap((e) => (e.kind === 'order-rollback' ? e.deviceIds : []));
}

export function kinds(effects: readonly RolloutEffect[]): string[] {
  return effects.map((e) => e.kind);
}

export function deviceState(r: Rollout, id: string): string | undefined {
  return r.devices.find((d) => d.deviceId === id)?.state;
}
