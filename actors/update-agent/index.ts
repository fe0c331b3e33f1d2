/**
 * The device update agent: A/B installs with resumable downloads, verification, health checks,
 * commit or rollback, anti-rollback, OS-before-apps and bounded deferral. `logic.ts` is pure;
 * `actor.ts` is the shell that talks to the service over NATS and to the security core.
 */
export {
  DEFAULT_UPDATE_SHELL_BEHAVIOUR,
  UPDATE_FAULTS,
  firmwareFor,
  updateAgentDefinition,
} from './actor.js';
export type {
  UpdateAgentEvent,
  UpdateAgentShellMessage,
  UpdateAgentShellOptions,
  UpdateAgentShellState,
  UpdateFailure,
  UpdateFault,
  UpdateShellBehaviour,
} from './actor.js';
export {
  DEFAULT_UPDATE_BEHAVIOUR,
  componentKey,
  initialUpdateAgentState,
  updateTransition,
} from './logic.js';
export type {
  ComponentSlots,
  UpdateAgentBehaviour,
  UpdateAgentEffect,
  UpdateAgentState,
  UpdatePhase,
} from './logic.js';
export { UPDATE_CODES } from './messages.js';
export type {
  InstalledImage,
  UpdateAgentMessage,
  UpdateCode,
  UpdateOffer,
  UpdateOutcome,
} from './messages.js';
