/**
 * Run reporting: the end-of-run summary (data, terminal table, JSON file) and the live
 * progress line.
 */
export { ProgressPrinter, formatProgressLine } from './progress.js';
export type { ProgressPrinterOptions, ProgressSnapshot, ProgressStream } from './progress.js';
export {
  ATTEST_RESULTS,
  SUMMARY_VERSION,
  faultSummaryRow,
  renderSummaryTable,
  summaryPasses,
  writeSummaryJson,
} from './summary.js';
export type {
  AttestationSummary,
  DeviceCounts,
  ErrorSummary,
  FaultSummaryRow,
  LatencySummary,
  RenderOptions,
  RunInfo,
  RunSummary,
  StageSummary,
} from './summary.js';
