import {
  parseDeviceGroupId,
  parseDeviceId,
  parseProductId,
  parseTenantId,
} from '../../../proto/codec/index.js';
import type { DeviceGroupId, DeviceId, ProductId, TenantId } from '../../../proto/codec/index.js';
import type { ErrorEvent, ErrorReport, StoredErrorReport } from '../../../services/error-reports/index.js';
import { DAY_MS } from '../../../services/error-reports/index.js';

export const HOUR_MS = 60 * 60 * 1000;
/** 2025-01-01T00:00:00Z: a readable simulated epoch. */
export const T0 = Date.UTC(2025, 0, 1);

export function day(n: number): number {
  return T0 + n * DAY_MS;
}

export function deviceId(n: number): DeviceId {
  return parseDeviceId(n.toString(16).padStart(128, '0')) as DeviceId;
}

export function tenantId(n: number): TenantId {
  return parseTenantId(`t-${n.toString(16).padStart(16, '0')}`) as TenantId;
}

export function productId(n: number): ProductId {
  return parseProductId(`p-${n.toString(16).padStart(16, '0')}`) as ProductId;
}

export function groupId(n: number): DeviceGroupId {
  return parseDeviceGroupId(`g-${n.toString(16).padStart(16, '0')}`) as DeviceGroupId;
}

export function event(atMs: number, over: Partial<ErrorEvent> = {}): ErrorEvent {
  return {
    kind: 'app-crash',
    component: 'thermostat',
    version: '1.2.0',
    exitCode: 0,
    atMs,
    detail: 'SIGSEGV',
    ...over,
  };
}

export function report(
  device: DeviceId,
  reportId: string,
  events: readonly ErrorEvent[],
  droppedEvents = 0,
): ErrorReport {
  const times = events.map((e) => e.atMs);
  return {
    reportId,
    deviceId: device,
    fromMs: times.length > 0 ? Math.min(...times) : T0,
    toMs: times.length > 0 ? Math.max(...times) : T0,
    events: [...events].sort((a, b) => a.atMs - b.atMs),
    droppedEvents,
  };
}

export function stored(
  r: ErrorReport,
  where: {
    tenant?: TenantId;
    product?: ProductId | null;
    group?: DeviceGroupId | null;
    receivedAtMs?: number;
  } = {},
): StoredErrorReport {
  return {
    tenantId: where.tenant ?? tenantId(1),
    productId: where.product === undefined ? productId(1) : where.product,
    groupId: where.group === undefined ? groupId(1) : where.group,
    deviceId: r.deviceId,
    reportId: r.reportId,
    receivedAtMs: where.receivedAtMs ?? r.toMs,
    report: r,
  };
}

/**
 * A small, strict RFC 4180 parser (CRLF record ends, quoted fields with doubled quotes), so the
 * tests read the CSV back the way a spreadsheet would. Throws on anything RFC 4180 does not allow.
 */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let i = 0;
  if (!text.endsWith('\r\n')) throw new Error('CSV must end with CRLF');
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new Error('unterminated quoted field');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            i++;
            break;
          }
        } else field += text[i++];
      }
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
        if (text[i] === '"') throw new Error(`bare quote at ${i}`);
        field += text[i++];
      }
    }
    record.push(field);
    if (text[i] === ',') i++;
    else if (text.startsWith('\r\n', i)) {
      records.push(record);
      record = [];
      i += 2;
    } else throw new Error(`unexpected ${JSON.stringify(text[i])} at ${i}`);
  }
  return records;
}
