/**
 * The end-of-run summary: one plain-data object (what `--json` writes and CI archives) and its
 * terminal rendering. The loadgen fills a {@link RunSummary}; this module only shapes and shows it.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { HostileSummary } from './hostile.js';
import { FAULT_PROFILES, formatDuration, formatSize } from '../scenario/index.js';
import type {
  ConnectionConfig,
  FaultProfile,
  ImageSpec,
  LatencyStats,
  ObservedMetrics,
  RolloutExpectation,
  ScenarioStage,
  ThresholdReport,
} from '../scenario/index.js';

/** Version of the JSON layout; bumped on incompatible changes (2: `rollouts`, 3: `updates`). */
export const SUMMARY_VERSION = 3;

/** What the devices' update agents saw during the run. */
export interface UpdatesSummary {
  readonly checks: number;
  readonly checksFailed: number;
  /** Failed checks by the service's refusal code or the transport's error code. */
  readonly checkFailures: Readonly<Record<string, number>>;
  /** Image bytes the devices received. */
  readonly bytes: number;
  /** Acknowledged reports by `outcome`, or `outcome:code` when a code came with it. */
  readonly reports: Readonly<Record<string, number>>;
  /** Reports the service did not acknowledge at first (repeated later). */
  readonly reportRetries: number;
  /** OS updates a device's application postponed. */
  readonly osDeferrals: number;
}

/** The devices' error reports (app crashes and exits, OS crashes, update and attestation failures). */
export interface ErrorReportsSummary {
  /** Events the devices recorded, by kind. */
  readonly eventsByKind: Readonly<Record<string, number>>;
  /** Upload attempts that got an answer or failed in transport (the sum of the four below). */
  readonly uploads: number;
  /** Reports the service stored (acknowledged, not as a duplicate). */
  readonly acknowledged: number;
  /** Reports acknowledged as duplicates (a repeat of a stored report whose answer was lost). */
  readonly duplicates: number;
  /** Reports refused for good (dropped by the device), by refusal code. */
  readonly refused: Readonly<Record<string, number>>;
  /** Attempts repeated later (a retryable refusal or no answer). */
  readonly retries: number;
  /** Events in the stored reports. */
  readonly eventsAcknowledged: number;
}

/** What ran, for how long, and whether it stopped early. */
export interface RunInfo {
  readonly scenario: string;
  readonly description: string;
  readonly seed: string;
  /** Wall clock start, ISO 8601. */
  readonly startedAt: string;
  readonly wallElapsedMs: number;
  /** Simulated time reached (equals `durationMs` unless aborted). */
  readonly simulatedMs: number;
  /** Planned simulated duration. */
  readonly durationMs: number;
  readonly timeScale: number;
  readonly fleetSize: number;
  readonly connections: ConnectionConfig;
  /** Why the run stopped early, or `null` if it ran to the end. */
  readonly aborted: string | null;
}

/** Per-stage device counts (devices are attributed to the stage that powered them on). */
export interface StageSummary {
  readonly index: number;
  readonly kind: ScenarioStage['kind'];
  readonly startMs: number;
  readonly endMs: number;
  /** Devices the stage was planned to power on. */
  readonly planned: number;
  readonly poweredOn: number;
  /** Of those, holding a valid certificate at the end. */
  readonly attested: number;
  /** Of those, whose last attempt failed. */
  readonly failed: number;
}

/** Device states at the end of the run. */
export interface DeviceCounts {
  readonly total: number;
  readonly poweredOn: number;
  readonly attested: number;
  readonly failed: number;
  /** Waiting to retry after a failure. */
  readonly backoff: number;
}

/** Attestation outcomes. `byResult` keys are {@link ATTEST_RESULTS}; `byCode` keys are rejection codes. */
export interface AttestationSummary {
  readonly total: number;
  readonly ok: number;
  readonly failed: number;
  readonly byResult: Readonly<Record<string, number>>;
  readonly byCode: Readonly<Record<string, number>>;
}

