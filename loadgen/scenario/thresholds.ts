/**
 * k6-style pass/fail thresholds: `attest_latency_ms: ["p(99)<500"]`.
 *
 * An expression is `<aggregation> <operator> <number>`. Which aggregations a metric supports
 * depends on its kind (see {@link THRESHOLD_METRICS}). Metric names are validated when a scenario
 * is compiled, so a typo fails before the run, not after it.
 */
import type { LatencySource } from './latency-recorder.js';

/** Aggregations by metric kind (k6 semantics: trends aggregate samples, rates are shares, counts are totals). */
export const METRIC_KINDS = {
  trend: { aggregations: ['p', 'avg', 'min', 'max', 'med'] },
  rate: { aggregations: ['rate'] },
  count: { aggregations: ['count'] },
} as const;

/** `trend`, `rate` or `count`. */
export type MetricKind = keyof typeof METRIC_KINDS;

/** The metrics a threshold can name, their kind and what they measure. */
export const THRESHOLD_METRICS = {
  attest_latency_ms: {
    kind: 'trend',
    description: 'wall ms from sending an AttestRequest to its reply, accepted or rejected',
  },
  challenge_latency_ms: {
    kind: 'trend',
    description: 'wall ms from sending a ChallengeRequest to its reply',
  },
  attest_success_rate: {
    kind: 'rate',
    description: 'share of attestations by healthy devices (no fault profile) that were accepted',
  },
  hostile_rejected_rate: {
    kind: 'rate',
    description:
      'share of hostile devices rejected with one of their profile’s expected codes (a cloned pair counts once: one refused twin is a catch)',
  },
  devices_attested: {
    kind: 'count',
    description: 'devices holding a valid certificate at the end of the run',
  },
  attestations_ok: { kind: 'count', description: 'accepted attestations (all devices)' },
  attestations_failed: { kind: 'count', description: 'rejected or failed attestations (all devices)' },
  transport_errors: { kind: 'count', description: 'NATS timeouts, no responders and disconnects' },
  rollouts_completed: { kind: 'count', description: 'rollouts whose deployment ended completed' },
  rollouts_halted: { kind: 'count', description: 'rollouts whose deployment ended halted' },
  rollout_expectations_met: {
    kind: 'rate',
    description: 'share of the rollouts with an "expect" whose final state is the expected one',
  },
  update_success_rate: {
    kind: 'rate',
    description:
      'succeeded / (succeeded + failed + rolled back) over the final outcomes of every device in every rollout',
  },
} as const satisfies Record<string, { kind: MetricKind; description: string }>;

/** A metric name a threshold can use. */
export type ThresholdMetric = keyof typeof THRESHOLD_METRICS;

/** `p` (percentile), `avg`, `min`, `max`, `med`, `rate` or `count`. */
export type AggregationName = (typeof METRIC_KINDS)[MetricKind]['aggregations'][number];

/** A parsed aggregation; percentiles carry `p` in [0, 100]. */
export type ThresholdAggregation =
  { readonly name: 'p'; readonly percentile: number } | { readonly name: Exclude<AggregationName, 'p'> };

/** Comparison operators, longest first so `<=` is matched before `<`. */
export const THRESHOLD_OPERATORS = ['<=', '>=', '==', '!=', '<', '>'] as const;

/** One of {@link THRESHOLD_OPERATORS}. */
export type ThresholdOperator = (typeof THRESHOLD_OPERATORS)[number];

/** A compiled threshold: `metric` must satisfy `aggregation operator value`. */
export interface Threshold {
  readonly metric: ThresholdMetric;
  /** The expression as written, e.g. `"p(99)<500"`. */
  readonly expression: string;
  readonly aggregation: ThresholdAggregation;
  readonly operator: ThresholdOperator;
  readonly value: number;
}

/** Thrown for an unknown metric, a malformed expression or an unsupported aggregation. */
export class ThresholdError extends Error {
  override readonly name = 'ThresholdError';
}

/** True if `name` is a metric in {@link THRESHOLD_METRICS}. */
export function isThresholdMetric(name: string): name is ThresholdMetric {
  return Object.hasOwn(THRESHOLD_METRICS, name);
}

