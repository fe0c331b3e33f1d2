/**
 * The service side: an in-memory index of stored error reports that answers the manufacturer's
 * questions (events counted by product, group, version, kind, component, device and exit code)
 * and streams events for export. The durable copy lives in a JetStream stream elsewhere; replaying
 * it into {@link ErrorReportStore.add} rebuilds this index (duplicates are recognised).
 *
 * ## Contracts
 *
 * - **Deduplication** by `(deviceId, reportId)` across all tenants: a retried upload is a
 *   `'duplicate'` and changes nothing.
 * - **Tenant isolation.** Every query names a tenant and sees only that tenant's reports; each
 *   tenant has its own index and its own string dictionary, so no query path can reach another's.
 * - **Order.** `events` yields by (received time, device ID, report ID with its trailing number
 *   compared as a number, event index): the same for the same stored reports, whatever the order
 *   of `add` calls. `aggregate` rows are sorted by events descending, then by the key values in
 *   `groupBy` order (exit codes as numbers, other values by UTF-16 code units).
 * - **Filters** are ANDed; `sinceMs` is inclusive and `untilMs` exclusive, both on the event's
 *   device time. A null product or group is the empty string in an aggregate key.
 *
 * ## Memory and complexity
 *
 * Per tenant, reports and events live in typed-array columns with strings interned in a
 * dictionary: about 22 bytes per event and 60 per report, plus each distinct string once (hostile
 * `detail` texts that are all different cost a dictionary entry each). The dedup index holds each
 * report ID once per device. `add` is O(k) for k events. `aggregate` and `events` are O(E) in the
 * tenant's events (a device filter: O(that device's events)); reports failing a report-level
 * filter (product, group, device, time window) are skipped without touching their events. When
 * reports arrived out of order, the next query sorts the tenant's reports once, O(R log R).
 * Nothing is evicted: retention belongs to the stream's max age and a rebuild.
 */
import type { DeviceGroupId, DeviceId, ProductId, TenantId } from '../../proto/codec/index.js';
import { NumberColumn, StringDictionary } from './columns.js';
import type { ErrorEvent, ErrorEventKind, ErrorReport } from './model.js';
import { ERROR_EVENT_KINDS } from './model.js';

/** A report as the service keeps it: the validated report plus who sent it and where it belongs. */
export interface StoredErrorReport {
  readonly tenantId: TenantId;
  readonly productId: ProductId | null;
  readonly groupId: DeviceGroupId | null;
  /** The authenticated sender; must equal `report.deviceId`. */
  readonly deviceId: DeviceId;
  /** Must equal `report.reportId`. */
  readonly reportId: string;
  readonly receivedAtMs: number;
  /** Already checked by `validateErrorReport`. */
  readonly report: ErrorReport;
}

export const GROUP_BY_DIMENSIONS = [
  'product',
  'group',
  'version',
  'kind',
  'component',
  'device',
  'exitCode',
] as const;
export type GroupByDimension = (typeof GROUP_BY_DIMENSIONS)[number];

export function isGroupByDimension(v: unknown): v is GroupByDimension {
  return typeof v === 'string' && (GROUP_BY_DIMENSIONS as readonly string[]).includes(v);
}

/** Which events a query is about; every given field must match. */
export interface ErrorEventFilter {
  /** Required: a tenant never sees another tenant's data. */
  readonly tenantId: TenantId;
  readonly productId?: ProductId;
  readonly groupId?: DeviceGroupId;
  readonly deviceId?: DeviceId;
  readonly kind?: ErrorEventKind;
  readonly component?: string;
  readonly version?: string;
  /** Inclusive, on event time. */
  readonly sinceMs?: number;
  /** Exclusive, on event time. */
  readonly untilMs?: number;
}

export interface ErrorAggregateQuery<D extends GroupByDimension = GroupByDimension> extends ErrorEventFilter {
  /** Dimensions of the key, in sort priority; repeats are ignored. Empty: one row of totals. */
  readonly groupBy: readonly D[];
}

export interface ErrorAggregateRow<D extends GroupByDimension = GroupByDimension> {
  readonly key: Readonly<Record<D, string>>;
  readonly events: number;
  /** Distinct devices with at least one counted event. */
  readonly devices: number;
  /** Distinct reports with at least one counted event. */
  readonly reports: number;
}

/** One stored event with where it came from (what an export writes). */
export interface ErrorEventRow extends ErrorEvent {
  readonly receivedAtMs: number;
  readonly tenantId: TenantId;
  readonly productId: ProductId | null;
  readonly groupId: DeviceGroupId | null;
  readonly deviceId: DeviceId;
  readonly reportId: string;
  /** Position of the event in its report. */
  readonly index: number;
}

