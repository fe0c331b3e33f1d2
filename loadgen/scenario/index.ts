/**
 * Scenarios: what a load/chaos run does, as a YAML file compiled once into a typed config, plus
 * the per-device fleet plan, update images derived from the seed, k6-style thresholds and a
 * mergeable latency histogram.
 */
export { apportion } from './apportion.js';
export {
  FAULT_PROFILES,
  FAULT_PROFILE_LIST,
  OS_VERSIONS,
  OS_VERSION_LIST,
  UPDATE_FAULTS,
  UPDATE_FAULT_LIST,
  belowMinimumVersion,
  compareVersions,
  isFaultProfile,
  isOsVersion,
  isUpdateFault,
} from './catalog.js';
export type { FaultProfile, OsVersion, UpdateFault } from './catalog.js';
export {
  DURATION_UNITS,
  DurationError,
  describeValue,
  formatDuration,
  parseDuration,
  parseRate,
} from './duration.js';
export type { DurationUnit } from './duration.js';
export { ScenarioError, formatPath, formatScenarioIssues } from './errors.js';
export type { ScenarioIssue } from './errors.js';
export { planFleet } from './fleet-plan.js';
export type { DevicePlan } from './fleet-plan.js';
export { imageContent, imageDefective } from './images.js';
export {
  LATENCY_RELATIVE_ERROR,
  LatencyRecorder,
  MIN_TRACKABLE_MS,
  latencyStats,
} from './latency-recorder.js';
export type { LatencySnapshot, LatencySource, LatencyStats } from './latency-recorder.js';
export { loadScenarioFile, parseScenarioYaml } from './load.js';
export { CHAOS_DEFAULTS, LINK_FAULT_KINDS, PROCESS_FAULT_KINDS, compileChaosFault } from './chaos.js';
export {
  ATTACK_PROFILES,
  MAX_ATTACK_ATTEMPTS,
  MAX_FLOOD_DEVICES,
  attemptAtMs,
  floodAllowance,
} from './attacks.js';
export type { AttackProfile, AttackSpec, AttacksConfig, DeviceRateLimit } from './attacks.js';
export type { ChaosAction, ChaosConfig, ChaosFault, LinkSelector } from './chaos.js';
export { locateIssues, locatePath } from './locate.js';
export {
  ERRORS_DEFAULTS,
  MAX_CRASHES_PER_DAY,
  MAX_UPLOAD_EVERY_MS,
  MIN_UPLOAD_EVERY_MS,
} from './error-reports.js';
export type { ErrorsConfig } from './error-reports.js';
export {
  CONNECTION_MODES,
  DEFAULT_GROUP_NAMES,
  IMAGE_KINDS,
  MAX_CHUNK_BYTES,
  MAX_FLEET_SIZE,
  MAX_HOSTILE_SHARE,
  MAX_IMAGE_BYTES,
  MAX_UPDATE_FAULT_SHARE,
  MIN_CHUNK_BYTES,
  ROLLOUT_EXPECTATIONS,
  SCENARIO_DEFAULTS,
  STAGE_KINDS,
  compileScenario,
  scenarioInputSchema,
} from './schema.js';
export type {
  AppSpec,
  ConnectionConfig,
  DeviceConfig,
  DeviceGroupSpec,
  FleetConfig,
  ImageSpec,
  OsShare,
  RolloutExpectation,
  RolloutSpec,
  Scenario,
  ScenarioSource,
  ScenarioStage,
  ServiceConfig,
  UpdatesConfig,
} from './schema.js';
export { SIZE_UNITS, SizeError, formatSize, parseSize } from './size.js';
export type { SizeUnit } from './size.js';
export {
  METRIC_KINDS,
  THRESHOLD_METRICS,
  THRESHOLD_OPERATORS,
  ThresholdError,
  compileThresholds,
  evaluateThresholds,
  exactLatencySource,
  isThresholdMetric,
  parseThreshold,
  percentileOfSorted,
} from './thresholds.js';
export type {
  AggregationName,
  MetricKind,
  ObservedMetric,
  ObservedMetrics,
  Threshold,
  ThresholdAggregation,
  ThresholdMetric,
  ThresholdOperator,
  ThresholdReport,
  ThresholdResult,
} from './thresholds.js';
export { MIN_WALL_WINDOW_MS, scenarioWarnings } from './warnings.js';
export type { ScenarioWarning } from './warnings.js';
