import { describe, expect, it } from 'vitest';
import {
  ErrorReportStore,
  ErrorReportStoreError,
  GROUP_BY_DIMENSIONS,
  compareReportIds,
} from '../../../services/error-reports/index.js';
import type { GroupByDimension } from '../../../services/error-reports/index.js';
import { HOUR_MS, T0, deviceId, event, groupId, productId, report, stored, tenantId } from './harness.js';

const A = tenantId(1);
const B = tenantId(2);
const [D1, D2, D3] = [deviceId(1), deviceId(2), deviceId(3)];

/**
 * Tenant A: D1 (product 1, group 1) two reports, D2 (product 1, group 2) one report; tenant B:
 * D3 (product 2, no group) one report.
 */
function fixture(): ErrorReportStore {
  const s = new ErrorReportStore();
  s.add(
    stored(
      report(D1, 'er-1', [
        event(T0, { kind: 'app-crash', component: 'thermostat', version: '1.0', detail: 'SIGSEGV' }),
        event(T0 + HOUR_MS, { kind: 'app-exit', component: 'thermostat', version: '1.0', exitCode: 3 }),
      ]),
      { tenant: A, receivedAtMs: T0 + 2 * HOUR_MS },
    ),
  );
  s.add(
    stored(
      report(
        D1,
        'er-2',
        [
          event(T0 + 3 * HOUR_MS, { kind: 'app-exit', component: 'thermostat', version: '1.1', exitCode: 3 }),
          event(T0 + 4 * HOUR_MS, { kind: 'os-crash', component: 'os', version: '24.1' }),
        ],
        5,
      ),
      { tenant: A, receivedAtMs: T0 + 5 * HOUR_MS },
    ),
  );
  s.add(
    stored(
      report(D2, 'er-1', [
        event(T0 + HOUR_MS, { kind: 'app-exit', component: 'thermostat', version: '1.0', exitCode: 3 }),
        event(T0 + 2 * HOUR_MS, {
          kind: 'update-failed',
          component: 'os',
          version: '24.1',
          detail: 'NOT_OFFERED',
        }),
      ]),
      { tenant: A, group: groupId(2), receivedAtMs: T0 + 3 * HOUR_MS },
    ),
  );
  s.add(
    stored(report(D3, 'er-1', [event(T0, { kind: 'app-crash', component: 'secret-app', version: '9' })]), {
      tenant: B,
      product: productId(2),
      group: null,
      receivedAtMs: T0 + HOUR_MS,
    }),
  );
  return s;
}

