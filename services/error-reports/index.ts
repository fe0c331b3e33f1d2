/**
 * Front door of error reporting, all pure: the report model and its validator, the device-side
 * recorder that cuts daily reports within the limits (1,000 events, 14 days), the service-side
 * per-tenant index with deduplication and aggregates, and the CSV export. The shells (device
 * actor upload, NATS handler, JetStream stream, operator API) live elsewhere and import only this.
 */
export {
  COMPONENT_PATTERN,
  DAY_MS,
  ERROR_EVENT_KINDS,
  ERROR_REPORT_PROBLEM_CODES,
  InvalidErrorEventError,
  MAX_COMPONENT_LENGTH,
  MAX_DETAIL_LENGTH,
  MAX_EVENTS_PER_REPORT,
  MAX_LISTED_PROBLEMS,
  MAX_REPORT_ID_LENGTH,
  MAX_REPORT_SPAN_MS,
  MAX_TIME_MS,
  MAX_VERSION_LENGTH,
  OS_COMPONENT,
  REPORT_ID_PATTERN,
  VERSION_PATTERN,
  errorEventProblems,
  isErrorEventKind,
  validateErrorReport,
} from './model.js';
export type {
  ErrorEvent,
  ErrorEventKind,
  ErrorReport,
  ErrorReportProblem,
  ErrorReportProblemCode,
  ErrorReportRejection,
  ValidateErrorReportOptions,
} from './model.js';
export {
  DEFAULT_MAX_BUFFERED_EVENTS,
  DEFAULT_REPORT_ID_PREFIX,
  ErrorRecorder,
  ErrorRecorderOptionsError,
} from './recorder.js';
export type { ErrorRecorderOptions, ErrorRecorderState, ErrorRecorderStats } from './recorder.js';
export {
  ErrorReportStore,
  ErrorReportStoreError,
  GROUP_BY_DIMENSIONS,
  compareReportIds,
  isGroupByDimension,
} from './store.js';
export type {
  ErrorAggregateQuery,
  ErrorAggregateRow,
  ErrorEventFilter,
  ErrorEventRow,
  ErrorReportTotals,
  GroupByDimension,
  StoredErrorReport,
} from './store.js';
export {
  AGGREGATE_CSV_COLUMNS,
  ERROR_EVENTS_CSV_HEADER,
  aggregateCsv,
  aggregateCsvChunks,
  csvCell,
  csvLine,
  errorEventsCsv,
  errorEventsCsvChunks,
} from './csv.js';
export type { CsvChunkOptions } from './csv.js';
