/**
 * The verdict of a run (Jepsen-style): checkers over the recorded history, each pass or fail
 * with its evidence, the recovery after each fault, and the timeline of faults beside the
 * attestation and update rates.
 */
import type { RunHistory } from '../runner/index.js';
import type { RunSummary } from '../report/index.js';
import type { Scenario } from '../scenario/index.js';
import {
  checkErrorBudgets,
  checkHealthyAttested,
  checkNoCertForFailedEvidence,
  checkOwnership,
  checkRecovery,
  checkStoredOnce,
} from './checks.js';
import type { Check, ErrorBudget, FaultSpan, Recovery } from './checks.js';
import type { StoredHistory } from './journal.js';

export { checkSingleOwner } from './ownership.js';
export type { OwnershipVerdict, OwnershipViolation, PartitionAppend } from './ownership.js';
export { readStoredHistory, StoredHistoryBuilder, certKey, reportKey } from './journal.js';
export type { StoredHistory, CertOnFailure } from './journal.js';
export * from './checks.js';

/** One row of the timeline: a span of wall seconds with its rates and the faults active in it. */
export interface TimelineRow {
  readonly fromS: number;
  readonly toS: number;
  /** Per second, averaged over the row. */
  readonly okPerS: number;
  readonly unavailablePerS: number;
  readonly rejectedPerS: number;
  readonly reportsPerS: number;
  /** Labels of faults active at any time in the row; `+` marks one that started, `-` one healed. */
  readonly faults: readonly string[];
}

export interface Verdict {
  readonly pass: boolean;
  readonly checks: readonly Check[];
  readonly recoveries: readonly Recovery[];
  readonly faults: readonly FaultSpan[];
  readonly timeline: readonly TimelineRow[];
}

export interface VerdictInput {
  readonly history: RunHistory;
  /** What the journal holds; `null` when the service kept no journal (checks needing it fail). */
  readonly stored: StoredHistory | null;
  readonly summary: Pick<RunSummary, 'rollouts'>;
  readonly budgets: readonly ErrorBudget[];
  readonly faults: readonly FaultSpan[];
  /** Seconds per timeline row; default: about 30 rows over the run. */
  readonly rowSeconds?: number;
}

/** The error budgets of the scenario's rollouts. */
export function errorBudgets(scenario: Pick<Scenario, 'rollouts'>): ErrorBudget[] {
  return scenario.rollouts.map((r) => ({
    name: r.name,
    count: r.config.errorThreshold.count,
    share: r.config.errorThreshold.share,
  }));
}

const journalMissing = (id: string, title: string): Check => ({
  id,
  title,
  pass: false,
  summary: 'the service kept no journal (run the shards with JetStream): nothing to check against',
  evidence: [],
});

export function judge(input: VerdictInput): Verdict {
  const { history, stored } = input;
  const recovery = checkRecovery(history, input.faults);
  const checks: Check[] = [
    checkHealthyAttested(history),
    stored === null
      ? journalMissing('single-owner', 'no partition owned by two shards at once')
      : checkOwnership(stored),
    checkNoCertForFailedEvidence(history, stored),
    checkErrorBudgets(input.summary.rollouts, input.budgets),
    stored === null
      ? journalMissing('stored-once', 'every acknowledged outcome stored exactly once')
      : checkStoredOnce(history, stored),
    recovery.check,
  ];
  return {
    pass: checks.every((c) => c.pass),
    checks,
    recoveries: recovery.recoveries,
    faults: input.faults,
    timeline: timeline(history, input.faults, input.rowSeconds),
  };
}

function timeline(history: RunHistory, faults: readonly FaultSpan[], rowSeconds?: number): TimelineRow[] {
  const seconds = history.buckets.length;
  const step = Math.max(1, rowSeconds ?? Math.ceil(seconds / 30));
  const rows: TimelineRow[] = [];
  for (let from = 0; from < seconds; from += step) {
    const to = Math.min(seconds, from + step);
    const span = history.buckets.slice(from, to);
    const sum = (k: 'ok' | 'unavailable' | 'rejected' | 'reports'): number =>
      span.reduce((s, b) => s + b[k], 0) / Math.max(1, to - from);
    const labels: string[] = [];
    for (const f of faults) {
      const start = f.startMs / 1000;
      const end = f.endMs === null ? Number.POSITIVE_INFINITY : f.endMs / 1000;
      if (start >= to || end < from) continue;
      const mark = start >= from ? '+' : end < to ? '-' : ' ';
      labels.push(`${mark}${f.label}`);
    }
    rows.push({
      fromS: from,
      toS: to,
      okPerS: sum('ok'),
      unavailablePerS: sum('unavailable'),
      rejectedPerS: sum('rejected'),
      reportsPerS: sum('reports'),
      faults: labels,
    });
  }
  return rows;
}

const fmtS = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`);

/** The verdict as the report prints it. */
export function renderVerdict(v: Verdict): string {
  const out: string[] = [];
  out.push(`Verdict  ${v.pass ? '✓ PASS' : '✗ FAIL'}`);
  for (const c of v.checks) {
    out.push(`  ${c.pass ? '✓' : '✗'} ${c.title}`);
    out.push(`      ${c.summary}`);
    for (const e of c.evidence) out.push(`      · ${e}`);
  }
  if (v.recoveries.length > 0) {
    out.push('');
    out.push(
      'Recovery (healthy devices that lost service during the fault; time to re-attest after the heal)',
    );
    const w = Math.max(5, ...v.recoveries.map((r) => r.fault.length));
    out.push(
      `    ${'fault'.padEnd(w)}  heal at  affected  recovered     p50     p99     max  partitions moved in`,
    );
    for (const r of v.recoveries)
      out.push(
        `    ${r.fault.padEnd(w)}  ${fmtS(r.fromMs).padStart(7)}  ${String(r.affected).padStart(8)}  ${String(r.recovered).padStart(9)}  ${fmtS(r.p50Ms).padStart(6)}  ${fmtS(r.p99Ms).padStart(6)}  ${fmtS(r.maxMs).padStart(6)}  ${r.takeoverMs === undefined ? '' : r.takeoverMs === null ? 'never' : fmtS(r.takeoverMs)}`,
      );
  }
  if (v.timeline.length > 0) {
    out.push('');
    out.push('Timeline (wall seconds since the fleet started; rates per second)');
    const peak = Math.max(1, ...v.timeline.map((r) => r.okPerS));
    out.push('      time   attest ok                      no answer  refused  reports  faults');
    for (const r of v.timeline) {
      const bar = '█'.repeat(Math.round((r.okPerS / peak) * 20)).padEnd(20);
      out.push(
        `  ${`${r.fromS}-${r.toS}s`.padStart(9)}  ${r.okPerS.toFixed(1).padStart(7)} ${bar}  ${r.unavailablePerS.toFixed(1).padStart(9)}  ${r.rejectedPerS.toFixed(1).padStart(7)}  ${r.reportsPerS.toFixed(1).padStart(7)}  ${r.faults.join(', ')}`,
      );
    }
  }
  return out.join('\n');
}
