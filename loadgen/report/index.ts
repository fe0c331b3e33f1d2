/**
 * Run reporting: the end-of-run summary (data, terminal table, JSON file), the live
 * progress line, and the per-wave display of `sphere rollout watch`.
 */
export { hostileRowPasses } from './hostile.js';
export type { HostileProfileRow, HostileSummary } from './hostile.js';
export { ProgressPrinter, formatProgressLine } from './progress.js';
export type {
  ProgressPrinterOptions,
  ProgressRollout,
  ProgressSnapshot,
  ProgressStream,
} from './progress.js';
export {
  BAR_GLYPHS,
  ROLLOUT_LEGEND,
  RolloutWatchPrinter,
  WATCH_EXIT,
  barCells,
  barParts,
  exitCodeOf,
  renderBar,
  renderHeader,
  renderRolloutWatch,
  runRolloutWatch,
  waveCount,
} from './rollout-watch.js';
export type { RolloutRenderOptions, WatchOutcome, WatchOutput } from './rollout-watch.js';
export {
  ATTEST_RESULTS,
  ROLLOUT_NOT_STARTED,
  SUMMARY_VERSION,
  faultSummaryRow,
  renderSummaryTable,
  rolloutExpectationMet,
  rolloutMetrics,
  rolloutOutcomes,
  summaryPasses,
  writeSummaryJson,
} from './summary.js';
export type {
  AttestationSummary,
  DeviceCounts,
  ErrorReportsSummary,
  ErrorSummary,
  FaultSummaryRow,
  LatencySummary,
  RenderOptions,
  RolloutSummary,
  UpdatesSummary,
  RolloutWaveSummary,
  RunInfo,
  RunSummary,
  StageSummary,
} from './summary.js';
