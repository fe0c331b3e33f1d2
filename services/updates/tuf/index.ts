/**
 * Front door of services/updates/tuf: an in-memory TUF 1.0 repository per tenant
 * (ed25519 keys, consistent snapshots) and a read-only HTTP server for it.
 */
export {
  DEFAULT_TUF_EXPIRIES,
  TUF_ROLES,
  TUF_SPEC_VERSION,
  TufRepositoryError,
  createTufRepository,
  hashPrefixedTargetPath,
  tufExpires,
  type CreateTufRepositoryOptions,
  type TufExpiries,
  type TufRepository,
  type TufRole,
  type TufServableRepository,
  type TufTargetCustom,
  type TufLatestMetadata,
  type TufThresholds,
} from './repository.js';
export { serveTufRepositories, type ServeTufRepositoriesOptions, type TufHttpServer } from './http.js';
