/**
 * The device actor (an MT3620-class MCU): boots through its security core, connects, attests,
 * holds certificates, re-attests and heartbeats; fault profiles make it hostile or broken.
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
export type { DeviceMessage, StepFailure, StepOutcome } from './messages.js';
