/**
 * CSV export of error events and aggregates (RFC 4180: CRLF line ends, fields with a comma,
 * quote, CR or LF are quoted, quotes doubled). Device-supplied strings are hostile: a cell that a
 * spreadsheet would read as a formula (first character `=`, `+`, `-`, `@`, tab or CR) gets a
 * leading `'` so it is shown as text. Times are ISO-8601 UTC with milliseconds.
 *
 * The `*Chunks` variants are generators of string chunks (about `chunkChars` each) for streaming
 * a large export; the plain variants join them and are for small results and tests.
 */
import type { ErrorAggregateRow, ErrorEventRow, GroupByDimension } from './store.js';

export const ERROR_EVENTS_CSV_HEADER = [
  'received_at',
  'tenant',
  'product',
  'group',
  'device',
  'report_id',
  'kind',
  'component',
  'version',
  'exit_code',
  'event_at',
  'detail',
] as const;

/** Column names of the aggregate dimensions. */
export const AGGREGATE_CSV_COLUMNS: Readonly<Record<GroupByDimension, string>> = {
  product: 'product',
  group: 'group',
  version: 'version',
  kind: 'kind',
  component: 'component',
  device: 'device',
  exitCode: 'exit_code',
};

export interface CsvChunkOptions {
  /** Target chunk size in UTF-16 code units (a chunk ends at a row boundary); default 64 KiB. */
  readonly chunkChars?: number;
}

const DEFAULT_CHUNK_CHARS = 64 * 1024;
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field: formula-defused, then quoted when needed. */
export function csvCell(value: string): string {
  const v = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/** One CSV record with its CRLF. */
export function csvLine(values: readonly string[]): string {
  return values.map(csvCell).join(',') + '\r\n';
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function* chunked(lines: Iterable<string>, options: CsvChunkOptions): Generator<string, void, undefined> {
  const size = options.chunkChars ?? DEFAULT_CHUNK_CHARS;
  let parts: string[] = [];
  let length = 0;
  for (const line of lines) {
    parts.push(line);
    length += line.length;
    if (length >= size) {
      yield parts.join('');
      parts = [];
      length = 0;
    }
  }
  if (parts.length > 0) yield parts.join('');
}

function* eventLines(rows: Iterable<ErrorEventRow>): Generator<string, void, undefined> {
  yield csvLine(ERROR_EVENTS_CSV_HEADER);
  // Consecutive rows mostly share a report, hence its receive time: format it once.
  let receivedAtMs = Number.NaN;
  let receivedAt = '';
  for (const r of rows) {
    if (r.receivedAtMs !== receivedAtMs) {
      receivedAtMs = r.receivedAtMs;
      receivedAt = iso(receivedAtMs);
    }
    yield csvLine([
      receivedAt,
      r.tenantId,
      r.productId ?? '',
      r.groupId ?? '',
      r.deviceId,
      r.reportId,
      r.kind,
      r.component,
      r.version,
      String(r.exitCode),
      iso(r.atMs),
      r.detail,
    ]);
  }
}

function* aggregateLines<D extends GroupByDimension>(
  rows: Iterable<ErrorAggregateRow<D>>,
  groupBy: readonly D[],
): Generator<string, void, undefined> {
  const dims = [...new Set(groupBy)];
  yield csvLine([...dims.map((d) => AGGREGATE_CSV_COLUMNS[d]), 'events', 'devices', 'reports']);
  for (const r of rows)
    yield csvLine([...dims.map((d) => r.key[d]), String(r.events), String(r.devices), String(r.reports)]);
}

/** Error events as CSV chunks, header first (`ERROR_EVENTS_CSV_HEADER`); pulls rows lazily. */
export function errorEventsCsvChunks(
  rows: Iterable<ErrorEventRow>,
  options: CsvChunkOptions = {},
): Generator<string, void, undefined> {
  return chunked(eventLines(rows), options);
}

/** Error events as one CSV string; for small exports (stream large ones with {@link errorEventsCsvChunks}). */
export function errorEventsCsv(rows: Iterable<ErrorEventRow>): string {
  return [...errorEventsCsvChunks(rows)].join('');
}

/**
 * Aggregate rows as CSV chunks: one column per `groupBy` dimension (as in the query, so the
 * header is right even with no rows), then `events,devices,reports`.
 */
export function aggregateCsvChunks<D extends GroupByDimension>(
  rows: Iterable<ErrorAggregateRow<D>>,
  groupBy: readonly D[],
  options: CsvChunkOptions = {},
): Generator<string, void, undefined> {
  return chunked(aggregateLines(rows, groupBy), options);
}

export function aggregateCsv<D extends GroupByDimension>(
  rows: Iterable<ErrorAggregateRow<D>>,
  groupBy: readonly D[],
): string {
  return [...aggregateCsvChunks(rows, groupBy)].join('');
}
