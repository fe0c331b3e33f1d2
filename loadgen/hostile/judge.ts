/**
 * Judging hostile traffic: what each attempt's answer means (refused with its code, accepted,
 * unanswered), which refusals the sender's tenant must see as alerts, and the report rows.
 * Pure: the attempts' outcomes and the alerts found are the caller's.
 */
import { floodAllowance } from '../scenario/index.js';
import type { AttacksConfig, DeviceRateLimit } from '../scenario/index.js';
import { hostileRowPasses } from '../report/index.js';
import type { HostileProfileRow, HostileSummary } from '../report/index.js';
import { VARIANT_CONTRACTS, expectedCodesOf } from './plan.js';
import type { PlannedAttempt } from './plan.js';

/** How one attempt ended. */
export type AttemptOutcome =
  | { readonly kind: 'refused'; readonly code: string; readonly message: string }
  | { readonly kind: 'accepted'; readonly detail: string }
  | { readonly kind: 'no-answer'; readonly reason: string }
  | { readonly kind: 'skipped'; readonly reason: string };

/** One attempt made, and its outcome. */
export interface AttemptRecord {
  readonly attempt: PlannedAttempt;
  readonly outcome: AttemptOutcome;
  /**
   * The device whose own session sealed the attempt (the service can prove it sent it, and
   * alerts its tenant about it), or `null` when the sender is unauthenticated.
   */
  readonly sender: string | null;
  /** Simulated ms (service clock) when it was sent. */
  readonly sentAtMs: number;
  /** Simulated ms when its outcome was known (the service decided in between). */
  readonly answeredAtMs: number;
  /**
   * The run tenant's device an operator call of another tenant named (tenantCrossing read, claim,
   * assign): its tenant must see a TENANT_CROSSING alert about it.
   */
  readonly target?: string;
}

/**
 * Refusals the service decides past a verified MAC, so it knows the sender: each is alerted to
 * the sender's tenant, naming the sender device.
 */
export const TENANT_ALERTED_CODES: readonly string[] = [
  'IDENTITY_MISMATCH',
  'REPLAYED',
  'RATE_LIMITED',
  'SESSION_EXPIRED',
];

/** Device refusals of a sender nobody authenticated: alerted to no tenant (the service admin's view). */
export const UNATTRIBUTED_CODES: readonly string[] = ['BAD_MAC', 'MALFORMED_INPUT', 'PAYLOAD_TOO_LARGE'];

/**
 * Refusals that a request can only get after the session layer let it through (the update
 * service answered it): for an attack, they mean it was accepted.
 */
export const PAST_THE_SESSION_CODES: readonly string[] = [
  'UNKNOWN_DEPLOYMENT',
  'NOT_OFFERED',
  'OUT_OF_RANGE',
];

/** Alerts a tenant must show: `count` of `type` naming `deviceId`. */
export interface AlertDemand {
  readonly deviceId: string;
  readonly type: string;
  readonly count: number;
}

/** The key of an {@link AlertDemand} (and of the alerts found for it). */
export const alertKey = (deviceId: string, type: string): string => `${deviceId} ${type}`;

/** What a tenant's alerts show for one demand: alert records, and the refusals they account for. */
export interface AlertsFound {
  readonly alerts: number;
  /** Each alert stands for itself and the refusals folded into it (`folded_since_last`). */
  readonly covered: number;
}

/** Whether the sender's tenant must see an alert for this record. */
function tenantAlerted(r: AttemptRecord): r is AttemptRecord & { sender: string } {
  return r.outcome.kind === 'refused' && r.sender !== null && TENANT_ALERTED_CODES.includes(r.outcome.code);
}

/** The alerts the run's tenant must show for `records`, one demand per (sender, code). */
export function alertDemand(records: readonly AttemptRecord[]): AlertDemand[] {
  const counts = new Map<string, AlertDemand>();
  const demand = (deviceId: string, type: string): void => {
    const key = alertKey(deviceId, type);
    counts.set(key, { deviceId, type, count: (counts.get(key)?.count ?? 0) + 1 });
  };
  for (const r of records) {
    if (r.outcome.kind !== 'refused') continue;
    if (tenantAlerted(r)) demand(r.sender, r.outcome.code);
    if (r.target !== undefined) demand(r.target, 'TENANT_CROSSING');
  }
  return [...counts.values()];
}

