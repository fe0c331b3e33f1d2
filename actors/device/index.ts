/**
 * The device actor (an MT3620-class MCU): boots through its security core, connects, attests,
 * holds certificates, re-attests and heartbeats, records its errors (crashes, failed updates and
 * attestations) and uploads them daily; fault profiles make it hostile or broken.
 */
export { deviceDefinition } from './actor.js';
export { DeviceSession, SessionSlot } from './session.js';
export type { DeviceLink, DeviceShellOptions } from './actor.js';
export { DEVICE_FAULTS, backoffDelay, initialDeviceState, transition } from './logic.js';
export type {
  DeviceBehaviour,
  DeviceEffect,
  DeviceEnv,
  DeviceEvent,
  DeviceFault,
  DeviceFirmware,
  DevicePhase,
  DeviceProfile,
  DeviceState,
} from './logic.js';
export type { DeviceMessage, ErrorUploadOutcome, StepFailure, StepOutcome } from './messages.js';
export {
  DEFAULT_DEVICE_ERROR_BEHAVIOUR,
  RETRYABLE_ERROR_REPORT_CODES,
  crashEvent,
  crashSources,
  exponentialDelay,
  firstUploadDelay,
} from './error-reporter.js';
export type {
  CrashSource,
  CrashyImage,
  DeviceErrorBehaviour,
  ErrorReportResult,
  ErrorReporterState,
  ErrorUploadPhase,
} from './error-reporter.js';
