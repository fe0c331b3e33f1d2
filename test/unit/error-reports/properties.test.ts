import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ERROR_EVENT_KINDS,
  ErrorRecorder,
  ErrorReportStore,
  GROUP_BY_DIMENSIONS,
  validateErrorReport,
} from '../../../services/error-reports/index.js';
import type {
  ErrorEvent,
  ErrorEventFilter,
  ErrorReport,
  GroupByDimension,
  StoredErrorReport,
} from '../../../services/error-reports/index.js';
import { HOUR_MS, T0, day, deviceId, event, groupId, productId, report, tenantId } from './harness.js';

const DEVICE = deviceId(42);

type Op =
  | { readonly op: 'record'; readonly count: number; readonly stepMs: number; readonly jitterMs: number }
  | { readonly op: 'advance'; readonly ms: number }
  | { readonly op: 'upload'; readonly ack: boolean; readonly ackTwice: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('record' as const),
      count: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 900, max: 1300 })),
      stepMs: fc.constantFrom(1000, HOUR_MS, 6 * HOUR_MS),
      jitterMs: fc.constantFrom(0, 0, 2 * HOUR_MS),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('advance' as const),
      ms: fc.integer({ min: 1, max: 5 * 24 * HOUR_MS }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({ op: fc.constant('upload' as const), ack: fc.boolean(), ackTwice: fc.boolean() }),
    weight: 3,
  },
);