/**
 * The report rows: per profile of `config`, its attempts' outcomes and the alerts `found` (per
 * {@link alertKey}: the alerts of that type naming that device). A flood's accepted
 * requests count as within budget up to {@link floodAllowance} per device, from its first
 * request sent to its last answered (the service decided each in between); the rest were
 * accepted past the budget.
 */
export function judgeHostile(
  config: AttacksConfig,
  records: readonly AttemptRecord[],
  found: ReadonlyMap<string, AlertsFound>,
  rateLimit: DeviceRateLimit,
): HostileSummary {
  const profiles = config.profiles.map((spec): HostileProfileRow => {
    const mine = records.filter((r) => r.attempt.profile === spec.profile);
    const notes: string[] = [];
    const note = (text: string): void => {
      if (notes.length < 4 && !notes.includes(text)) notes.push(text);
    };
    const refused: Record<string, number> = {};
    let unexpectedRefusals = 0;
    let accepted = 0;
    let noAnswer = 0;
    let skipped = Math.max(0, spec.attempts - mine.length);
    if (skipped > 0) note(`${skipped} of ${spec.attempts} attempts were not made before the run ended`);
    let unattributedRefusals = 0;
    const flood = new Map<string, { accepted: number; first: number; last: number }>();
    for (const r of mine) {
      const o = r.outcome;
      if (spec.profile === 'flood' && r.sender !== null) {
        const f = flood.get(r.sender) ?? { accepted: 0, first: r.sentAtMs, last: r.answeredAtMs };
        f.first = Math.min(f.first, r.sentAtMs);
        f.last = Math.max(f.last, r.answeredAtMs);
        if (o.kind === 'accepted') f.accepted++;
        flood.set(r.sender, f);
      }
      switch (o.kind) {
        case 'refused': {
          refused[o.code] = (refused[o.code] ?? 0) + 1;
          if (!VARIANT_CONTRACTS[r.attempt.variant].expected.includes(o.code)) {
            unexpectedRefusals++;
            note(
              `${r.attempt.variant}: refused ${o.code} (expected ${VARIANT_CONTRACTS[r.attempt.variant].expected.join('|')}): ${o.message}`,
            );
          } else if (UNATTRIBUTED_CODES.includes(o.code)) unattributedRefusals++;
          break;
        }
        case 'accepted':
          if (spec.profile !== 'flood' || r.sender === null) {
            accepted++;
            note(`${r.attempt.variant}: ACCEPTED: ${o.detail}`);
          }
          break;
        case 'no-answer':
          noAnswer++;
          break;
        case 'skipped':
          skipped++;
          note(`${r.attempt.variant}: not attempted: ${o.reason}`);
          break;
        default:
          o satisfies never;
      }
    }
    let withinBudget = 0;
    for (const [device, f] of flood) {
      const allowed = Math.min(f.accepted, floodAllowance(rateLimit, f.last - f.first));
      withinBudget += allowed;
      if (f.accepted > allowed) {
        accepted += f.accepted - allowed;
        note(
          `flood: device ${device.slice(0, 16)}… had ${f.accepted} requests accepted, its budget allows ${allowed}`,
        );
      }
    }
    let tenantAlerted = 0;
    let alertPairs = 0;
    let alertPairsFound = 0;
    let alertsRead = 0;
    let refusalsCovered = 0;
    for (const d of alertDemand(mine)) {
      const seen = found.get(alertKey(d.deviceId, d.type)) ?? { alerts: 0, covered: 0 };
      tenantAlerted += d.count;
      alertPairs++;
      alertsRead += seen.alerts;
      refusalsCovered += Math.min(d.count, seen.covered);
      if (seen.alerts > 0) alertPairsFound++;
      else
        note(
          `no ${d.type} alert names device ${d.deviceId.slice(0, 16)}… in its tenant's alerts (${d.count} refusals)`,
        );
    }
    const counts = {
      profile: spec.profile,
      attempts: Math.max(spec.attempts, mine.length),
      refused,
      unexpectedRefusals,
      withinBudget,
      accepted,
      noAnswer,
      skipped,
      tenantAlerted,
      alertPairs,
      alertPairsFound,
      alertsRead,
      refusalsCovered,
      unattributedRefusals,
    };
    const pass = hostileRowPasses(counts);
    if (!pass && notes.length === 0) note('nothing was refused with an expected code');
    return { ...counts, expectedCodes: expectedCodesOf(spec.profile), notes, pass };
  });
  return { profiles, pass: profiles.every((row) => row.pass) };
}