const EXPRESSION =
  /^\s*(p\(\s*([0-9]+(?:\.[0-9]+)?)\s*\)|avg|min|max|med|rate|count)\s*(<=|>=|==|!=|<|>)\s*(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*$/;

/**
 * Parse and check one threshold expression for `metric`.
 * @throws {ThresholdError} naming what is wrong (the caller prefixes the field path).
 */
export function parseThreshold(metric: string, expression: string): Threshold {
  if (!isThresholdMetric(metric)) {
    throw new ThresholdError(
      `unknown metric "${metric}"; known metrics: ${Object.keys(THRESHOLD_METRICS).join(', ')}`,
    );
  }
  const match = EXPRESSION.exec(expression);
  if (match === null) {
    throw new ThresholdError(
      `expected an expression like "p(99)<500", "avg<=100", "rate>0.99" or "count>=10", got ${JSON.stringify(expression)}`,
    );
  }
  const [, head = '', percentileText, operatorText = '', valueText = ''] = match;
  const aggregation: ThresholdAggregation =
    percentileText === undefined
      ? { name: head as Exclude<AggregationName, 'p'> }
      : { name: 'p', percentile: Number(percentileText) };
  if (aggregation.name === 'p' && aggregation.percentile > 100) {
    throw new ThresholdError(`percentile must be within 0..100, got p(${percentileText})`);
  }
  const kind = THRESHOLD_METRICS[metric].kind;
  const allowed: readonly string[] = METRIC_KINDS[kind].aggregations;
  if (!allowed.includes(aggregation.name)) {
    const shown = allowed.map((name) => (name === 'p' ? 'p(N)' : name)).join(', ');
    throw new ThresholdError(`${metric} is a ${kind} metric: use ${shown}, not ${head}`);
  }
  const value = Number(valueText);
  if (kind === 'rate' && (value < 0 || value > 1)) {
    throw new ThresholdError(`a rate is a share between 0 and 1, got ${valueText}`);
  }
  return {
    metric,
    expression: expression.trim(),
    aggregation,
    operator: operatorText as ThresholdOperator,
    value,
  };
}

/**
 * Compile `{ metric: [expressions] }` (a single string is accepted for one expression).
 * @throws {ThresholdError} listing every bad entry.
 */
export function compileThresholds(defs: Readonly<Record<string, string | readonly string[]>>): Threshold[] {
  const thresholds: Threshold[] = [];
  const problems: string[] = [];
  for (const [metric, value] of Object.entries(defs)) {
    const list = typeof value === 'string' ? [value] : value;
    list.forEach((expression, i) => {
      try {
        thresholds.push(parseThreshold(metric, expression));
      } catch (error) {
        problems.push(`thresholds.${metric}[${i}]: ${(error as Error).message}`);
      }
    });
  }
  if (problems.length > 0) throw new ThresholdError(problems.join('\n'));
  return thresholds;
}

/**
 * What was observed for one metric. Trends use `values` (exact samples) if given, else `latency`
 * (e.g. a `LatencyRecorder`); rates use `rate` (or the mean of 0/1 `values`); counts use `count`.
 */
export interface ObservedMetric {
  readonly values?: readonly number[];
  readonly latency?: LatencySource;
  readonly rate?: number;
  readonly count?: number;
}

/** Observations by metric name; metrics with no entry have "no data". */
export type ObservedMetrics = Readonly<Partial<Record<string, ObservedMetric>>>;

/** The outcome of one threshold. `actual` is `null` when there was no data, which fails. */
export interface ThresholdResult {
  readonly metric: ThresholdMetric;
  readonly expression: string;
  readonly actual: number | null;
  readonly pass: boolean;
}

/** All threshold outcomes; `pass` is true only if every threshold passed. */
export interface ThresholdReport {
  readonly pass: boolean;
  readonly results: readonly ThresholdResult[];
}

/**
 * Evaluate thresholds against observations. `defs` is either compiled thresholds (as in
 * `Scenario.thresholds`) or the raw `{ metric: [expressions] }` form, which is compiled first.
 * Comparisons are exact (`rate==1` needs every sample to pass). A threshold whose metric has no
 * data fails with `actual: null`. No thresholds at all passes.
 *
 * @throws {ThresholdError} only when raw `defs` do not compile.
 */
export function evaluateThresholds(
  defs: readonly Threshold[] | Readonly<Record<string, string | readonly string[]>>,
  observed: ObservedMetrics,
): ThresholdReport {
  const thresholds = Array.isArray(defs)
    ? (defs as readonly Threshold[])
    : compileThresholds(defs as Record<string, string>);
  const results = thresholds.map((threshold): ThresholdResult => {
    const raw = aggregate(threshold, observed[threshold.metric]);
    const actual = raw === null || Number.isNaN(raw) ? null : raw;
    const pass = actual !== null && compare(actual, threshold.operator, threshold.value);
    return { metric: threshold.metric, expression: threshold.expression, actual, pass };
  });
  return { pass: results.every((result) => result.pass), results };
}

/**
 * The `p`-th percentile of ascending `sorted` samples by linear interpolation between the closest
 * ranks (k6's method): `rank = p/100 × (n − 1)`. `NaN` for an empty array.
 */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lower = Math.floor(rank);
  const upper = Math.ceil(rank);
  const low = sorted[lower] ?? NaN;
  const high = sorted[upper] ?? NaN;
  return upper === lower ? low : low + (high - low) * (rank - lower);
}

function aggregate(threshold: Threshold, observed: ObservedMetric | undefined): number | null {
  if (observed === undefined) return null;
  const { aggregation } = threshold;
  switch (aggregation.name) {
    case 'rate': {
      if (observed.rate !== undefined) return observed.rate;
      const values = observed.values ?? [];
      return values.length === 0 ? null : values.reduce((sum, v) => sum + v, 0) / values.length;
    }
    case 'count':
      return observed.count ?? null;
    default:
      return aggregateTrend(aggregation, observed);
  }
}

function aggregateTrend(aggregation: ThresholdAggregation, observed: ObservedMetric): number | null {
  const source = observed.values !== undefined ? exactSource(observed.values) : observed.latency;
  if (source === undefined || source.count === 0) return null;
  switch (aggregation.name) {
    case 'p':
      return source.percentile(aggregation.percentile);
    case 'med':
      return source.percentile(50);
    case 'avg':
      return source.mean;
    case 'min':
      return source.min;
    case 'max':
      return source.max;
    default:
      return null;
  }
}

/** Wrap exact samples as a {@link LatencySource}. */
export function exactLatencySource(values: readonly number[]): LatencySource {
  return exactSource(values);
}

function exactSource(values: readonly number[]): LatencySource {
  const sorted = [...values].sort((a, b) => a - b);
  const count = sorted.length;
  return {
    count,
    mean: count === 0 ? NaN : sorted.reduce((sum, v) => sum + v, 0) / count,
    min: sorted[0] ?? NaN,
    max: sorted[count - 1] ?? NaN,
    percentile: (p) => percentileOfSorted(sorted, p),
  };
}

function compare(actual: number, operator: ThresholdOperator, expected: number): boolean {
  switch (operator) {
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
  }
}
