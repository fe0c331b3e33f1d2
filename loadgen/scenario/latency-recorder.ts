/**
 * A memory-friendly latency histogram for long, large runs.
 *
 * Samples go into logarithmic buckets (the DDSketch layout): bucket `i` holds values in
 * `(γ^(i-1), γ^i]` with `γ = (1 + α) / (1 - α)` and is reported as `2γ^i / (γ + 1)`, which is within
 * a relative error `α` of every value in the bucket. With `α = 0.0095` the 1 ms .. 1 h range needs
 * fewer than 600 buckets, whatever the number of samples.
 *
 * Error bound (tested against a sorted-array oracle): for every `p`, `percentile(p)` differs from
 * the exact linearly interpolated percentile of the recorded samples by at most
 * `1% × exact + 0.001 ms` (samples below {@link MIN_TRACKABLE_MS} are counted as 0).
 * `count`, `mean`, `min` and `max` are exact.
 */

/** Relative accuracy of bucket estimates (kept a little under the documented 1%). */
export const LATENCY_RELATIVE_ERROR = 0.0095;

/** Samples below this many milliseconds share one "zero" bucket (absolute error < this). */
export const MIN_TRACKABLE_MS = 0.001;

const GAMMA = (1 + LATENCY_RELATIVE_ERROR) / (1 - LATENCY_RELATIVE_ERROR);
const LOG_GAMMA = Math.log(GAMMA);

/**
 * Anything that can answer the trend aggregations thresholds and summaries need.
 * {@link LatencyRecorder} implements it; so can an exact sample array wrapper in tests.
 */
export interface LatencySource {
  readonly count: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  percentile(p: number): number;
}

/**
 * Plain-data form of a {@link LatencyRecorder} (structured-clone and JSON safe) so worker
 * threads can ship their histograms to the coordinator, which merges them.
 */
export interface LatencySnapshot {
  readonly relativeError: number;
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  /** Samples below {@link MIN_TRACKABLE_MS}. */
  readonly zeroCount: number;
  /** `[bucket index, count]` pairs, ascending by index. */
  readonly buckets: ReadonlyArray<readonly [number, number]>;
}

/** Percentiles and extremes as the run summary shows them; `null` when nothing was recorded. */
export interface LatencyStats {
  readonly count: number;
  readonly mean: number | null;
  readonly min: number | null;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

/**
 * Log-bucketed latency histogram with ≤ 1% relative error (see the module comment), O(buckets)
 * memory and O(1) `record`.
 *
 * Percentiles use linear interpolation between the closest ranks, like k6:
 * `rank = p/100 × (n − 1)`, then interpolate between the samples at `floor(rank)` and `ceil(rank)`.
 * On an empty recorder `percentile`, `mean`, `min` and `max` return `NaN`.
 */
export class LatencyRecorder implements LatencySource {
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;
  #zeroCount = 0;
  readonly #buckets = new Map<number, number>();
  #sortedKeys: number[] | null = null;

  /** Rebuild a recorder from {@link LatencyRecorder.snapshot} output. */
  static fromSnapshot(snapshot: LatencySnapshot): LatencyRecorder {
    return new LatencyRecorder().merge(snapshot);
  }

