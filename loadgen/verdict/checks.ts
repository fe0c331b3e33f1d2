/**
 * The verdict's checkers: pure functions over what the devices saw (the run's history), what the
 * service stored (its journal) and the faults injected (the chaos timeline). Each says pass or
 * fail with its evidence; none trusts the service's own counters.
 */
import { FAULT_PROFILES } from '../scenario/index.js';
import type { HistoryDevice, RunHistory } from '../runner/index.js';
import type { RolloutSummary } from '../report/index.js';
import { certKey, reportKey } from './journal.js';
import type { StoredHistory } from './journal.js';
import { checkSingleOwner } from './ownership.js';

/** One checker's result. */
export interface Check {
  readonly id: string;
  readonly title: string;
  readonly pass: boolean;
  /** One line: what was checked, with numbers. */
  readonly summary: string;
  /** The violations (at most {@link MAX_EVIDENCE} lines, then how many more). */
  readonly evidence: readonly string[];
}

/** A fault as the chaos controller logged it: wall ms since the fleet started. */
export interface FaultSpan {
  readonly id: string;
  readonly label: string;
  readonly startMs: number;
  /** When it was healed (a killed process restarted); `null`: never healed. */
  readonly endMs: number | null;
  /**
   * For a fault on a shard (kill, pause, partition): wall ms from the fault until the other
   * shards served every partition (`null`: they never did; absent: not a shard fault).
   */
  readonly takeoverMs?: number | null;
}

