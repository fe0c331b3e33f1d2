/**
 * How a shard raises alerts: refusals worth one, and what threat detection concludes from the
 * security events the shard sees. Both are stored in the journal as `alert` records; every shard
 * applies them into its {@link AlertLog} (so ListAlerts and WatchAlerts answer the same anywhere),
 * and the alert's delivering shard counts it and POSTs it to the tenant's webhook.
 */
import type { ThreatDetector } from '../detection/index.js';
import type { DetectedAlert, SecurityEvent } from '../detection/index.js';
import type { JournalRecord } from '../journal/index.js';
import type { ServiceMetrics } from '../metrics/index.js';
import type { RejectCode, TenantId } from '../../proto/codec/index.js';
import { ALERT_SEVERITY, OPERATOR_ALERT_SEVERITY } from '../registry/index.js';
import type { OperatorAlertType, Severity } from '../registry/index.js';

const severityOf = (type: RejectCode | OperatorAlertType): Severity =>
  type === 'TENANT_CROSSING' ? OPERATOR_ALERT_SEVERITY[type] : ALERT_SEVERITY[type];

export type AlertRecord = Extract<JournalRecord, { t: 'alert' }>;

/** A refusal that raises an alert. */
export interface RefusalAlert {
  readonly tenantId: TenantId | null;
  readonly type: RejectCode | OperatorAlertType;
  /** The sender, or the device the request named when the sender is unknown; `''` if neither. */
  readonly deviceId: string;
  readonly atMs: number;
  readonly message: string;
  readonly evidence: Readonly<Record<string, string>>;
}

/** What the rest of the shard tells about security. */
export interface AlertPort {
  /**
   * A refusal worth an alert: counted at once; stored unless the same tenant, type and device
   * had one stored less than `refusalIntervalMs` ago (the next one stored says how many were
   * folded into it), so a flood costs the journal one record per device and type a second.
   */
  refusal(a: RefusalAlert): void;
  /** Feeds threat detection; alerts it raises are stored under their deterministic ids. */
  observe(e: SecurityEvent): void;
}

export interface AlertServiceDeps {
  /** Appends to the journal under `id` (a repeat of an id is stored once). */
  readonly append: (record: AlertRecord, id: string) => Promise<unknown>;
  readonly metrics: ServiceMetrics;
  /** `null` turns threat detection off. */
  readonly detector: ThreatDetector | null;
  /** Unique to this shard process (ids of refusal alerts are `a-<prefix>-<n>`). */
  readonly idPrefix: string;
  /** Wall ms, for the refusal interval only (a flood is a matter of wall time, not simulated). */
  readonly wallNow: () => number;
  readonly refusalIntervalMs?: number;
  /** Whether an alert with this id is already stored (applied from the journal). */
  readonly known: (id: string) => boolean;
}

/** Keys of refusals remembered for folding; beyond this the table starts afresh. */
const MAX_FOLD_KEYS = 100_000;

export function createAlertService(deps: AlertServiceDeps): AlertPort & {
  /** Drops detection state older than its windows (call now and then with simulated time). */
  prune(nowMs: number): void;
  /**
   * The shard has replayed the journal. Until then, findings are held: replayed events raise
   * again what was found before the restart, whose alert records come later in the journal;
   * held findings are stored now unless their alert was among them.
   */
  caughtUp(): void;
} {
  const { metrics } = deps;
  const interval = deps.refusalIntervalMs ?? 1000;
  let n = 0;
  /** Per tenant/type/device: wall time of the last stored alert, refusals folded since, the last of them. */
  const folded = new Map<string, { atWall: number; folded: number; last: RefusalAlert }>();

  const store = (record: AlertRecord): void => {
    deps.append(record, record.id).then(
      () => metrics.alertWrites.inc({ result: 'ok' }),
      (e: unknown) => {
        metrics.alertWrites.inc({ result: 'error' });
        console.error(
          `shard: alert ${record.id} (${record.type}) not stored:`,
          e instanceof Error ? e.message : e,
        );
      },
    );
  };

  /** Findings made while replaying the journal, by id (see caughtUp). */
  let held: Map<string, DetectedAlert> | null = new Map();
  const stored = (a: DetectedAlert): void => {
    if (deps.known(a.id)) return;
    if (held !== null) held.set(a.id, a);
    else store({ t: 'alert', ...a, tenantId: a.tenantId });
  };

  const storeRefusal = (a: RefusalAlert, foldedBefore: number): void => {
    store({
      t: 'alert',
      id: `a-${deps.idPrefix}-${(++n).toString(36)}`,
      tenantId: a.tenantId,
      type: a.type,
      severity: severityOf(a.type),
      deviceId: a.deviceId,
      atMs: a.atMs,
      message: a.message,
      evidence: foldedBefore > 0 ? { ...a.evidence, folded_since_last: String(foldedBefore) } : a.evidence,
    });
  };

  return {
    refusal(a) {
      metrics.alerts.inc({ type: a.type, severity: severityOf(a.type) });
      const key = `${a.tenantId ?? ''}\u0000${a.type}\u0000${a.deviceId}`;
      const now = deps.wallNow();
      const prev = folded.get(key);
      if (prev !== undefined && now - prev.atWall < interval) {
        prev.folded++;
        prev.last = a;
        metrics.alertsFolded.inc({ type: a.type });
        return;
      }
      if (folded.size >= MAX_FOLD_KEYS) folded.clear();
      folded.set(key, { atWall: now, folded: 0, last: a });
      storeRefusal(a, prev?.folded ?? 0);
    },
    observe(e) {
      if (deps.detector === null) return;
      for (const a of deps.detector.observe(e)) {
        if (held === null) metrics.detections.inc({ type: a.type });
        stored(a);
      }
    },
    caughtUp() {
      const replayed = held;
      held = null;
      for (const a of replayed?.values() ?? []) {
        if (deps.known(a.id)) continue;
        metrics.detections.inc({ type: a.type });
        stored(a);
      }
    },
    prune(nowMs) {
      deps.detector?.prune(nowMs);
      const now = deps.wallNow();
      for (const [key, v] of folded) {
        if (now - v.atWall < interval) continue;
        // Refusals folded after the last stored alert and not followed by another: stored now,
        // as the last of them with the count, so a burst's tail is never lost.
        if (v.folded > 0) storeRefusal(v.last, v.folded);
        folded.delete(key);
      }
    },
  };
}
