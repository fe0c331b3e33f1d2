/**
 * Front door of the rollout engine: the pure state machine of one OTA deployment rolled out in
 * waves, gated by a success threshold and stopped by an error budget (with optional automatic
 * rollback). The shell (NATS, JetStream KV, timers) lives elsewhere and imports only this.
 */
export { MAX_WAVES, compileRolloutConfig } from './config.js';
export type { RolloutConfig, RolloutConfigError, RolloutConfigInput, WaveSpec } from './config.js';
export {
  DEVICE_REPORT_OUTCOMES,
  HALT_REASONS,
  IGNORE_REASONS,
  ROLLOUT_ERROR_CODES,
  WAVE_OPEN_REASONS,
} from './messages.js';
export type {
  DeviceReportOutcome,
  HaltReason,
  IgnoreReason,
  RolloutCommand,
  RolloutEffect,
  RolloutError,
  RolloutErrorCode,
  RolloutMessage,
  WaveOpenReason,
} from './messages.js';
export {
  DEVICE_ROLLOUT_STATES,
  ROLLOUT_STATES,
  deserializeRollout,
  errorCondition,
  initialRollout,
  isFinalDeviceState,
  rolloutGauges,
  serializeRollout,
  transition,
} from './logic.js';
export type {
  DeviceRolloutState,
  Rollout,
  RolloutDevice,
  RolloutEnv,
  RolloutGauges,
  RolloutHalt,
  RolloutImage,
  RolloutState,
  RolloutStep,
} from './logic.js';