describe('error report store', () => {
  it('error report store - deduplicates by device and report ID', () => {
    const s = new ErrorReportStore();
    const r = report(D1, 'er-1', [event(T0)]);
    expect(s.has(D1, 'er-1')).toBe(false);
    expect(s.add(stored(r))).toBe('stored');
    expect(s.add(stored(r, { receivedAtMs: T0 + 9 }))).toBe('duplicate');
    expect(s.has(D1, 'er-1')).toBe(true);
    expect(s.has(D2, 'er-1')).toBe(false);
    expect(s.add(stored(report(D2, 'er-1', [event(T0)])))).toBe('stored');
    expect(s.totals(A)).toEqual({ reports: 2, events: 2, droppedEvents: 0, devices: 2 });
  });

  it('error report store - refuses a stored report whose parts disagree', () => {
    const s = new ErrorReportStore();
    const r = report(D1, 'er-1', [event(T0)]);
    expect(() => s.add({ ...stored(r), deviceId: D2 })).toThrow(ErrorReportStoreError);
    expect(() => s.add({ ...stored(r), reportId: 'er-2' })).toThrow(ErrorReportStoreError);
    expect(() => s.add({ ...stored(r), receivedAtMs: -1 })).toThrow(ErrorReportStoreError);
    expect(s.has(D1, 'er-1')).toBe(false);
  });

  it('error report store - a tenant never sees another tenant data', () => {
    const s = fixture();
    expect(s.totals(A)).toEqual({ reports: 3, events: 6, droppedEvents: 5, devices: 2 });
    expect(s.totals(B)).toEqual({ reports: 1, events: 1, droppedEvents: 0, devices: 1 });
    expect(s.totals(tenantId(3))).toEqual({ reports: 0, events: 0, droppedEvents: 0, devices: 0 });
    expect(s.aggregate({ tenantId: A, groupBy: ['component'] }).map((r) => r.key.component)).not.toContain(
      'secret-app',
    );
    // Filters naming another tenant's device, product or strings find nothing.
    expect(s.aggregate({ tenantId: A, deviceId: D3, groupBy: [] })).toEqual([]);
    expect(s.aggregate({ tenantId: A, productId: productId(2), groupBy: [] })).toEqual([]);
    expect([...s.events({ tenantId: A, component: 'secret-app' })]).toEqual([]);
    expect([...s.events({ tenantId: B })].map((e) => [e.tenantId, e.deviceId])).toEqual([[B, D3]]);
    expect([...s.events({ tenantId: tenantId(3) })]).toEqual([]);
    expect(s.tenantIds()).toEqual([A, B]);
  });

  it.each<[GroupByDimension, [string, number, number, number][]]>([
    ['product', [[productId(1), 6, 2, 3]]],
    [
      'group',
      [
        [groupId(1), 4, 1, 2],
        [groupId(2), 2, 1, 1],
      ],
    ],
    [
      'version',
      [
        ['1.0', 3, 2, 2],
        ['24.1', 2, 2, 2],
        ['1.1', 1, 1, 1],
      ],
    ],
    [
      'kind',
      [
        ['app-exit', 3, 2, 3],
        ['app-crash', 1, 1, 1],
        ['os-crash', 1, 1, 1],
        ['update-failed', 1, 1, 1],
      ],
    ],
    [
      'component',
      [
        ['thermostat', 4, 2, 3],
        ['os', 2, 2, 2],
      ],
    ],
    [
      'device',
      [
        [D1, 4, 1, 2],
        [D2, 2, 1, 1],
      ],
    ],
    [
      'exitCode',
      [
        ['0', 3, 2, 3],
        ['3', 3, 2, 3],
      ],
    ],
  ])('error report store - groups by %s', (dim, expected) => {
    const rows = fixture().aggregate({ tenantId: A, groupBy: [dim] });
    expect(rows.map((r) => [r.key[dim], r.events, r.devices, r.reports])).toEqual(expected);
  });

  it('error report store - groups by several dimensions, sorted by events then key in groupBy order', () => {
    const rows = fixture().aggregate({ tenantId: A, groupBy: ['kind', 'exitCode', 'kind'] });
    expect(rows).toEqual([
      { key: { kind: 'app-exit', exitCode: '3' }, events: 3, devices: 2, reports: 3 },
      { key: { kind: 'app-crash', exitCode: '0' }, events: 1, devices: 1, reports: 1 },
      { key: { kind: 'os-crash', exitCode: '0' }, events: 1, devices: 1, reports: 1 },
      { key: { kind: 'update-failed', exitCode: '0' }, events: 1, devices: 1, reports: 1 },
    ]);
  });

  it('error report store - sorts exit codes as numbers and renders a missing group as empty', () => {
    const s = new ErrorReportStore();
    s.add(
      stored(
        report(D1, 'er-1', [
          event(T0, { kind: 'app-exit', exitCode: 10 }),
          event(T0, { kind: 'app-exit', exitCode: 9 }),
        ]),
        { group: null },
      ),
    );
    expect(s.aggregate({ tenantId: A, groupBy: ['group', 'exitCode'] }).map((r) => r.key)).toEqual([
      { group: '', exitCode: '9' },
      { group: '', exitCode: '10' },
    ]);
  });

  it('error report store - filters are ANDed, on event time with since inclusive and until exclusive', () => {
    const s = fixture();
    const total = (q: Omit<Parameters<typeof s.aggregate>[0], 'tenantId' | 'groupBy'>): number =>
      s.aggregate({ tenantId: A, groupBy: [], ...q })[0]?.events ?? 0;
    expect(total({})).toBe(6);
    expect(total({ kind: 'app-exit' })).toBe(3);
    expect(total({ kind: 'app-exit', version: '1.0' })).toBe(2);
    expect(total({ component: 'os' })).toBe(2);
    expect(total({ deviceId: D1 })).toBe(4);
    expect(total({ groupId: groupId(2) })).toBe(2);
    expect(total({ productId: productId(1), kind: 'os-crash' })).toBe(1);
    expect(total({ sinceMs: T0 + HOUR_MS })).toBe(5);
    expect(total({ untilMs: T0 + HOUR_MS })).toBe(1);
    expect(total({ sinceMs: T0 + HOUR_MS, untilMs: T0 + 3 * HOUR_MS })).toBe(3);
    expect(total({ version: 'never-seen' })).toBe(0);
    expect(s.aggregate({ tenantId: A, groupBy: [], kind: 'os-crash', deviceId: D2 })).toEqual([]);
  });

  it('error report store - events come in received, device, report, index order whatever the add order', () => {
    const reports = [
      stored(report(D2, 'er-1', [event(T0 + 1), event(T0 + 2)]), { receivedAtMs: T0 + 100 }),
      stored(report(D1, 'er-10', [event(T0 + 3)]), { receivedAtMs: T0 + 100 }),
      stored(report(D1, 'er-9', [event(T0 + 4)]), { receivedAtMs: T0 + 100 }),
      stored(report(D3, 'er-1', [event(T0 + 5)]), { receivedAtMs: T0 + 50 }),
    ];
    const expected = [
      [D3, 'er-1', 0],
      [D1, 'er-9', 0],
      [D1, 'er-10', 0],
      [D2, 'er-1', 0],
      [D2, 'er-1', 1],
    ];
    for (const order of [
      [0, 1, 2, 3],
      [3, 2, 1, 0],
      [1, 3, 0, 2],
    ]) {
      const s = new ErrorReportStore();
      for (const i of order) s.add(reports[i] as (typeof reports)[number]);
      expect([...s.events({ tenantId: A })].map((e) => [e.deviceId, e.reportId, e.index])).toEqual(expected);
      expect([...s.events({ tenantId: A, deviceId: D1 })].map((e) => e.reportId)).toEqual(['er-9', 'er-10']);
    }
  });

  it('error report store - an event row carries where the event came from', () => {
    const rows = [...fixture().events({ tenantId: B })];
    expect(rows).toEqual([
      {
        receivedAtMs: T0 + HOUR_MS,
        tenantId: B,
        productId: productId(2),
        groupId: null,
        deviceId: D3,
        reportId: 'er-1',
        index: 0,
        ...event(T0, { kind: 'app-crash', component: 'secret-app', version: '9' }),
      },
    ]);
  });

  it('error report store - an iteration sees the reports stored when it started', () => {
    const s = fixture();
    const it = s.events({ tenantId: A });
    const first = it.next();
    s.add(stored(report(D1, 'er-0', [event(T0)]), { tenant: A, receivedAtMs: T0 }));
    expect(first.done).toBe(false);
    expect([...it]).toHaveLength(5);
    expect([...s.events({ tenantId: A })][0]?.reportId).toBe('er-0');
  });

  it('error report store - refuses an unknown groupBy dimension', () => {
    expect(() => fixture().aggregate({ tenantId: A, groupBy: ['colour' as GroupByDimension] })).toThrow(
      RangeError,
    );
    expect(GROUP_BY_DIMENSIONS).toHaveLength(7);
  });

  it('error report store - compareReportIds orders trailing numbers as numbers', () => {
    expect(['er-10', 'er-9', 'er-1', 'er-009', 'ab', 'er-'].sort(compareReportIds)).toEqual([
      'ab',
      'er-',
      'er-1',
      'er-009',
      'er-9',
      'er-10',
    ]);
  });
});
