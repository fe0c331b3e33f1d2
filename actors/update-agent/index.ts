/**
 * The device update agent: A/B installs with resumable downloads, verification, health checks,
 * commit or rollback, anti-rollback, OS-before-apps and bounded deferral. Pure logic for now; the
 * shell that talks to the service arrives with rollouts.
 */
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