/** How the fleet came back after a fault: devices that lost service during it, and when they got it back. */
export interface Recovery {
  readonly fault: string;
  /** See {@link FaultSpan.takeoverMs}. */
  readonly takeoverMs?: number | null;
  /** Heal (or, for a fault never healed, its start: the service must fail over by itself). */
  readonly fromMs: number;
  readonly affected: number;
  readonly recovered: number;
  /** Wall ms from `fromMs` until half, 99% and all of the affected devices were certified again. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

export const MAX_EVIDENCE = 10;

function evidence(lines: readonly string[]): string[] {
  return lines.length <= MAX_EVIDENCE
    ? [...lines]
    : [...lines.slice(0, MAX_EVIDENCE), `... and ${lines.length - MAX_EVIDENCE} more`];
}

const n = (x: number): string => x.toLocaleString('en-US');

/** Every healthy device that was powered on holds a valid certificate at the end. */
export function checkHealthyAttested(history: RunHistory): Check {
  const healthy = history.devices.filter((d) => d.fault === null && d.poweredOn);
  const missing = healthy.filter((d) => !d.attested);
  return {
    id: 'healthy-attested',
    title: 'every healthy device ends attested',
    pass: missing.length === 0,
    summary: `${n(healthy.length - missing.length)} of ${n(healthy.length)} healthy devices hold a valid certificate at the end`,
    evidence: evidence(
      missing.map(
        (d) =>
          `${d.id}: no valid certificate (certified ${d.certified}×, last at ${d.lastOkAtMs === null ? 'never' : `${(d.lastOkAtMs / 1000).toFixed(1)} s`})`,
      ),
    ),
  };
}

/** No partition was acted for by two shard tenures at once (from the partition logs). */
export function checkOwnership(stored: StoredHistory): Check {
  const v = checkSingleOwner(stored.appends);
  return {
    id: 'single-owner',
    title: 'no partition owned by two shards at once',
    pass: v.pass,
    summary: `${n(v.appends)} appends to ${v.partitions} partition logs, ${n(v.handovers)} handovers, ${v.violations.length} appends by an owner the partition had moved away from`,
    evidence: evidence(
      v.violations.map(
        (x) =>
          `partition ${x.partition}: seq ${x.seq} written by ${x.staleOwner} (${x.devices} devices) after ${x.newerOwner} took over at seq ${x.newerSince}`,
      ),
    ),
  };
}

/** Profiles whose evidence must always fail: none of their devices may ever hold a certificate. */
const NEVER_CERTIFIED = Object.entries(FAULT_PROFILES)
  .filter(([, p]) => p.certificates === 'none' && !p.pairs)
  .map(([name]) => name);

/**
 * No certificate for evidence that failed: no device of a profile whose evidence always fails
 * received one, and no stored attestation that failed carries a certificate newer than the one
 * the device had before.
 */
export function checkNoCertForFailedEvidence(history: RunHistory, stored: StoredHistory | null): Check {
  const bad = history.devices.filter(
    (d): d is HistoryDevice & { fault: string } =>
      d.fault !== null && NEVER_CERTIFIED.includes(d.fault) && d.certified > 0,
  );
  const hostile = history.devices.filter((d) => d.fault !== null && NEVER_CERTIFIED.includes(d.fault));
  const lines = bad.map((d) => `${d.id} (${d.fault}): received certificates ${d.certified}×`);
  for (const f of stored?.certsOnFailure ?? [])
    lines.push(
      `${f.device}: attestation failed (${f.code}) but journal seq ${f.seq} stored a new certificate`,
    );
  return {
    id: 'no-cert-for-failed-evidence',
    title: 'no certificate issued for evidence that failed',
    pass: lines.length === 0,
    summary: `${hostile.length} devices whose evidence always fails (${NEVER_CERTIFIED.join(', ')}): ${bad.length} certified; ${stored === null ? 'journal not read' : `${stored.certsOnFailure.length} failed attestations stored with a new certificate`}`,
    evidence: evidence(lines),
  };
}

/** A rollout's error budget as the scenario set it. */
export interface ErrorBudget {
  readonly name: string;
  readonly count?: number | undefined;
  readonly share?: number | undefined;
}

/**
 * No rollout passed its error budget: a rollout whose failures reached its budget (a count, or a
 * share of the devices that reported) must have halted, never completed or kept rolling.
 */
export function checkErrorBudgets(
  rollouts: readonly RolloutSummary[],
  budgets: readonly ErrorBudget[],
): Check {
  const lines: string[] = [];
  let over = 0;
  for (const r of rollouts) {
    const b = budgets.find((x) => x.name === r.name);
    if (b === undefined || r.deploymentId === null) continue;
    const byCount = b.count !== undefined && r.failures >= b.count;
    const byShare = b.share !== undefined && r.attempted > 0 && r.failures / r.attempted >= b.share;
    if (!byCount && !byShare) continue;
    over++;
    if (r.state !== 'halted' && r.state !== 'cancelled')
      lines.push(
        `${r.name}: ${r.failures} failures of ${r.attempted} reached its budget (${b.count !== undefined ? `count ${b.count}` : ''}${b.count !== undefined && b.share !== undefined ? ', ' : ''}${b.share !== undefined ? `share ${b.share}` : ''}) but it is ${r.state} in wave ${r.currentWave}/${r.totalWaves}`,
      );
  }
  const started = rollouts.filter((r) => r.deploymentId !== null).length;
  return {
    id: 'error-budget',
    title: 'no rollout passed its error budget',
    pass: lines.length === 0,
    summary: `${started} rollouts, ${over} reached their error budget, ${over - lines.length} of those halted`,
    evidence: evidence(lines),
  };
}

/**
 * Every acknowledged outcome is stored exactly once: each certificate a device received is one
 * successful attestation in a partition log, and each update report the service acknowledged is
 * one record in the journal (0: lost; 2 or more: stored twice).
 */
export function checkStoredOnce(history: RunHistory, stored: StoredHistory): Check {
  const lines: string[] = [];
  let lost = 0;
  let twice = 0;
  for (const [device, notAfterMs] of history.certified) {
    const at = stored.attestations.get(certKey(device, notAfterMs)) ?? [];
    if (at.length === 1) continue;
    if (at.length === 0) lost++;
    else twice++;
    const where = at.map((a) => `seq ${a.seq} by ${a.owner} (token ${a.token}, nonce ${a.nonce})`).join(', ');
    lines.push(
      `${device}: certificate valid until ${notAfterMs} acknowledged, ${at.length === 0 ? 'not in any partition log' : `stored ${at.length}×: ${where}`}`,
    );
  }
  for (const r of history.reports) {
    const c = stored.reports.get(reportKey(r.deployment, r.device, r.reportId)) ?? 0;
    if (c === 1) continue;
    if (c === 0) lost++;
    else twice++;
    lines.push(
      `${r.device}: report ${r.reportId} (${r.outcome}) to ${r.deployment} acknowledged, ${c === 0 ? 'not in the journal' : `stored ${c}×`}`,
    );
  }
  return {
    id: 'stored-once',
    title: 'every acknowledged outcome stored exactly once',
    pass: lines.length === 0,
    summary: `${n(history.certified.length)} certificates and ${n(history.reports.length)} update reports acknowledged: ${lost} lost, ${twice} stored twice`,
    evidence: evidence(lines),
  };
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

/**
 * Recovery after each fault: the devices that lost service (an attempt without a verdict) while
 * it was active, and how long after the heal each was certified again. Fails when an affected
 * healthy device never was.
 */
export function checkRecovery(
  history: RunHistory,
  faults: readonly FaultSpan[],
): { check: Check; recoveries: Recovery[] } {
  const recoveries: Recovery[] = [];
  const lines: string[] = [];
  for (const f of faults) {
    const from = f.endMs ?? f.startMs;
    // A fault never healed (a shard killed for good) owns the outages until the next fault starts.
    const next = faults
      .filter((g) => g.startMs > f.startMs)
      .reduce((m, g) => Math.min(m, g.startMs), Infinity);
    const until = f.endMs ?? next;
    const times: number[] = [];
    let affected = 0;
    for (const d of history.devices) {
      if (d.fault !== null) continue;
      // The outage that overlaps the fault (began before it healed, still open at its start).
      const o = d.outages.find(([s, e]) => s <= until && (e === null || e >= f.startMs));
      if (o === undefined) continue;
      affected++;
      if (o[1] !== null) times.push(Math.max(0, o[1] - from));
      else
        lines.push(
          `${d.id}: lost service at ${(o[0] / 1000).toFixed(1)} s during "${f.label}" and never got it back`,
        );
    }
    times.sort((a, b) => a - b);
    recoveries.push({
      fault: f.label,
      ...(f.takeoverMs !== undefined ? { takeoverMs: f.takeoverMs } : {}),
      fromMs: from,
      affected,
      recovered: times.length,
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
      maxMs: times.at(-1) ?? null,
    });
  }
  const affected = recoveries.reduce((s, r) => s + r.affected, 0);
  const worst = recoveries.reduce((m, r) => Math.max(m, r.p99Ms ?? 0), 0);
  return {
    recoveries,
    check: {
      id: 'recovery',
      title: 'every device that lost service got it back',
      pass: lines.length === 0,
      summary: `${faults.length} faults, ${n(affected)} device outages, worst p99 time to re-attest after a heal ${(worst / 1000).toFixed(1)} s`,
      evidence: evidence(lines),
    },
  };
}