export interface ErrorReportTotals {
  readonly reports: number;
  readonly events: number;
  /** Sum of the reports' `droppedEvents`: events devices lost before upload. */
  readonly droppedEvents: number;
  readonly devices: number;
}

/** Thrown by `add` for a stored report whose parts disagree (a wiring bug, not device input). */
export class ErrorReportStoreError extends Error {
  override readonly name = 'ErrorReportStoreError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const KIND_INDEX: ReadonlyMap<ErrorEventKind, number> = new Map(ERROR_EVENT_KINDS.map((k, i) => [k, i]));
const NONE = -1;

/** Orders report IDs by their non-numeric prefix, then their trailing number as a number. */
export function compareReportIds(a: string, b: string): number {
  const ma = /^(.*?)0*(\d*)$/.exec(a) as RegExpExecArray;
  const mb = /^(.*?)0*(\d*)$/.exec(b) as RegExpExecArray;
  const pa = ma[1] as string;
  const pb = mb[1] as string;
  if (pa !== pb) return pa < pb ? -1 : 1;
  const da = ma[2] as string;
  const db = mb[2] as string;
  if (da.length !== db.length) return da.length - db.length;
  if (da !== db) return da < db ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One tenant's reports and events, column-wise. Report r owns events [first(r), first(r) + count(r)). */
class TenantIndex {
  readonly strings = new StringDictionary();
  readonly rDevice = NumberColumn.int32();
  readonly rProduct = NumberColumn.int32();
  readonly rGroup = NumberColumn.int32();
  readonly rReportId = NumberColumn.int32();
  readonly rReceivedAt = NumberColumn.float64();
  readonly rFrom = NumberColumn.float64();
  readonly rTo = NumberColumn.float64();
  readonly rFirst = NumberColumn.float64();
  readonly rCount = NumberColumn.int32();
  readonly eKind = NumberColumn.uint8();
  readonly eComponent = NumberColumn.int32();
  readonly eVersion = NumberColumn.int32();
  readonly eExit = NumberColumn.uint8();
  readonly eAt = NumberColumn.float64();
  readonly eDetail = NumberColumn.int32();
  /** Report indexes in query order once `sorted`; replaced (never sorted in place) so running iterators keep theirs. */
  order: number[] = [];
  sorted = true;
  /** Report indexes per device index, in add order. */
  readonly byDevice = new Map<number, number[]>();
  droppedEvents = 0;

  readonly compare = (a: number, b: number): number =>
    this.rReceivedAt.at(a) - this.rReceivedAt.at(b) ||
    compareStrings(this.strings.get(this.rDevice.at(a)), this.strings.get(this.rDevice.at(b))) ||
    compareReportIds(this.strings.get(this.rReportId.at(a)), this.strings.get(this.rReportId.at(b)));

  add(s: StoredErrorReport): void {
    const r = this.rDevice.length;
    const device = this.strings.intern(s.deviceId);
    this.rDevice.push(device);
    this.rProduct.push(s.productId === null ? NONE : this.strings.intern(s.productId));
    this.rGroup.push(s.groupId === null ? NONE : this.strings.intern(s.groupId));
    this.rReportId.push(this.strings.intern(s.reportId));
    this.rReceivedAt.push(s.receivedAtMs);
    this.rFrom.push(s.report.fromMs);
    this.rTo.push(s.report.toMs);
    this.rFirst.push(this.eKind.length);
    this.rCount.push(s.report.events.length);
    for (const e of s.report.events) {
      this.eKind.push(KIND_INDEX.get(e.kind) as number);
      this.eComponent.push(this.strings.intern(e.component));
      this.eVersion.push(this.strings.intern(e.version));
      this.eExit.push(e.exitCode);
      this.eAt.push(e.atMs);
      this.eDetail.push(this.strings.intern(e.detail));
    }
    this.droppedEvents += s.report.droppedEvents;
    const last = this.order[this.order.length - 1];
    if (this.sorted && last !== undefined && this.compare(last, r) > 0) this.sorted = false;
    this.order.push(r);
    const mine = this.byDevice.get(device);
    if (mine === undefined) this.byDevice.set(device, [r]);
    else mine.push(r);
  }

  /** Candidate reports for a filter, in query order; a fresh or never-mutated-in-place array. */
  reports(f: ResolvedFilter): readonly number[] {
    if (f.device !== undefined) return [...(this.byDevice.get(f.device) ?? [])].sort(this.compare);
    if (!this.sorted) {
      this.order = [...this.order].sort(this.compare);
      this.sorted = true;
    }
    return this.order;
  }

  reportMatches(r: number, f: ResolvedFilter): boolean {
    return (
      (f.product === undefined || this.rProduct.at(r) === f.product) &&
      (f.group === undefined || this.rGroup.at(r) === f.group) &&
      (f.device === undefined || this.rDevice.at(r) === f.device) &&
      (f.sinceMs === undefined || this.rTo.at(r) >= f.sinceMs) &&
      (f.untilMs === undefined || this.rFrom.at(r) < f.untilMs)
    );
  }

  eventMatches(e: number, f: ResolvedFilter): boolean {
    return (
      (f.kind === undefined || this.eKind.at(e) === f.kind) &&
      (f.component === undefined || this.eComponent.at(e) === f.component) &&
      (f.version === undefined || this.eVersion.at(e) === f.version) &&
      (f.sinceMs === undefined || this.eAt.at(e) >= f.sinceMs) &&
      (f.untilMs === undefined || this.eAt.at(e) < f.untilMs)
    );
  }

  /** The numeric code of a dimension for event `e` of report `r`. */
  code(d: GroupByDimension, r: number, e: number): number {
    switch (d) {
      case 'product':
        return this.rProduct.at(r);
      case 'group':
        return this.rGroup.at(r);
      case 'device':
        return this.rDevice.at(r);
      case 'version':
        return this.eVersion.at(e);
      case 'component':
        return this.eComponent.at(e);
      case 'kind':
        return this.eKind.at(e);
      case 'exitCode':
        return this.eExit.at(e);
      default:
        return d satisfies never;
    }
  }

  /** The key value a dimension's code stands for. */
  render(d: GroupByDimension, code: number): string {
    switch (d) {
      case 'kind':
        return ERROR_EVENT_KINDS[code] as string;
      case 'exitCode':
        return String(code);
      default:
        return code === NONE ? '' : this.strings.get(code);
    }
  }
}

/** A filter in dictionary codes; `null` from {@link resolve} when some value was never stored. */
interface ResolvedFilter {
  readonly product?: number;
  readonly group?: number;
  readonly device?: number;
  readonly kind?: number;
  readonly component?: number;
  readonly version?: number;
  readonly sinceMs?: number;
  readonly untilMs?: number;
}

function resolve(t: TenantIndex, q: ErrorEventFilter): ResolvedFilter | null {
  const code = (s: string | undefined): number | undefined =>
    s === undefined ? undefined : t.strings.lookup(s);
  const kind = q.kind === undefined ? undefined : (KIND_INDEX.get(q.kind) ?? NONE);
  const f: ResolvedFilter = {
    product: code(q.productId),
    group: code(q.groupId),
    device: code(q.deviceId),
    kind,
    component: code(q.component),
    version: code(q.version),
    sinceMs: q.sinceMs,
    untilMs: q.untilMs,
  };
  const codes = [f.product, f.group, f.device, f.kind, f.component, f.version];
  return codes.includes(NONE) ? null : f;
}

interface Group {
  readonly r: number;
  readonly e: number;
  events: number;
  reports: number;
  lastReport: number;
  readonly devices: Set<number> | null;
}

/** In-memory index of stored error reports, per tenant. Single owner; not thread-safe. */
export class ErrorReportStore {
  readonly #tenants = new Map<TenantId, TenantIndex>();
  /** Report IDs seen per device, across tenants. */
  readonly #seen = new Map<DeviceId, Set<string>>();

  /**
   * Stores a validated report, or recognises it as a duplicate of one stored before (same device
   * and report ID), in which case nothing changes. Throws {@link ErrorReportStoreError} when the
   * sender or report ID disagree with the report, or the receive time is not an integer ≥ 0.
   */
  add(stored: StoredErrorReport): 'stored' | 'duplicate' {
    if (stored.deviceId !== stored.report.deviceId)
      throw new ErrorReportStoreError(`report ${stored.reportId} names another device than its sender`);
    if (stored.reportId !== stored.report.reportId)
      throw new ErrorReportStoreError(`reportId ${stored.reportId} differs from the report's own`);
    if (!Number.isSafeInteger(stored.receivedAtMs) || stored.receivedAtMs < 0)
      throw new ErrorReportStoreError(`receivedAtMs must be an integer >= 0, got ${stored.receivedAtMs}`);
    let seen = this.#seen.get(stored.deviceId);
    if (seen === undefined) {
      seen = new Set();
      this.#seen.set(stored.deviceId, seen);
    } else if (seen.has(stored.reportId)) return 'duplicate';
    seen.add(stored.reportId);
    let t = this.#tenants.get(stored.tenantId);
    if (t === undefined) {
      t = new TenantIndex();
      this.#tenants.set(stored.tenantId, t);
    }
    t.add(stored);
    return 'stored';
  }

  has(deviceId: DeviceId, reportId: string): boolean {
    return this.#seen.get(deviceId)?.has(reportId) ?? false;
  }

  /** Tenants with at least one stored report, in first-stored order. */
  tenantIds(): TenantId[] {
    return [...this.#tenants.keys()];
  }

  totals(tenantId: TenantId): ErrorReportTotals {
    const t = this.#tenants.get(tenantId);
    if (t === undefined) return { reports: 0, events: 0, droppedEvents: 0, devices: 0 };
    return {
      reports: t.rDevice.length,
      events: t.eKind.length,
      droppedEvents: t.droppedEvents,
      devices: t.byDevice.size,
    };
  }

  /**
   * Counts the tenant's matching events per distinct key of the `groupBy` dimensions. No row
   * for a key without events; no rows at all when nothing matches.
   */
  aggregate<D extends GroupByDimension>(q: ErrorAggregateQuery<D>): ErrorAggregateRow<D>[] {
    const dims = [...new Set(q.groupBy)];
    const bad = dims.find((d) => !isGroupByDimension(d));
    if (bad !== undefined) throw new RangeError(`unknown groupBy dimension ${JSON.stringify(bad)}`);
    const t = this.#tenants.get(q.tenantId);
    const f = t === undefined ? null : resolve(t, q);
    if (t === undefined || f === null) return [];
    const byDevice = dims.includes('device' as D);
    const groups = new Map<string, Group>();
    const codes: number[] = dims.map(() => 0);
    for (const r of t.reports(f)) {
      if (!t.reportMatches(r, f)) continue;
      const first = t.rFirst.at(r);
      const end = first + t.rCount.at(r);
      for (let e = first; e < end; e++) {
        if (!t.eventMatches(e, f)) continue;
        for (let j = 0; j < dims.length; j++) codes[j] = t.code(dims[j] as D, r, e);
        const k = codes.join(',');
        let g = groups.get(k);
        if (g === undefined) {
          g = { r, e, events: 0, reports: 0, lastReport: NONE, devices: byDevice ? null : new Set() };
          groups.set(k, g);
        }
        g.events++;
        g.devices?.add(t.rDevice.at(r));
        if (g.lastReport !== r) {
          g.reports++;
          g.lastReport = r;
        }
      }
    }
    const rows = [...groups.values()].map((g): ErrorAggregateRow<D> => {
      const key = {} as Record<D, string>;
      for (const d of dims) key[d] = t.render(d, t.code(d, g.r, g.e));
      return { key, events: g.events, devices: g.devices?.size ?? 1, reports: g.reports };
    });
    return rows.sort((a, b) => {
      if (a.events !== b.events) return b.events - a.events;
      for (const d of dims) {
        const c = d === 'exitCode' ? Number(a.key[d]) - Number(b.key[d]) : compareStrings(a.key[d], b.key[d]);
        if (c !== 0) return c;
      }
      return 0;
    });
  }

  /**
   * The tenant's matching events, lazily, in the stable order described above. Sees the reports
   * stored when iteration started (reports added meanwhile may or may not appear).
   */
  *events(q: ErrorEventFilter): Generator<ErrorEventRow, void, undefined> {
    const t = this.#tenants.get(q.tenantId);
    const f = t === undefined ? null : resolve(t, q);
    if (t === undefined || f === null) return;
    const reports = t.reports(f);
    const n = reports.length;
    for (let i = 0; i < n; i++) {
      const r = reports[i] as number;
      if (!t.reportMatches(r, f)) continue;
      const first = t.rFirst.at(r);
      const count = t.rCount.at(r);
      const receivedAtMs = t.rReceivedAt.at(r);
      const product = t.rProduct.at(r);
      const productId = product === NONE ? null : (t.strings.get(product) as ProductId);
      const group = t.rGroup.at(r);
      const groupId = group === NONE ? null : (t.strings.get(group) as DeviceGroupId);
      const deviceId = t.strings.get(t.rDevice.at(r)) as DeviceId;
      const reportId = t.strings.get(t.rReportId.at(r));
      for (let index = 0; index < count; index++) {
        const e = first + index;
        if (!t.eventMatches(e, f)) continue;
        // Listed field by field: an object spread here is two orders of magnitude slower in V8.
        yield {
          receivedAtMs,
          tenantId: q.tenantId,
          productId,
          groupId,
          deviceId,
          reportId,
          index,
          kind: ERROR_EVENT_KINDS[t.eKind.at(e)] as ErrorEventKind,
          component: t.strings.get(t.eComponent.at(e)),
          version: t.strings.get(t.eVersion.at(e)),
          exitCode: t.eExit.at(e),
          atMs: t.eAt.at(e),
          detail: t.strings.get(t.eDetail.at(e)),
        };
      }
    }
  }
}