/** Outcome categories of one attestation attempt. */
export const ATTEST_RESULTS = ['ok', 'rejected', 'timeout', 'transport_error'] as const;

/** Wall-clock latency percentiles of the two device requests. */
export interface LatencySummary {
  readonly challenge: LatencyStats;
  readonly attest: LatencyStats;
}

/** How the service treated the devices of one fault profile. */
export interface FaultSummaryRow {
  readonly profile: FaultProfile;
  readonly devices: number;
  readonly expectedCodes: readonly string[];
  /** Rejection codes these devices received, with counts. */
  readonly observedCodes: Readonly<Record<string, number>>;
  /** Devices that received at least one of `expectedCodes` ("caught" in the table). */
  readonly devicesRejectedAsExpected: number;
  /** Devices holding a valid certificate at the end. */
  readonly devicesCertified: number;
  /** See {@link faultSummaryRow} for the rule. */
  readonly pass: boolean;
}

/** Devices of one rollout wave by rollout device state (`pending` ... `succeeded`, `failed`, `rolled_back`). */
export interface RolloutWaveSummary {
  /** 1-based; 0 holds the devices not yet assigned to a wave. */
  readonly wave: number;
  readonly devicesByState: Readonly<Record<string, number>>;
}

/** How one rollout of the scenario ended, from the service's last view of its deployment. */
export interface RolloutSummary {
  readonly name: string;
  /** `null` when no deployment was created (the run ended before `startAtMs`, or creation failed). */
  readonly deploymentId: string | null;
  readonly image: Pick<ImageSpec, 'id' | 'kind' | 'name' | 'version'>;
  readonly group: string;
  /** Devices the run assigned to the group. */
  readonly devices: number;
  /** Simulated ms after the run start at which the deployment was due. */
  readonly startAtMs: number;
  /** The deployment's state (`running`, `waiting`, `halted`, `completed` ...) or `not-started`. */
  readonly state: string;
  /** Wave reached (0 before the first opens). */
  readonly currentWave: number;
  readonly totalWaves: number;
  readonly waves: readonly RolloutWaveSummary[];
  readonly failures: number;
  readonly attempted: number;
  /** `error-count`, `error-share` or `success-threshold-unmet` once halted, else `null`. */
  readonly haltReason: string | null;
  readonly expect: RolloutExpectation | null;
  /** Whether the final state is `expect`; `null` without an expectation. */
  readonly expectationMet: boolean | null;
  /** Why the deployment could not be created or read, else `null`. */
  readonly error: string | null;
}

/** The state a rollout summary reports when its deployment was never created. */
export const ROLLOUT_NOT_STARTED = 'not-started';

/** Whether a rollout that ended in `state` meets `expect` (`null` when there is none). */
export function rolloutExpectationMet(expect: RolloutExpectation | null, state: string): boolean | null {
  return expect === null ? null : state === expect;
}

/** Final device outcomes of a rollout, summed over its waves. */
export function rolloutOutcomes(rollout: Pick<RolloutSummary, 'waves'>): {
  succeeded: number;
  failed: number;
  rolledBack: number;
} {
  let succeeded = 0;
  let failed = 0;
  let rolledBack = 0;
  for (const wave of rollout.waves) {
    succeeded += wave.devicesByState['succeeded'] ?? 0;
    failed += wave.devicesByState['failed'] ?? 0;
    rolledBack += wave.devicesByState['rolled_back'] ?? 0;
  }
  return { succeeded, failed, rolledBack };
}

/**
 * Threshold observations of the rollout metrics: `rollouts_completed` and `rollouts_halted`
 * (final states), `rollout_expectations_met` (share of the rollouts with an `expect` that met it)
 * and `update_success_rate` (succeeded over succeeded + failed + rolled back, all rollouts).
 * Empty without rollouts; a rate with no denominator is left out (no data).
 */