  /**
   * Record one latency in milliseconds.
   * @throws {RangeError} if `ms` is negative, `NaN` or infinite (a bug in the caller's clock math).
   */
  record(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`latency must be a finite number >= 0, got ${ms}`);
    this.#count++;
    this.#sum += ms;
    if (ms < this.#min) this.#min = ms;
    if (ms > this.#max) this.#max = ms;
    if (ms < MIN_TRACKABLE_MS) {
      this.#zeroCount++;
      return;
    }
    const index = Math.ceil(Math.log(ms) / LOG_GAMMA);
    const previous = this.#buckets.get(index);
    if (previous === undefined) this.#sortedKeys = null;
    this.#buckets.set(index, (previous ?? 0) + 1);
  }

  /** Number of samples recorded (exact). */
  get count(): number {
    return this.#count;
  }

  /** Arithmetic mean (exact up to floating point); `NaN` when empty. */
  get mean(): number {
    return this.#count === 0 ? NaN : this.#sum / this.#count;
  }

  /** Smallest sample (exact); `NaN` when empty. */
  get min(): number {
    return this.#count === 0 ? NaN : this.#min;
  }

  /** Largest sample (exact); `NaN` when empty. */
  get max(): number {
    return this.#count === 0 ? NaN : this.#max;
  }

  /**
   * Estimated `p`-th percentile, `p` in [0, 100], by linear interpolation between closest ranks.
   * @throws {RangeError} if `p` is outside [0, 100].
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within [0, 100], got ${p}`);
    if (this.#count === 0) return NaN;
    const rank = (p / 100) * (this.#count - 1);
    const lower = Math.floor(rank);
    const upper = Math.ceil(rank);
    const low = this.#valueAtRank(lower);
    if (upper === lower) return low;
    const high = this.#valueAtRank(upper);
    return low + (high - low) * (rank - lower);
  }

  /** Add every sample of `other` to this recorder; returns `this`. */
  merge(other: LatencyRecorder | LatencySnapshot): this {
    const snapshot = other instanceof LatencyRecorder ? other.snapshot() : other;
    if (snapshot.relativeError !== LATENCY_RELATIVE_ERROR) {
      throw new RangeError(
        `cannot merge a latency histogram with relative error ${snapshot.relativeError} into one with ${LATENCY_RELATIVE_ERROR}`,
      );
    }
    if (snapshot.count === 0) return this;
    this.#count += snapshot.count;
    this.#sum += snapshot.sum;
    this.#min = Math.min(this.#min, snapshot.min);
    this.#max = Math.max(this.#max, snapshot.max);
    this.#zeroCount += snapshot.zeroCount;
    for (const [index, count] of snapshot.buckets) {
      const previous = this.#buckets.get(index);
      if (previous === undefined) this.#sortedKeys = null;
      this.#buckets.set(index, (previous ?? 0) + count);
    }
    return this;
  }

  /** Plain-data copy of the histogram; see {@link LatencySnapshot}. */
  snapshot(): LatencySnapshot {
    return {
      relativeError: LATENCY_RELATIVE_ERROR,
      count: this.#count,
      sum: this.#sum,
      min: this.#min,
      max: this.#max,
      zeroCount: this.#zeroCount,
      buckets: this.#keys().map((index) => [index, this.#buckets.get(index) ?? 0] as const),
    };
  }

  /** The percentiles a run summary shows. */
  stats(): LatencyStats {
    return latencyStats(this);
  }

  #keys(): number[] {
    this.#sortedKeys ??= [...this.#buckets.keys()].sort((a, b) => a - b);
    return this.#sortedKeys;
  }

  /** Estimate of the sample at 0-based `rank` in sorted order, clamped to the exact [min, max]. */
  #valueAtRank(rank: number): number {
    let seen = this.#zeroCount;
    if (rank < seen) return this.#min;
    for (const index of this.#keys()) {
      seen += this.#buckets.get(index) ?? 0;
      if (rank < seen) {
        const estimate = (2 * GAMMA ** index) / (GAMMA + 1);
        return Math.min(this.#max, Math.max(this.#min, estimate));
      }
    }
    return this.#max;
  }
}

/** {@link LatencyStats} from any source (a recorder, or exact samples wrapped by the caller). */
export function latencyStats(source: LatencySource): LatencyStats {
  if (source.count === 0) {
    return { count: 0, mean: null, min: null, p50: null, p90: null, p95: null, p99: null, max: null };
  }
  return {
    count: source.count,
    mean: source.mean,
    min: source.min,
    p50: source.percentile(50),
    p90: source.percentile(90),
    p95: source.percentile(95),
    p99: source.percentile(99),
    max: source.max,
  };
}
