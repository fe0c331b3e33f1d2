import type { ErrorInfo } from '../../actors/runtime/index.js';

/** What a device says about its install; may arrive late, duplicated or out of order. */
export const DEVICE_REPORT_OUTCOMES = [
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled-back',
] as const;
export type DeviceReportOutcome = (typeof DEVICE_REPORT_OUTCOMES)[number];

/** Everything the rollout engine receives: operator commands, time, group membership, device reports. */
export type RolloutMessage =
  | { readonly type: 'rollout.start' }
  | { readonly type: 'rollout.pause' }
  | { readonly type: 'rollout.resume' }
  | { readonly type: 'rollout.cancel' }
  /** Failed devices go back to pending in the current wave; the error budget is NOT reset. */
  | { readonly type: 'rollout.retry-failed' }
  /** Simulated time passes; the only message that ends a wait between waves. */
  | { readonly type: 'rollout.tick'; readonly nowMs: number }
  | { readonly type: 'rollout.device-joined'; readonly deviceId: string }
  /** Many devices joined at once (a deployment created for a populated group, a bulk assign). */
  | { readonly type: 'rollout.devices-joined'; readonly deviceIds: readonly string[] }
  | {
      readonly type: 'rollout.device-report';
      readonly deviceId: string;
      /** Unique per report; a repeated id is a duplicate delivery and is ignored. */
      readonly reportId: string;
      readonly outcome: DeviceReportOutcome;
      /** Device-side time; informational only, never used for ordering (devices' clocks lie). */
      readonly atMs: number;
    };

/** Operator commands, the messages that can be refused. */
export type RolloutCommand = Extract<
  RolloutMessage,
  { type: 'rollout.start' | 'rollout.pause' | 'rollout.resume' | 'rollout.cancel' | 'rollout.retry-failed' }
>;

/** Codes of refused commands; callers branch on these, never on `message`. */
export const ROLLOUT_ERROR_CODES = {
  /** `start` when the rollout already started. */
  notScheduled: 'ROLLOUT_NOT_SCHEDULED',
  /** `pause` / `retry-failed` before `start`. */
  notStarted: 'ROLLOUT_NOT_STARTED',
  /** `pause` when not running or waiting (e.g. already paused). */
  notRunning: 'ROLLOUT_NOT_RUNNING',
  /** `resume` when not paused. */
  notPaused: 'ROLLOUT_NOT_PAUSED',
  /** Any command but `start` once completed, halted or cancelled. */
  finished: 'ROLLOUT_FINISHED',
  /** `retry-failed` with no failed device. */
  noFailedDevices: 'ROLLOUT_NO_FAILED_DEVICES',
} as const;
export type RolloutErrorCode = (typeof ROLLOUT_ERROR_CODES)[keyof typeof ROLLOUT_ERROR_CODES];

/** A refused command; the rollout state is unchanged. */
export interface RolloutError extends ErrorInfo {
  readonly code: RolloutErrorCode;
}

/** Why a report or join changed nothing. */
export const IGNORE_REASONS = [
  'unknown-device',
  'not-offered',
  'duplicate-report',
  'stale-report',
  'already-final',
  'rollback-not-ordered',
  'already-member',
] as const;
export type IgnoreReason = (typeof IGNORE_REASONS)[number];

export const HALT_REASONS = ['error-count', 'error-share', 'success-threshold-unmet'] as const;
export type HaltReason = (typeof HALT_REASONS)[number];

export const WAVE_OPEN_REASONS = ['rollout-started', 'previous-wave-succeeded', 'pause-elapsed'] as const;
export type WaveOpenReason = (typeof WAVE_OPEN_REASONS)[number];

/** Side effects the shell carries out; the logic never performs I/O. Waves are numbered from 1. */
export type RolloutEffect =
  /** Tell these devices the update is available (devices of a newly opened wave, joiners, retries). */
  | { readonly kind: 'offer-update'; readonly deviceIds: readonly string[] }
  /** Tell these devices (which reported success with the image) to go back to their previous version. */
  | { readonly kind: 'order-rollback'; readonly deviceIds: readonly string[] }
  | { readonly kind: 'wave-opened'; readonly wave: number; readonly reason: WaveOpenReason }
  | {
      readonly kind: 'halted';
      readonly reason: HaltReason;
      readonly failures: number;
      readonly attempted: number;
    }
  | { readonly kind: 'completed' }
  | { readonly kind: 'ignored'; readonly deviceId: string; readonly reason: IgnoreReason }
  /** The state changed; the shell writes it (e.g. to JetStream KV). At most one per step, always last. */
  | { readonly kind: 'persist' };