export function rolloutMetrics(rollouts: readonly RolloutSummary[]): ObservedMetrics {
  if (rollouts.length === 0) return {};
  let succeeded = 0;
  let final = 0;
  for (const rollout of rollouts) {
    const outcomes = rolloutOutcomes(rollout);
    succeeded += outcomes.succeeded;
    final += outcomes.succeeded + outcomes.failed + outcomes.rolledBack;
  }
  const judged = rollouts.filter((r) => r.expectationMet !== null);
  return {
    rollouts_completed: { count: rollouts.filter((r) => r.state === 'completed').length },
    rollouts_halted: { count: rollouts.filter((r) => r.state === 'halted').length },
    ...(judged.length === 0
      ? {}
      : {
          rollout_expectations_met: {
            rate: judged.filter((r) => r.expectationMet === true).length / judged.length,
          },
        }),
    ...(final === 0 ? {} : { update_success_rate: { rate: succeeded / final } }),
  };
}

/** A class of run errors (not service rejections): timeouts, disconnects, crashes. */
export interface ErrorSummary {
  readonly message: string;
  readonly count: number;
}

/** Everything a finished run reports. JSON-safe (`NaN` never appears: missing numbers are `null`). */
export interface RunSummary {
  readonly version: typeof SUMMARY_VERSION;
  readonly run: RunInfo;
  readonly stages: readonly StageSummary[];
  readonly devices: DeviceCounts;
  readonly attestations: AttestationSummary;
  readonly latency: LatencySummary;
  /** One row per profile with devices, in `FAULT_PROFILE_LIST` order. */
  readonly faults: readonly FaultSummaryRow[];
  /** One entry per scenario rollout, in file order (empty without rollouts). */
  readonly rollouts: readonly RolloutSummary[];
  /** The device side of the rollouts; `null` when the scenario rolls out nothing (no update agents). */
  readonly updates: UpdatesSummary | null;
  /** The devices' error reports; absent in summaries written before devices uploaded them. */
  readonly errorReports?: ErrorReportsSummary;
  /** The scenario's hostile traffic (`attacks:`); absent when it has none. */
  readonly hostile?: HostileSummary;
  readonly thresholds: ThresholdReport;
  readonly errors: readonly ErrorSummary[];
  /**
   * Thresholds, fault rows, rollout expectations and hostile traffic all pass and the run was not
   * aborted.
   */
  readonly pass: boolean;
}

/**
 * Build a fault-profile row, deciding pass/fail from the profile's contract in `FAULT_PROFILES`:
 * every device must receive an expected code (for paired profiles such as `clonedKey`, at least
 * one device per pair), and the devices that obtained certificates during the run must fit the
 * profile's `certificates` contract (`all`: every device; `none`: none, except one per caught pair;
 * `any`: not judged).
 */
export function faultSummaryRow(
  profile: FaultProfile,
  observed: {
    readonly devices: number;
    readonly observedCodes: Readonly<Record<string, number>>;
    readonly devicesRejectedAsExpected: number;
    readonly devicesCertified: number;
  },
): FaultSummaryRow {
  const contract = FAULT_PROFILES[profile];
  const mustBeRejected = contract.pairs ? Math.ceil(observed.devices / 2) : observed.devices;
  const rejectedOk = observed.devicesRejectedAsExpected >= mustBeRejected;
  const certified = observed.devicesCertified;
  const attestedOk =
    contract.certificates === 'all'
      ? certified === observed.devices
      : contract.certificates === 'none'
        ? certified <= observed.devices - mustBeRejected
        : true;
  return { profile, ...observed, expectedCodes: contract.expectedCodes, pass: rejectedOk && attestedOk };
}

/** Overall verdict: not aborted, every threshold and fault row passes, every rollout expectation holds. */
export function summaryPasses(summary: Omit<RunSummary, 'pass'>): boolean {
  return (
    summary.run.aborted === null &&
    summary.thresholds.pass &&
    summary.faults.every((row) => row.pass) &&
    summary.rollouts.every((rollout) => rollout.expectationMet !== false) &&
    (summary.hostile?.pass ?? true)
  );
}

