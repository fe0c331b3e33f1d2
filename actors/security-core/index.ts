/**
 * The security core (Pluton-style root of trust): manufacture of a device identity from a
 * seed, measured boot, and signing evidence. Also the OS build catalog whose images it measures.
 */
export { securityCoreDefinition } from './actor.js';
export { sessionOpener } from './session.js';
export { attestOnce } from './attest-once.js';
export type { SessionOpener } from './session.js';
export { manufactureIdentity, publicIdentity } from './identity.js';
export type { DevicePublicIdentity, ManufacturedIdentity } from './identity.js';
export type { CoreMessage, CoreReply, UpdateVerdict } from './messages.js';
export { buildEvidence, recordBoot } from './logic.js';
export type { CoreBootState, Extend } from './logic.js';
export {
  BOOT_STAGES,
  OS_RELEASES,
  appImage,
  imageDigest,
  osImages,
  osRelease,
  tamperedKernelDigest,
} from './firmware.js';
export type { AppImage, BootStage, ImageMeasurement, OsVersion } from './firmware.js';
