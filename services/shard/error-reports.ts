import { REJECT_CODES } from '../../proto/codec/index.js';
import type {
  DeviceGroupId,
  DeviceId,
  ErrorReportAckMsg,
  ErrorReportUploadMsg,
  Rejection,
  Reply,
  TenantId,
} from '../../proto/codec/index.js';
import type { ServiceMetrics } from '../metrics/index.js';
import { validateErrorReport } from '../error-reports/index.js';

/** Where a device stands when its report arrives: whose it is, or why it may not report. */
export interface ReportingDevice {
  readonly tenantId: TenantId;
  readonly groupId: DeviceGroupId | null;
  readonly productId: string | null;
}

/** What the error-report service reads from (and writes through) the rest of the shard. */
export interface ErrorReportDeps {
  readonly metrics: ServiceMetrics;
  device(deviceId: DeviceId): Promise<ReportingDevice | Rejection>;
  /** Whether the report is already stored (applied from the journal). */
  has(deviceId: DeviceId, reportId: string): boolean;
  /**
   * Journals the report under its report ID and resolves once it is applied: `stored`, or
   * `duplicate` when the journal already held it (an upload whose acknowledgement was lost).
   */
  commit(device: ReportingDevice, report: ErrorReportUploadMsg): Promise<'stored' | 'duplicate'>;
}

/** The device-facing error-report upload (transport-free). */
export interface ErrorReportService {
  /** Resolves once the report is durably stored (acknowledge only then). */
  store(report: ErrorReportUploadMsg): Promise<Reply<ErrorReportAckMsg>>;
}

/**
 * Error reports are stored in the journal (a JetStream stream) under the ID
 * `error-<device>-<report>`: JetStream drops a repeat within its duplicate window, and a repeat
 * after it is recognised here because every shard holds the index of stored reports. So a device
 * that repeats a report until acknowledged gets it stored exactly once, whichever shard answers.
 */
export function createErrorReportService(deps: ErrorReportDeps): ErrorReportService {
  const { metrics } = deps;
  const answer = (result: 'stored' | 'duplicate', r: ErrorReportUploadMsg): Reply<ErrorReportAckMsg> => {
    metrics.errorReportUploads.inc({ result, reason: 'OK' });
    if (result === 'stored') for (const e of r.events) metrics.errorEvents.inc({ kind: e.kind });
    return { ok: true, value: { reportId: r.reportId, duplicate: result === 'duplicate' } };
  };
  // Refusals are counted where every op's are: by the device gateway.
  const refused = (error: Rejection): Reply<ErrorReportAckMsg> => ({ ok: false, error });
  return {
    async store(r) {
      // Beyond the decoder's field checks: event order, kind against component, the sender.
      const valid = validateErrorReport(r, { deviceId: r.deviceId });
      if (!valid.ok) return refused({ code: REJECT_CODES.MALFORMED_INPUT, message: valid.error.message });
      const device = await deps.device(r.deviceId);
      if ('code' in device) return refused(device);
      if (deps.has(r.deviceId, r.reportId)) return answer('duplicate', r);
      try {
        return answer(await deps.commit(device, r), r);
      } catch (e) {
        return refused({
          code: REJECT_CODES.OVERLOADED,
          message: `report not stored (${e instanceof Error ? e.message : String(e)}); keep it and retry`,
        });
      }
    },
  };
}