/**
 * Write the summary as pretty JSON (2-space indent, trailing newline), creating parent
 * directories. The write is atomic (temp file + rename), so readers never see half a file.
 */
export async function writeSummaryJson(path: string, summary: RunSummary): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(summary, jsonSafe, 2)}\n`, 'utf8');
  await rename(temp, path);
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

// ---------------------------------------------------------------------------------------------
// Terminal rendering
// ---------------------------------------------------------------------------------------------

/** Options for {@link renderSummaryTable}. */
export interface RenderOptions {
  /** ANSI colours; default: only when stdout is a TTY and `NO_COLOR` is unset. */
  readonly color?: boolean;
  /** Maximum line width; default 100. */
  readonly width?: number;
}

/** Column alignment, optional cap, and whether it may shrink to fit (longer cells are cut with `…`). */
interface Column {
  readonly header: string;
  readonly align: 'left' | 'right';
  readonly max?: number;
  readonly flex?: boolean;
}

const PASS = '✓';
const FAIL = '✗';

/**
 * Render the summary as a plain terminal report: header with the verdict, stages, devices,
 * attestations, latency percentiles, fault profiles, rollouts, thresholds and errors, with aligned columns
 * and ✓/✗ marks. Lines fit in `width` (default 100) columns. Colour only if `options.color`
 * (default: stdout is a TTY and `NO_COLOR` is unset); without colour the output is pure text.
 */
export function renderSummaryTable(summary: RunSummary, options: RenderOptions = {}): string {
  const color = options.color ?? (process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined);
  const width = options.width ?? 100;
  const paint = (code: string, text: string): string => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const mark = (pass: boolean): string => (pass ? paint('32', PASS) : paint('31', FAIL));
  const bold = (text: string): string => paint('1', text);
  const { run } = summary;
  const out: string[] = [];

  const verdict = summary.pass ? paint('32', `${PASS} PASS`) : paint('31', `${FAIL} FAIL`);
  out.push(`${bold(`sphere-fleet · ${run.scenario}`)} · seed ${run.seed} · ${verdict}`);
  const connections =
    run.connections.mode === 'shared'
      ? `shared connections (pool ${run.connections.pool})`
      : 'per-device connections';
  out.push(
    wrapList(
      '',
      [
        `simulated ${formatDuration(run.simulatedMs)} of ${formatDuration(run.durationMs)} at ×${formatNumber(run.timeScale)} in ${wallTime(run.wallElapsedMs)} wall`,
        `${count(run.fleetSize)} devices`,
        connections,
      ],
      width,
    ),
  );
  out.push(`started ${run.startedAt}`);
  if (run.aborted !== null) out.push(paint('31', `${FAIL} aborted: ${run.aborted}`));

  out.push('', bold('Stages'));
  out.push(
    ...table(
      [
        { header: '#', align: 'right' },
        { header: 'stage', align: 'left' },
        { header: 'window (simulated)', align: 'left' },
        { header: 'planned', align: 'right' },
        { header: 'powered', align: 'right' },
        { header: 'attested', align: 'right' },
        { header: 'failed', align: 'right' },
      ],
      summary.stages.map((s) => [
        String(s.index),
        s.kind,
        `${formatDuration(s.startMs)} → ${formatDuration(s.endMs)}`,
        count(s.planned),
        count(s.poweredOn),
        count(s.attested),
        count(s.failed),
      ]),
      width,
    ),
  );

  const d = summary.devices;
  out.push(
    '',
    wrapList(
      'Devices       ',
      [
        `${count(d.total)} total`,
        `${count(d.poweredOn)} powered on`,
        `${count(d.attested)} attested`,
        `${count(d.failed)} failed`,
        `${count(d.backoff)} in backoff`,
      ],
      width,
    ),
  );
  const a = summary.attestations;
  out.push(
    wrapList(
      'Attestations  ',
      [`${count(a.total)} total`, `${count(a.ok)} ok`, `${count(a.failed)} failed`],
      width,
    ),
  );
  const results = entries(a.byResult);
  if (results.length > 0)
    out.push(
      wrapList(
        '  by result   ',
        results.map(([k, v]) => `${k} ${count(v)}`),
        width,
      ),
    );
  const codes = entries(a.byCode);
  if (codes.length > 0)
    out.push(
      wrapList(
        '  by code     ',
        codes.map(([k, v]) => `${k} ${count(v)}`),
        width,
      ),
    );

  out.push('', bold('Latency (wall ms)'));
  out.push(
    ...table(
      [
        { header: 'request', align: 'left' },
        { header: 'count', align: 'right' },
        { header: 'p50', align: 'right' },
        { header: 'p90', align: 'right' },
        { header: 'p95', align: 'right' },
        { header: 'p99', align: 'right' },
        { header: 'max', align: 'right' },
      ],
      (['challenge', 'attest'] as const).map((name) => {
        const l = summary.latency[name];
        return [name, count(l.count), ms(l.p50), ms(l.p90), ms(l.p95), ms(l.p99), ms(l.max)];
      }),
      width,
    ),
  );

  if (summary.faults.length > 0) {
    out.push('', bold('Fault profiles'));
    out.push(
      ...table(
        [
          { header: '  profile', align: 'left' },
          { header: 'expected', align: 'left', max: 40, flex: true },
          { header: 'observed', align: 'left', max: 60, flex: true },
          { header: 'caught', align: 'right' },
          { header: 'certified', align: 'right' },
        ],
        summary.faults.map((row) => [
          `${row.pass ? PASS : FAIL} ${row.profile}`,
          row.expectedCodes.join('|'),
          entries(row.observedCodes)
            .map(([code, n]) => `${code}×${n}`)
            .join(' ') || '(none)',
          `${count(row.devicesRejectedAsExpected)}/${count(row.devices)}`,
          `${count(row.devicesCertified)}/${count(row.devices)}`,
        ]),
        width,
      ).map((line) => colorMarks(line, mark)),
    );
  }

  if (summary.hostile !== undefined) {
    const rows = summary.hostile.profiles;
    out.push('', bold('Hostile traffic'));
    out.push(
      ...table(
        [
          { header: '  profile', align: 'left' },
          { header: 'attempts', align: 'right' },
          { header: 'refused', align: 'right' },
          { header: 'accepted', align: 'right' },
          { header: 'no answer', align: 'right' },
          { header: 'alerted', align: 'right' },
          { header: 'alerts', align: 'right' },
          { header: 'no tenant', align: 'right' },
        ],
        rows.map((row) => [
          `${row.pass ? PASS : FAIL} ${row.profile}`,
          count(row.attempts),
          count(Object.values(row.refused).reduce((sum, n) => sum + n, 0)),
          count(row.accepted),
          count(row.noAnswer),
          row.alertPairs === 0 ? '-' : `${count(row.alertPairsFound)}/${count(row.alertPairs)}`,
          row.alertPairs === 0 ? '-' : `${count(row.alertsRead)} for ${count(row.tenantAlerted)}`,
          row.unattributedRefusals === 0 ? '-' : count(row.unattributedRefusals),
        ]),
        width,
      ).map((line) => colorMarks(line, mark)),
    );
    const label = Math.max(...rows.map((row) => row.profile.length)) + 4;
    for (const row of rows) {
      const codes = entries(row.refused).map(([code, n]) => `${code}×${count(n)}`);
      if (row.withinBudget > 0) codes.push(`${count(row.withinBudget)} accepted within the budget`);
      out.push(
        wrapList(
          `  ${row.profile.padEnd(label - 2)}`,
          codes.length === 0 ? ['nothing refused'] : codes,
          width,
        ),
      );
      for (const note of row.notes) out.push(truncate(`${' '.repeat(label)}${note}`, width));
    }
    out.push(
      truncate(
        "  alerted: (sender, code) pairs in the tenant's alerts · alerts: records for the refusals they cover",
        width,
      ),
      truncate(
        '  no tenant: refused before any sender was proven (alerted to the service admin only)',
        width,
      ),
    );
  }

  if (summary.rollouts.length > 0) {
    out.push('', bold('Rollouts'));
    out.push(
      ...table(
        [
          { header: '  rollout', align: 'left', max: 30, flex: true },
          { header: 'image', align: 'left', max: 30, flex: true },
          { header: 'state', align: 'left', max: 30, flex: true },
          { header: 'wave', align: 'right' },
          { header: 'ok', align: 'right' },
          { header: 'failed', align: 'right' },
          { header: 'rolled back', align: 'right' },
          { header: 'halt reason', align: 'left', max: 30, flex: true },
        ],
        summary.rollouts.map((r) => {
          const outcomes = rolloutOutcomes(r);
          const mark = r.expectationMet === null ? '·' : r.expectationMet ? PASS : FAIL;
          return [
            `${mark} ${r.name}`,
            `${r.image.name} ${r.image.version}`,
            r.expectationMet === false ? `${r.state} (expected ${r.expect ?? '-'})` : r.state,
            `${r.currentWave}/${r.totalWaves}`,
            count(outcomes.succeeded),
            count(outcomes.failed),
            count(outcomes.rolledBack),
            r.haltReason ?? (r.error === null ? '' : 'error (below)'),
          ];
        }),
        width,
      ).map((line) => colorMarks(line, mark)),
    );
    for (const r of summary.rollouts) {
      if (r.error !== null) out.push(truncate(`  ${r.name}: ${r.error}`, width));
    }
  }
  const u = summary.updates;
  if (u !== null) {
    out.push(
      wrapList(
        '  device side: ',
        [
          `${count(u.checks)} update checks (${count(u.checksFailed)} failed${
            u.checksFailed === 0
              ? ''
              : `: ${entries(u.checkFailures)
                  .map(([code, n]) => `${code} ${count(n)}`)
                  .join(', ')}`
          })`,
          `${formatSize(u.bytes)} received`,
          `${count(u.osDeferrals)} OS updates postponed`,
          `${count(u.reportRetries)} reports repeated`,
        ],
        width,
      ),
    );
    const finals = entries(u.reports).filter(([key]) => key !== 'downloading' && key !== 'installing');
    if (finals.length > 0)
      out.push(
        wrapList(
          '  final reports: ',
          finals.map(([key, n]) => `${key} ${count(n)}`),
          width,
        ),
      );
  }

  const er = summary.errorReports;
  if (er !== undefined && (er.uploads > 0 || entries(er.eventsByKind).length > 0)) {
    const refused = Object.values(er.refused).reduce((sum, n) => sum + n, 0);
    out.push(
      '',
      wrapList(
        'Error reports ',
        [
          `${count(er.acknowledged)} stored (${count(er.eventsAcknowledged)} events)`,
          `${count(er.duplicates)} duplicates`,
          `${count(refused)} refused${
            refused === 0
              ? ''
              : `: ${entries(er.refused)
                  .map(([code, n]) => `${code} ${count(n)}`)
                  .join(', ')}`
          }`,
          `${count(er.retries)} repeated`,
        ],
        width,
      ),
    );
    const kinds = entries(er.eventsByKind);
    if (kinds.length > 0)
      out.push(
        wrapList(
          '  recorded    ',
          kinds.map(([kind, n]) => `${kind} ${count(n)}`),
          width,
        ),
      );
  }

  out.push('', bold('Thresholds'));
  if (summary.thresholds.results.length === 0) out.push('  (none)');
  else {
    out.push(
      ...table(
        [
          { header: '  metric', align: 'left' },
          { header: 'threshold', align: 'left', max: 40, flex: true },
          { header: 'actual', align: 'right' },
        ],
        summary.thresholds.results.map((r) => [
          `${r.pass ? PASS : FAIL} ${r.metric}`,
          r.expression,
          r.actual === null ? 'no data' : formatNumber(r.actual),
        ]),
        width,
      ).map((line) => colorMarks(line, mark)),
    );
  }

  if (summary.errors.length > 0) {
    out.push('', bold('Errors'));
    for (const error of summary.errors)
      out.push(truncate(`  ${count(error.count)}× ${error.message}`, width));
  }
  return `${out.join('\n')}\n`;
}

/**
 * Render rows under headers with aligned columns (two-space indent and gap). When the table is
 * wider than `width`, the widest `flex` columns shrink (their cells are cut with `…`) until it fits.
 */
function table(columns: readonly Column[], rows: readonly (readonly string[])[], width: number): string[] {
  const widths = columns.map((column, i) =>
    Math.min(
      column.max ?? Infinity,
      Math.max(column.header.length, ...rows.map((row) => (row[i] ?? '').length)),
    ),
  );
  const total = (): number => 2 + widths.reduce((sum, w) => sum + w, 0) + 2 * (columns.length - 1);
  while (total() > width) {
    let widest = -1;
    columns.forEach((column, i) => {
      if (
        column.flex === true &&
        (widths[i] ?? 0) > 8 &&
        (widest < 0 || (widths[i] ?? 0) > (widths[widest] ?? 0))
      )
        widest = i;
    });
    if (widest < 0) break;
    widths[widest] = (widths[widest] ?? 0) - 1;
  }
  const line = (row: readonly string[]): string =>
    truncate(
      `  ${columns
        .map((column, i) => {
          const w = widths[i] ?? 0;
          const cell = truncate(row[i] ?? '', w);
          return column.align === 'right' ? cell.padStart(w) : cell.padEnd(w);
        })
        .join('  ')}`.trimEnd(),
      width,
    );
  return [line(columns.map((column) => column.header)), ...rows.map(line)];
}

/** Colour a leading ✓/✗ mark of a table line (after alignment, so widths are unaffected). */
function colorMarks(line: string, mark: (pass: boolean) => string): string {
  const match = /^(\s*)([✓✗])/.exec(line);
  if (match === null) return line;
  return `${match[1] ?? ''}${mark(match[2] === PASS)}${line.slice(match[0].length)}`;
}

/** `label item · item · ...`, continuing on indented lines when wider than `width`. */
function wrapList(label: string, items: readonly string[], width: number): string {
  const lines: string[] = [];
  let current = label;
  for (const item of items) {
    const next = current.trim() === label.trim() ? `${current}${item}` : `${current} · ${item}`;
    if (next.length > width && current.trim() !== label.trim()) {
      lines.push(current);
      current = `${' '.repeat(label.length)}${item}`;
    } else current = next;
  }
  lines.push(current);
  return lines.join('\n');
}

/** Entries sorted by count, largest first, then by key. */
function entries(record: Readonly<Record<string, number>>): [string, number][] {
  return Object.entries(record)
    .filter(([, v]) => v > 0)
    .sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** Wall time with sub-second precision under 10 minutes (`60.4s`), else like `formatDuration`. */
function wallTime(ms: number): string {
  return ms < 600_000 ? `${(ms / 1_000).toFixed(1)}s` : formatDuration(ms);
}

/** `12,345` */
function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Latency cell: `-` for no data; 2 decimals under 10 ms, 1 under 100 ms, else whole ms. */
function ms(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '-';
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return Math.round(value).toLocaleString('en-US');
}

/** Up to 4 significant decimals, no trailing zeros: `0.9925`, `412.3`, `2880`. */
function formatNumber(value: number): string {
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return String(Number(value.toPrecision(Math.max(4, Math.ceil(Math.log10(Math.abs(value) + 1)) + 2))));
}
