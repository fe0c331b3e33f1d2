/** The operator gRPC API: server (defensive, authenticated, tenant-scoped) and a typed client. */
export {
  MAX_BATCH,
  MAX_IMAGE_BYTES,
  MAX_REQUEST_BYTES,
  defensiveDefinition,
  operatorImplementation,
  startOperatorServer,
} from './server.js';
export type { OperatorServer } from './server.js';
export { ERROR_CODE_METADATA, OPERATOR_ERRORS, OperatorError, grpcStatusOf } from './errors.js';
export type { OperatorErrorCode } from './errors.js';
export type { AlertPageQuery, Caller, ImageUpload, OperatorBackend } from './backend.js';
export { OperatorCallError, createOperatorClient } from './client.js';
export type {
  AlertUpdate,
  OperatorClient,
  RolloutUpdate,
  WatchAlertsOptions,
  WatchRolloutOptions,
} from './client.js';
export {
  WATCH_DEFAULT_INTERVAL_MS,
  WATCH_FINAL_STATES,
  WATCH_MAX_INTERVAL_MS,
  WATCH_MIN_INTERVAL_MS,
  WatchPump,
  isWatchFinalState,
  watchIntervalOf,
} from './watch.js';
export type { WatchSink, WatchTimers } from './watch.js';
