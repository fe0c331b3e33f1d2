/**
 * Admission control for a shard: a bound on attestations in flight and, for each refusal, a
 * time to come back.
 *
 * Without the bound, a boot storm queues work past the devices' request timeouts; timed-out
 * devices retry, their nonces go stale, and the retries become the load. Without paced
 * retries, every refused device comes back after the same short wait and the refusals become
 * the load. So each refusal takes the next slot of a virtual queue that advances at the rate
 * the shard has been completing attestations: N refused devices come back spread over N / rate
 * seconds, about when there is room for them.
 *
 * Owned by the shard host; partition actors run on one thread, so plain counters are exact.
 * Times are wall milliseconds (capacity is a wall-clock quantity).
 */
export class AdmissionControl {
  readonly #max: number;
  readonly #minRetryWallMs: number;
  readonly #maxRetryWallMs: number;
  readonly #minRatePerSec: number;
  #inFlight = 0;
  #windowStart = 0;
  #completed = 0;
  #lastCompleted = 0;
  /** Wall time of the last slot handed out; only meaningful while refusing. */
  #nextSlotWall = 0;

  constructor(opts: {
    maxInFlight: number;
    minRetryWallMs?: number;
    maxRetryWallMs?: number;
    minRatePerSec?: number;
  }) {
    this.#max = opts.maxInFlight;
    this.#minRetryWallMs = opts.minRetryWallMs ?? 200;
    this.#maxRetryWallMs = opts.maxRetryWallMs ?? 30_000;
    this.#minRatePerSec = opts.minRatePerSec ?? 100;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Takes a place for one attestation if there is room. */
  tryAdmit(): boolean {
    if (this.#inFlight >= this.#max) return false;
    this.#inFlight++;
    return true;
  }

  /** Whether there is room right now (for cheap requests such as challenges). */
  hasRoom(): boolean {
    return this.#inFlight < this.#max;
  }

  /** An admitted attestation was answered at `wallNowMs`. */
  release(wallNowMs: number): void {
    if (this.#inFlight > 0) this.#inFlight--;
    this.#roll(wallNowMs);
    this.#completed++;
  }

  /** Completions per second over the last full second (or the current one, if busier). */
  ratePerSec(wallNowMs: number): number {
    this.#roll(wallNowMs);
    return Math.max(this.#minRatePerSec, this.#lastCompleted, this.#completed);
  }

  /**
   * Wall milliseconds the device refused at `wallNowMs` should wait: the next free slot of the
   * virtual queue, with up to 10% jitter (`random` in [0, 1)), between the configured bounds.
   */
  retryWallMs(wallNowMs: number, random: number): number {
    const slot =
      Math.max(this.#nextSlotWall, wallNowMs + this.#minRetryWallMs) + 1000 / this.ratePerSec(wallNowMs);
    this.#nextSlotWall = Math.min(slot, wallNowMs + this.#maxRetryWallMs);
    return Math.round((this.#nextSlotWall - wallNowMs) * (1 + 0.1 * random));
  }

  #roll(wallNowMs: number): void {
    if (wallNowMs - this.#windowStart < 1000) return;
    this.#lastCompleted = wallNowMs - this.#windowStart < 2000 ? this.#completed : 0;
    this.#completed = 0;
    this.#windowStart = wallNowMs;
  }
}
