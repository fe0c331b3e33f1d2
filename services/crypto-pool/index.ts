/**
 * Front door of services/crypto-pool: batched Piscina workers that verify device
 * evidence signatures and sign certificate TBSs, plus the crypto-only benchmark.
 * The worker module itself (worker.ts) is loaded by path, never imported.
 */
export {
  createCryptoPool,
  defaultWorkerFile,
  CryptoPoolError,
  type CryptoPool,
  type CryptoPoolOptions,
  type CryptoPoolStats,
  type CryptoPoolMeter,
} from './pool.js';
export { runCryptoOnlyLimit, type CryptoOnlyLimit, type CryptoOnlyLimitOptions } from './limit.js';
export {
  CryptoPoolErrorCode,
  type VerifyIssueItem,
  type VerifyIssueResult,
  type BenchResult,
  type WorkerResult,
  type WorkerError,
} from './protocol.js';
