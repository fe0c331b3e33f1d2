import { describe, expect, it } from 'vitest';
import {
  ERROR_EVENTS_CSV_HEADER,
  ErrorReportStore,
  aggregateCsv,
  aggregateCsvChunks,
  csvCell,
  errorEventsCsv,
  errorEventsCsvChunks,
} from '../../../services/error-reports/index.js';
import type { ErrorEventRow } from '../../../services/error-reports/index.js';
import { T0, deviceId, event, groupId, parseCsv, productId, report, stored, tenantId } from './harness.js';

const HOSTILE = [
  'plain',
  'a,b',
  'say "hi"',
  'line1\nline2',
  'cr\rlf\r\n',
  '=HYPERLINK("http://evil","x")',
  '+1+1',
  '-2',
  '@SUM(A1)',
  '\tTAB',
  '"=quoted"',
  ' =spaced',
  '',
  'ünïcødé ✓',
];

function row(detail: string, over: Partial<ErrorEventRow> = {}): ErrorEventRow {
  return {
    receivedAtMs: T0 + 1500,
    tenantId: tenantId(1),
    productId: productId(1),
    groupId: null,
    deviceId: deviceId(1),
    reportId: 'er-1',
    index: 0,
    ...event(T0 + 250, { detail, component: 'app', version: '1.0', kind: 'app-exit', exitCode: 42 }),
    ...over,
  };
}

/** What a cell should read as once parsed back: the value, with a formula quote where needed. */
function defused(v: string): string {
  return /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
}

describe('error reports csv', () => {
  it('error reports csv - writes the header and one RFC 4180 record per event', () => {
    const csv = errorEventsCsv([row('SIGSEGV')]);
    expect(parseCsv(csv)).toEqual([
      [...ERROR_EVENTS_CSV_HEADER],
      [
        '2025-01-01T00:00:01.500Z',
        tenantId(1),
        productId(1),
        '',
        deviceId(1),
        'er-1',
        'app-exit',
        'app',
        '1.0',
        '42',
        '2025-01-01T00:00:00.250Z',
        'SIGSEGV',
      ],
    ]);
    expect(csv.split('\r\n')[0]).toBe(
      'received_at,tenant,product,group,device,report_id,kind,component,version,exit_code,event_at,detail',
    );
  });

  it('error reports csv - quotes commas, quotes and line breaks and defuses formulas', () => {
    const rows = HOSTILE.map((d) => row(d, { component: d === '' ? 'x' : d, version: d }));
    const parsed = parseCsv(errorEventsCsv(rows));
    expect(parsed).toHaveLength(HOSTILE.length + 1);
    HOSTILE.forEach((d, i) => {
      const rec = parsed[i + 1] as string[];
      expect(rec).toHaveLength(ERROR_EVENTS_CSV_HEADER.length);
      expect(rec[11]).toBe(defused(d));
      expect(rec[8]).toBe(defused(d));
      expect(rec.every((cell) => !/^[=+\-@\t\r]/.test(cell))).toBe(true);
    });
  });

  it('error reports csv - csvCell quotes only when needed', () => {
    expect(csvCell('abc')).toBe('abc');
    expect(csvCell('a"b')).toBe('"a""b"');
    expect(csvCell('=1+2')).toBe("'=1+2");
    expect(csvCell('=1,2')).toBe(`"'=1,2"`);
    expect(csvCell("'already")).toBe("'already");
  });

  it('error reports csv - the streamed chunks join to the whole export and end at record boundaries', () => {
    const rows = Array.from({ length: 500 }, (_, i) => row(`detail, number ${i}\n"quoted"`, { index: i }));
    const chunks = [...errorEventsCsvChunks(rows, { chunkChars: 1000 })];
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.join('')).toBe(errorEventsCsv(rows));
    for (const c of chunks) expect(parseCsv(c).length).toBeGreaterThan(0);
    expect(parseCsv(chunks.join(''))).toHaveLength(501);
  });

  it('error reports csv - pulls rows lazily', () => {
    let pulled = 0;
    function* rows(): Generator<ErrorEventRow> {
      for (let i = 0; i < 1_000_000; i++) {
        pulled++;
        yield row('x');
      }
    }
    const first = errorEventsCsvChunks(rows(), { chunkChars: 10_000 }).next();
    expect(first.done).toBe(false);
    expect(pulled).toBeLessThan(200);
  });

  it('error reports csv - exports what the store holds, with hostile device strings', () => {
    const s = new ErrorReportStore();
    const events = HOSTILE.filter((d) => d.length > 0 && !/[\u0000-\u001f]/.test(d)).map((d, i) =>
      event(T0 + i, { component: d, version: d, detail: d }),
    );
    s.add(stored(report(deviceId(1), 'er-1', events), { group: groupId(3) }));
    const parsed = parseCsv(errorEventsCsv(s.events({ tenantId: tenantId(1) })));
    expect(parsed.slice(1).map((r) => [r[3], r[7], r[8], r[11]])).toEqual(
      events.map((e) => [groupId(3), defused(e.component), defused(e.version), defused(e.detail)]),
    );
  });

  it('error reports csv - writes aggregates with one column per dimension', () => {
    const s = new ErrorReportStore();
    s.add(
      stored(
        report(deviceId(1), 'er-1', [
          event(T0, { kind: 'app-exit', component: '=cmd|x', exitCode: 1 }),
          event(T0, { kind: 'app-exit', component: '=cmd|x', exitCode: 1 }),
          event(T0, { kind: 'os-crash', component: 'os' }),
        ]),
      ),
    );
    const groupBy = ['component', 'exitCode'] as const;
    const rows = s.aggregate({ tenantId: tenantId(1), groupBy });
    expect(parseCsv(aggregateCsv(rows, groupBy))).toEqual([
      ['component', 'exit_code', 'events', 'devices', 'reports'],
      ["'=cmd|x", '1', '2', '1', '1'],
      ['os', '0', '1', '1', '1'],
    ]);
    expect(aggregateCsv([], ['device'])).toBe('device,events,devices,reports\r\n');
    expect([...aggregateCsvChunks(rows, groupBy, { chunkChars: 1 })]).toHaveLength(3);
  });
});
