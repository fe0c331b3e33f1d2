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

/**
 * Alerts the operator API raises: `TENANT_CROSSING`, a tenant's call named a device another
 * tenant owns (read, claim or assign); the owner is alerted, the caller told only "not found".
 */
export const OPERATOR_ALERT_SEVERITY = { TENANT_CROSSING: 'high' } as const satisfies Record<
  string,
  Severity
>;
export type OperatorAlertType = keyof typeof OPERATOR_ALERT_SEVERITY;

export interface Alert {
  /** Position in the journal, so the same on every shard; strictly increasing per tenant. */
  readonly seq: number;
  readonly id: string;
  /** `null` for alerts about senders no tenant owns (visible to the service admin only). */
  readonly tenantId: TenantId | null;
  /** A rejection code, or a detection type (CLONED_IDENTITY, DEVICE_FLOODING, ...). */
  readonly type: string;
  readonly severity: Severity;
  /** Empty when the sender could not be identified (e.g. undecodable bytes) or for fleet-level findings. */
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

/** One tenant's log: held alerts in seq order; ordinals count every alert ever added, from 1. */
interface TenantLog {
  readonly alerts: Alert[];
  /** Alerts dropped from the front (the held ones have ordinals `evicted + 1 ...`). */
  evicted: number;
  /** Seq of the newest dropped alert (0 if none). */
  lastEvictedSeq: number;
}

/** What {@link AlertLog.read} returns: held alerts from an ordinal on, and how many were dropped before them. */
export interface AlertRead {
  readonly alerts: Alert[];
  /** Alerts at or after the ordinal asked for that were dropped before they could be read. */
  readonly missed: number;
  /** The ordinal to read from next. */
  readonly next: number;
}

/**
 * Alerts per tenant as the journal stores them (every shard applies every alert record, in
 * journal order, so every shard holds the same log with the same `seq`s), each tenant's log capped
 * at `capacity` (oldest dropped and counted). An id already held is not added again: two shards
 * detecting the same thing store it under one id, and replays of the journal add nothing twice.
 */
export class AlertLog {
  readonly #byTenant = new Map<TenantId | null, TenantLog>();
  readonly #ids = new Set<string>();
  readonly #listeners = new Map<TenantId | null, Set<(a: Alert) => void>>();
  readonly #capacity: number;
  #dropped = 0;

  constructor(capacity = 100_000) {
    this.#capacity = capacity;
  }

  #log(tenantId: TenantId | null): TenantLog {
    let log = this.#byTenant.get(tenantId);
    if (log === undefined) {
      log = { alerts: [], evicted: 0, lastEvictedSeq: 0 };
      this.#byTenant.set(tenantId, log);
    }
    return log;
  }

  /**
   * Adds a stored alert; `false` if its id is already held. `seq` must grow from call to call
   * (the journal's order). Listeners of its tenant hear of it at once, in the caller's turn.
   */
  /** Whether an alert with this id was added. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(alert: Alert): boolean {
    if (this.#ids.has(alert.id)) return false;
    this.#ids.add(alert.id);
    const log = this.#log(alert.tenantId);
    log.alerts.push(alert);
    if (log.alerts.length > this.#capacity) {
      const gone = log.alerts.splice(0, log.alerts.length - this.#capacity);
      for (const old of gone) this.#ids.delete(old.id);
      log.evicted += gone.length;
      log.lastEvictedSeq = gone[gone.length - 1]?.seq ?? log.lastEvictedSeq;
      this.#dropped += gone.length;
    }
    for (const listen of this.#listeners.get(alert.tenantId) ?? []) listen(alert);
    return true;
  }

  /** Calls `listen` for each alert of `tenantId` added from now on; returns the unsubscribe. */
  subscribe(tenantId: TenantId | null, listen: (a: Alert) => void): () => void {
    let set = this.#listeners.get(tenantId);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(tenantId, set);
    }
    set.add(listen);
    return () => {
      set.delete(listen);
      if (set.size === 0 && this.#listeners.get(tenantId) === set) this.#listeners.delete(tenantId);
    };
  }

  /** Index of the first held alert with a seq above `afterSeq`. */
  #indexAfter(alerts: readonly Alert[], afterSeq: number): number {
    let lo = 0;
    let hi = alerts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((alerts[mid]?.seq ?? 0) <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A page of one tenant's alerts, oldest first, strictly after `afterSeq`. */
  list(q: AlertQuery): { alerts: Alert[]; nextSeq: number | null } {
    const log = this.#byTenant.get(q.tenantId)?.alerts ?? [];
    const out: Alert[] = [];
    let i = this.#indexAfter(log, q.afterSeq);
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

  /**
   * The ordinal to {@link read} from for the alerts after `afterSeq` (the tenant's newest when
   * `afterSeq` is `Infinity`). When alerts after `afterSeq` were already dropped, how many is not
   * known exactly: reading then starts at the oldest dropped one, so `missed` is an upper bound.
   */
  ordinalAfter(tenantId: TenantId | null, afterSeq: number): number {
    const log = this.#byTenant.get(tenantId);
    if (log === undefined) return 1;
    if (afterSeq < log.lastEvictedSeq) return 1;
    return log.evicted + 1 + this.#indexAfter(log.alerts, afterSeq);
  }

  /** Up to `max` of the tenant's alerts from ordinal `from` on (unfiltered), oldest first. */
  read(tenantId: TenantId | null, from: number, max: number): AlertRead {
    const log = this.#byTenant.get(tenantId);
    if (log === undefined) return { alerts: [], missed: 0, next: from };
    const missed = Math.max(0, log.evicted + 1 - from);
    const start = Math.max(0, from - log.evicted - 1);
    const alerts = log.alerts.slice(start, start + max);
    return { alerts, missed, next: log.evicted + 1 + start + alerts.length };
  }

  count(tenantId: TenantId | null): number {
    return this.#byTenant.get(tenantId)?.alerts.length ?? 0;
  }

  /** Alerts dropped to stay within the capacity, over all tenants. */
  get dropped(): number {
    return this.#dropped;
  }
}