describe('error reports properties', () => {
  it('error reports properties - every recorded event is in exactly one acknowledged report or counted as dropped', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 3000 }),
        (ops, maxBufferedEvents) => {
          const rec = new ErrorRecorder({ deviceId: DEVICE, maxBufferedEvents });
          let now = T0 + 3 * HOUR_MS;
          let recorded = 0;
          const acked: ErrorReport[] = [];
          const upload = (ack: boolean, ackTwice: boolean): void => {
            const r = rec.next(now);
            if (r === null) return;
            expect(validateErrorReport(r, { deviceId: DEVICE })).toEqual({ ok: true, value: r });
            if (!ack) return;
            expect(rec.acknowledged(r.reportId)).toBe(true);
            if (ackTwice) expect(rec.acknowledged(r.reportId)).toBe(false);
            acked.push(r);
          };
          for (const o of ops) {
            if (o.op === 'record') {
              for (let i = 0; i < o.count; i++) {
                now += o.stepMs;
                rec.record(event(now - (i % 3 === 1 ? o.jitterMs : 0), { detail: `e${recorded++}` }));
              }
            } else if (o.op === 'advance') now += o.ms;
            else upload(o.ack, o.ackTwice);
          }
          // Back online for good: a day later everything drains.
          now += day(1) - T0;
          for (let r = rec.next(now); r !== null; r = rec.next(now)) upload(true, false);
          expect(rec.pending()).toBe(0);
          const details = acked.flatMap((r) => r.events.map((e) => e.detail));
          expect(new Set(details).size).toBe(details.length);
          const dropped = acked.reduce((n, r) => n + r.droppedEvents, 0);
          expect(details.length + dropped).toBe(recorded);
          expect(dropped).toBe(rec.stats().droppedTotal);
          expect(acked.map((r) => r.reportId)).toEqual(acked.map((_, i) => `er-${i + 1}`));
          // Reports follow record order: report k holds only events recorded before those of k + 1.
          const seqs = acked.map((r) => r.events.map((e) => Number(e.detail.slice(1))));
          for (let k = 1; k < seqs.length; k++)
            if ((seqs[k - 1] ?? []).length > 0 && (seqs[k] ?? []).length > 0)
              expect(Math.max(...(seqs[k - 1] ?? []))).toBeLessThan(Math.min(...(seqs[k] ?? [])));
        },
      ),
      { numRuns: 150 },
    );
  });

  const eventArb: fc.Arbitrary<ErrorEvent> = fc
    .record({
      kind: fc.constantFrom(...ERROR_EVENT_KINDS),
      app: fc.constantFrom('a', 'b', 'c'),
      version: fc.constantFrom('1', '2'),
      exitCode: fc.constantFrom(0, 1, 255),
      atOffset: fc.integer({ min: 0, max: 10 * HOUR_MS }),
      detail: fc.constantFrom('x', '=y', 'z,"w"'),
    })
    .map(({ kind, app, version, exitCode, atOffset, detail }) =>
      event(T0 + atOffset, {
        kind,
        component: kind === 'os-crash' ? 'os' : app,
        version,
        exitCode,
        detail,
      }),
    );

  const storedArb: fc.Arbitrary<StoredErrorReport> = fc
    .record({
      tenant: fc.integer({ min: 1, max: 2 }),
      product: fc.option(fc.integer({ min: 1, max: 2 })),
      group: fc.option(fc.integer({ min: 1, max: 2 })),
      device: fc.integer({ min: 1, max: 4 }),
      seq: fc.integer({ min: 1, max: 6 }),
      received: fc.integer({ min: 0, max: 20 }),
      events: fc.array(eventArb, { maxLength: 6 }),
      dropped: fc.nat(3),
    })
    .map((s) => {
      const r = report(deviceId(s.device), `er-${s.seq}`, s.events, s.dropped);
      return {
        tenantId: tenantId(s.tenant),
        productId: s.product === null ? null : productId(s.product),
        groupId: s.group === null ? null : groupId(s.group),
        deviceId: r.deviceId,
        reportId: r.reportId,
        receivedAtMs: T0 + s.received * HOUR_MS,
        report: r,
      };
    });

  const filterArb = fc.record(
    {
      tenantId: fc.integer({ min: 1, max: 3 }).map(tenantId),
      productId: fc.integer({ min: 1, max: 2 }).map(productId),
      groupId: fc.integer({ min: 1, max: 2 }).map(groupId),
      deviceId: fc.integer({ min: 1, max: 4 }).map(deviceId),
      kind: fc.constantFrom(...ERROR_EVENT_KINDS),
      component: fc.constantFrom('a', 'b', 'os', 'zz'),
      version: fc.constantFrom('1', '2'),
      sinceMs: fc.integer({ min: 0, max: 10 * HOUR_MS }).map((n) => T0 + n),
      untilMs: fc.integer({ min: 0, max: 10 * HOUR_MS }).map((n) => T0 + n),
    },
    { requiredKeys: ['tenantId'] },
  );

  it('error reports properties - aggregate totals equal the stored events matching the filter', () => {
    fc.assert(
      fc.property(
        fc.array(storedArb, { maxLength: 25 }),
        filterArb,
        fc.subarray([...GROUP_BY_DIMENSIONS]),
        (reports, filter: ErrorEventFilter, groupBy: GroupByDimension[]) => {
          const store = new ErrorReportStore();
          const kept: StoredErrorReport[] = [];
          const seen = new Set<string>();
          for (const s of reports) {
            const fresh = !seen.has(`${s.deviceId}/${s.reportId}`);
            seen.add(`${s.deviceId}/${s.reportId}`);
            expect(store.add(s)).toBe(fresh ? 'stored' : 'duplicate');
            if (fresh) kept.push(s);
          }
          const matching = kept
            .filter(
              (s) =>
                s.tenantId === filter.tenantId &&
                (filter.productId === undefined || s.productId === filter.productId) &&
                (filter.groupId === undefined || s.groupId === filter.groupId) &&
                (filter.deviceId === undefined || s.deviceId === filter.deviceId),
            )
            .flatMap((s) =>
              s.report.events
                .filter(
                  (e) =>
                    (filter.kind === undefined || e.kind === filter.kind) &&
                    (filter.component === undefined || e.component === filter.component) &&
                    (filter.version === undefined || e.version === filter.version) &&
                    (filter.sinceMs === undefined || e.atMs >= filter.sinceMs) &&
                    (filter.untilMs === undefined || e.atMs < filter.untilMs),
                )
                .map((e) => ({ s, e })),
            );
          const rows = store.aggregate({ ...filter, groupBy });
          expect(rows.reduce((n, r) => n + r.events, 0)).toBe(matching.length);
          expect(new Set(rows.map((r) => JSON.stringify(r.key))).size).toBe(rows.length);
          for (let i = 1; i < rows.length; i++)
            expect((rows[i - 1]?.events ?? 0) >= (rows[i]?.events ?? 0)).toBe(true);
          const all = store.aggregate({ ...filter, groupBy: [] });
          if (matching.length === 0) expect(all).toEqual([]);
          else
            expect(all).toEqual([
              {
                key: {},
                events: matching.length,
                devices: new Set(matching.map((m) => m.s.deviceId)).size,
                reports: new Set(matching.map((m) => m.s)).size,
              },
            ]);
          const exported = [...store.events(filter)];
          expect(exported).toHaveLength(matching.length);
          expect(exported.every((r) => r.tenantId === filter.tenantId)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
