/**
 * Admission control for a shard: a bound on attestations in flight, and, when refusing, a time
 * to come back that spreads the refused devices over what the shard can absorb.
 *
 * Without the bound, a boot storm queues work past the devices' request timeouts; timed-out
 * devices retry, their nonces go stale, and the retries become the load. Without the spreading,
 * every refused device comes back after the same short wait and the refusals become the load.
 * The wait is the last second's ratio of refusals to admissions (how many seconds of capacity
 * the refused demand represents), at least `minRetryWallMs`, doubled by jitter at most.
 *
 * Owned by the shard host; partition actors run on one thread, so plain counters are exact.
 */
export class AdmissionControl {
  readonly #max: number;
  readonly #minRetryWallMs: number;
  readonly #maxRetryWallMs: number;
  #inFlight = 0;
  #windowStart = 0;
  #admitted = 0;
  #refused = 0;
  #lastAdmitted = 0;
  #lastRefused = 0;

  constructor(opts: { maxInFlight: number; minRetryWallMs?: number; maxRetryWallMs?: number }) {
    this.#max = opts.maxInFlight;
    this.#minRetryWallMs = opts.minRetryWallMs ?? 500;
    this.#maxRetryWallMs = opts.maxRetryWallMs ?? 30_000;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether one more attestation fits; counts the decision for the retry estimate. */
  tryAdmit(wallNowMs: number): boolean {
    this.#roll(wallNowMs);
    if (this.#inFlight >= this.#max) {
      this.#refused++;
      return false;
    }
    this.#inFlight++;
    this.#admitted++;
    return true;
  }

  /** Whether there is room right now (for cheap requests such as challenges); not counted. */
  hasRoom(): boolean {
    return this.#inFlight < this.#max;
  }

  /** Counts a refused request that did not go through `tryAdmit` (e.g. a challenge). */
  noteRefused(wallNowMs: number): void {
    this.#roll(wallNowMs);
    this.#refused++;
  }

  /** An admitted attestation was answered. */
  release(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  /** Wall milliseconds a refused device should wait, given `random` in [0, 1). */
  retryWallMs(random: number): number {
    const refused = Math.max(this.#refused, this.#lastRefused);
    const admitted = Math.max(1, this.#admitted, this.#lastAdmitted);
    const backlogMs = (refused / admitted) * 1000;
    const base = Math.min(this.#maxRetryWallMs, Math.max(this.#minRetryWallMs, backlogMs));
    return Math.round(base * (1 + random));
  }

  #roll(wallNowMs: number): void {
    if (wallNowMs - this.#windowStart < 1000) return;
    const stale = wallNowMs - this.#windowStart >= 2000;
    this.#lastAdmitted = stale ? 0 : this.#admitted;
    this.#lastRefused = stale ? 0 : this.#refused;
    this.#admitted = 0;
    this.#refused = 0;
    this.#windowStart = wallNowMs;
  }
}
