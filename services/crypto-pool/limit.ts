/**
 * Crypto-only throughput limit: how many attestations per second the pool's
 * workers could sustain if nothing but the cryptography had to be done.
 */
import type { BenchResult } from './protocol.js';
import { createCryptoPool, type CryptoPool } from './pool.js';

/** Options of {@link runCryptoOnlyLimit}: an existing pool, or a worker count to start one. */
export type CryptoOnlyLimitOptions = {
  /** Number of attestations to time (after a warm-up of one task per worker). */
  readonly attestations: number;
  /** Attestations per worker task; default 128, as the real path batches. */
  readonly batchSize?: number;
} & ({ readonly pool: CryptoPool } | { readonly workers: number; readonly workerFile?: string });

/** Outcome of {@link runCryptoOnlyLimit}. */
export interface CryptoOnlyLimit {
  readonly attestationsPerSecond: number;
  /** Wall time from first submission to last completion. */
  readonly elapsedMs: number;
  readonly ops: { readonly signs: number; readonly verifies: number; readonly sessions: number };
}

/**
 * Runs, per attestation, exactly the crypto of the end-to-end path — one device
 * evidence signature (P1363, 300-byte message), its verification, two certificate
 * TBS signatures (400 bytes, DER), and a session key wrapped for the device's client
 * key and unwrapped with it (one ECDH each side) — in tight loops inside the pool's
 * workers, batched `batchSize` per task with all tasks queued at once.
 * A warm-up (one small task per worker: key generation, module load) is excluded.
 * A pool passed in is left open; a pool created here is closed.
 */
export async function runCryptoOnlyLimit(opts: CryptoOnlyLimitOptions): Promise<CryptoOnlyLimit> {
  const batchSize = opts.batchSize ?? 128;
  const owned =
    'pool' in opts
      ? undefined
      : createCryptoPool({ workers: opts.workers, workerFile: opts.workerFile, batchSize });
  const pool = 'pool' in opts ? opts.pool : (owned as CryptoPool);
  try {
    const workers = 'pool' in opts ? 8 : opts.workers;
    await pool.runBench(workers * 4, 4);
    const { elapsedMs, results } = await pool.runBench(opts.attestations, batchSize);
    const sum = (f: (r: BenchResult) => number): number => results.reduce((a, r) => a + f(r), 0);
    return {
      attestationsPerSecond: (sum((r) => r.attestations) / elapsedMs) * 1000,
      elapsedMs,
      ops: { signs: sum((r) => r.signs), verifies: sum((r) => r.verifies), sessions: sum((r) => r.sessions) },
    };
  } finally {
    await owned?.close();
  }
}
