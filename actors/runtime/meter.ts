/**
 * Metrics port. Domain code records through `Meter`; only process wiring picks
 * the backend (`createPromMeter`, or `noopMeter`).
 */

/** Label values keyed by label name; keys must be among the metric's `labelNames`. */
export type Labels = Readonly<Record<string, string>>;

export interface MetricOptions {
  /** Metric name, without the meter's prefix. Must match [a-zA-Z_:][a-zA-Z0-9_:]*. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending. Backend default when omitted. */
  readonly buckets?: readonly number[];
}

/** Monotonic counter; `value` defaults to 1 and must be >= 0. */
export interface Counter {
  inc(value?: number): void;
  inc(labels: Labels, value?: number): void;
}

export interface Gauge {
  set(value: number): void;
  set(labels: Labels, value: number): void;
  /** `value` defaults to 1. */
  inc(value?: number): void;
  inc(labels: Labels, value?: number): void;
  /** `value` defaults to 1. */
  dec(value?: number): void;
  dec(labels: Labels, value?: number): void;
  /** Drops the series with exactly these labels (it disappears from the exposition). */
  remove(labels: Labels): void;
}

export interface Histogram {
  observe(value: number): void;
  observe(labels: Labels, value: number): void;
}

/**
 * Factory of instruments. Asking twice for the same name and kind returns the
 * same instrument, so modules can share a metric; asking for an existing name
 * with a different kind or label set throws `MetricConflictError`.
 */
export interface Meter {
  counter(opts: MetricOptions): Counter;
  gauge(opts: MetricOptions): Gauge;
  histogram(opts: HistogramOptions): Histogram;
}

/** Same metric name registered with an incompatible definition. */
export class MetricConflictError extends Error {
  override readonly name = 'MetricConflictError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const noopCounter: Counter = { inc: () => undefined };
const noopGauge: Gauge = {
  set: () => undefined,
  inc: () => undefined,
  dec: () => undefined,
  remove: () => undefined,
};
const noopHistogram: Histogram = { observe: () => undefined };

/** Meter that records nothing. */
export const noopMeter: Meter = {
  counter: () => noopCounter,
  gauge: () => noopGauge,
  histogram: () => noopHistogram,
};
