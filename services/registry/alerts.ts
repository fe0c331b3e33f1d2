import type { RejectCode, TenantId } from '../../proto/codec/index.js';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** How serious each rejection is when it becomes an alert. */
export const ALERT_SEVERITY: Readonly<Record<RejectCode, Severity>> = {
  MALFORMED_INPUT: 'medium',
  PAYLOAD_TOO_LARGE: 'medium',
  UNKNOWN_DEVICE: 'high',
  DEVICE_NOT_CLAIMED: 'low',
  BAD_SIGNATURE: 'critical',
  NONCE_UNKNOWN: 'high',
  NONCE_STALE: 'medium',
  NONCE_REUSED: 'high',
  MEASUREMENT_MISMATCH: 'critical',
  BELOW_MIN_VERSION: 'medium',
  DUPLICATE_IDENTITY: 'critical',
  CLOCK_SKEW: 'low',
  UNKNOWN_DEPLOYMENT: 'low',
  NOT_OFFERED: 'medium',
  OUT_OF_RANGE: 'low',
  UPDATE_VERIFICATION_FAILED: 'critical',
  SESSION_EXPIRED: 'low',
  BAD_MAC: 'critical',
  REPLAYED: 'high',
  IDENTITY_MISMATCH: 'critical',
  RATE_LIMITED: 'medium',
  OVERLOADED: 'low',
  INTERNAL: 'medium',
};

export interface Alert {
  /** Position in the log; strictly increasing. */
  readonly seq: number;
  readonly id: string;
  /** `null` for alerts about senders no tenant owns (visible to the service admin only). */
  readonly tenantId: TenantId | null;
  readonly type: RejectCode;
  readonly severity: Severity;
  /** Empty when the sender could not be identified (e.g. undecodable bytes). */
  readonly deviceId: string;
  readonly atMs: number;
  readonly message: string;
  readonly evidence: Readonly<Record<string, string>>;
}

export interface AlertQuery {
  readonly tenantId: TenantId | null;
  readonly sinceMs: number;
  readonly afterSeq: number;
  readonly limit: number;
  readonly deviceId?: string;
  readonly type?: string;
}

/**
 * Alerts per tenant, newest last, each tenant's log capped at `capacity` (oldest dropped and
 * counted). In memory for now; the durable store arrives with error reports (issue 5).
 */
export class AlertLog {
  readonly #byTenant = new Map<TenantId | null, Alert[]>();
  readonly #capacity: number;
  #seq = 0;
  #dropped = 0;

  constructor(capacity = 100_000) {
    this.#capacity = capacity;
  }

  raise(a: Omit<Alert, 'seq' | 'id' | 'severity'>): Alert {
    const seq = ++this.#seq;
    const alert: Alert = {
      ...a,
      seq,
      id: `a-${seq.toString(36).padStart(8, '0')}`,
      severity: ALERT_SEVERITY[a.type],
    };
    let log = this.#byTenant.get(a.tenantId);
    if (log === undefined) {
      log = [];
      this.#byTenant.set(a.tenantId, log);
    }
    log.push(alert);
    if (log.length > this.#capacity) {
      log.splice(0, log.length - this.#capacity);
      this.#dropped++;
    }
    return alert;
  }

  /** A page of one tenant's alerts, oldest first, strictly after `afterSeq`. */
  list(q: AlertQuery): { alerts: Alert[]; nextSeq: number | null } {
    const log = this.#byTenant.get(q.tenantId) ?? [];
    const out: Alert[] = [];
    // Binary search for the first seq after afterSeq: logs are sorted by seq.
    let lo = 0;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((log[mid]?.seq ?? 0) <= q.afterSeq) lo = mid + 1;
      else hi = mid;
    }
    let i = lo;
    for (; i < log.length && out.length < q.limit; i++) {
      const a = log[i];
      if (a === undefined || a.atMs < q.sinceMs) continue;
      if (q.deviceId !== undefined && a.deviceId !== q.deviceId) continue;
      if (q.type !== undefined && a.type !== q.type) continue;
      out.push(a);
    }
    const last = out[out.length - 1];
    return { alerts: out, nextSeq: i < log.length && last !== undefined ? last.seq : null };
  }

  count(tenantId: TenantId | null): number {
    return this.#byTenant.get(tenantId)?.length ?? 0;
  }

  get dropped(): number {
    return this.#dropped;
  }
}
