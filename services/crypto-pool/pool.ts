/**
 * Batched crypto worker pool (Piscina). Callers submit single attestation items;
 * the pool groups them into batches (default 128) so the ~60 µs per-task
 * overhead of Piscina is amortised, and resolves each item's promise
 * individually.
 *
 * Worker file resolution: the worker must be plain JavaScript because vitest
 * does not transform worker threads. The default path is derived from this
 * module's own URL:
 * - compiled (`dist/services/crypto-pool/pool.js`): the sibling `worker.js`;
 * - sources (`<root>/services/crypto-pool/pool.ts`, e.g. under vitest): the
 *   compiled `<root>/dist/services/crypto-pool/worker.js` (run `npm run build` first).
 * `workerFile` overrides both.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import {
  CryptoPoolErrorCode,
  type BenchResult,
  type CryptoTask,
  type TimedWorkerResult,
  type VerifyIssueItem,
  type VerifyIssueResult,
  type VerifyIssueWireResult,
  type WorkerError,
} from './protocol.js';

/** Error raised (rejected) by pool operations; `code` is a {@link CryptoPoolErrorCode}. */
export class CryptoPoolError extends Error {
  override readonly name = 'CryptoPoolError';
  readonly code: CryptoPoolErrorCode;
  constructor(code: CryptoPoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The subset of the project's `Meter` (actors/runtime) the pool needs. Declared
 * structurally so any `Meter` can be passed as is.
 */
export interface CryptoPoolMeter {
  counter(opts: { name: string; help: string }): { inc(value?: number): void };
  gauge(opts: { name: string; help: string }): { set(value: number): void };
  histogram(opts: { name: string; help: string; buckets?: readonly number[] }): {
    observe(value: number): void;
  };
}

/** Options of {@link createCryptoPool}. */
export interface CryptoPoolOptions {
  /** Number of worker threads (fixed; threads are started eagerly). */
  readonly workers: number;
  /** Items per batch task; a full batch is submitted at once. Default 128. */
  readonly batchSize?: number;
  /**
   * Wall-clock delay after which a partial batch is flushed. Default 1 ms;
   * 0 flushes at the next `setImmediate` (after the current I/O phase).
   */
  readonly maxBatchDelayMs?: number;
  readonly meter?: CryptoPoolMeter;
  /** Absolute path (or file: URL) of the compiled worker module; see module docs for the default. */
  readonly workerFile?: string;
}

/** Counters describing the pool right now. */
export interface CryptoPoolStats {
  /** Items accepted but not yet submitted (waiting in the accumulating batch). */
  readonly queued: number;
  /** Batches submitted to Piscina and not finished (running or waiting for a thread). */
  readonly inFlightBatches: number;
  /** Items finished (resolved or rejected). */
  readonly completed: number;
  /** Batches finished. */
  readonly batches: number;
  /**
   * Fraction of thread capacity (workers x wall time) spent running tasks, 0..1,
   * measured over the interval since the previous `stats()` call (or pool start).
   * Task time is attributed when a task completes. The metrics gauge uses its own
   * window of at least one second.
   */
  readonly utilization: number;
}

/** A running crypto pool. */
export interface CryptoPool {
  /**
   * Verifies `item.signature` over `item.data` with `item.publicKey` and, only if
   * valid, signs every `item.tbs` with CA key `item.caKeyId` (which must have been
   * registered). Invalid keys or signatures resolve `{ signatureValid: false }`;
   * rejects with {@link CryptoPoolError} for unknown CA keys, worker failure or a closed pool.
   */
  verifyAndIssue(item: VerifyIssueItem): Promise<VerifyIssueResult>;
  /**
   * Makes a CA private key (PKCS#8 DER) available to workers under `caKeyId`.
   * Re-registering an ID with different bytes replaces the key for later items.
   */
  registerCaKey(caKeyId: string, pkcs8: Uint8Array): void;
  stats(): CryptoPoolStats;
  /**
   * Runs crypto-only benchmark tasks of `perTask` attestations each (all submitted
   * at once) and reports the aggregate. Not batched with regular items.
   */
  runBench(attestations: number, perTask?: number): Promise<{ elapsedMs: number; results: BenchResult[] }>;
  /** Flushes pending items, waits for in-flight batches, then stops the threads. Idempotent. */
  close(): Promise<void>;
}

/** Default worker module location for the current runtime layout (see module docs). */
export function defaultWorkerFile(moduleUrl: string = import.meta.url): string {
  const here = fileURLToPath(moduleUrl);
  if (here.endsWith('.ts')) {
    const root = resolve(dirname(here), '..', '..');
    return join(root, 'dist', 'services', 'crypto-pool', 'worker.js');
  }
  return join(dirname(here), 'worker.js');
}

interface Pending {
  readonly item: VerifyIssueItem;
  readonly wireCaKeyId: string | undefined;
  readonly caPkcs8: Uint8Array | undefined;
  readonly resolve: (r: VerifyIssueResult) => void;
  readonly reject: (e: Error) => void;
}

interface CaEntry {
  readonly pkcs8: Uint8Array;
  /** Unique per registered key: `${caKeyId}#${generation}`, so worker caches never go stale. */
  readonly wireId: string;
}

/**
 * Copies the batch's byte arrays into one ArrayBuffer and rebuilds the items as
 * views onto it. Callers' arrays are often slices of Node's 8 KiB Buffer pool,
 * which structured cloning would copy whole; one arena is copied (or moved) once.
 */
function packItems(batch: readonly Pending[]): { items: VerifyIssueItem[]; arena: ArrayBuffer } {
  let size = 0;
  for (const p of batch) {
    const it = p.item;
    size +=
      (it.publicKey instanceof Uint8Array ? it.publicKey.length : 0) +
      byteLen(it.data) +
      byteLen(it.signature);
    for (const t of it.tbs) size += byteLen(t);
  }
  const arena = new Uint8Array(size);
  let off = 0;
  const copy = (src: Uint8Array): Uint8Array => {
    if (!(src instanceof Uint8Array)) return new Uint8Array(0);
    arena.set(src, off);
    const view = arena.subarray(off, off + src.length);
    off += src.length;
    return view;
  };
  const items = batch.map((p): VerifyIssueItem => {
    const it = p.item;
    return {
      publicKey: it.publicKey instanceof Uint8Array ? copy(it.publicKey) : it.publicKey,
      data: copy(it.data),
      signature: copy(it.signature),
      tbs: it.tbs.map(copy),
      ...(p.wireCaKeyId === undefined ? {} : { caKeyId: p.wireCaKeyId }),
      // A few small arrays per attestation: structured clone copies them as they are.
      ...(it.session === undefined ? {} : { session: it.session }),
    };
  });
  return { items, arena: arena.buffer };
}

function byteLen(b: unknown): number {
  return b instanceof Uint8Array ? b.length : 0;
}

function poolError(e: WorkerError): CryptoPoolError {
  return new CryptoPoolError(e.code, e.message);
}

/**
 * Starts a pool of `workers` threads. Items are accumulated and submitted as one
 * Piscina task when `batchSize` is reached or `maxBatchDelayMs` has passed since
 * the first item of the partial batch. Each task carries only the CA keys its
 * items reference.
 * @throws CryptoPoolError `worker-failed` if the worker module does not exist.
 */
export function createCryptoPool(opts: CryptoPoolOptions): CryptoPool {
  const batchSize = opts.batchSize ?? 128;
  const maxDelay = opts.maxBatchDelayMs ?? 1;
  if (!Number.isInteger(opts.workers) || opts.workers < 1)
    throw new RangeError('workers must be a positive integer');
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError('batchSize must be a positive integer');
  if (!(maxDelay >= 0)) throw new RangeError('maxBatchDelayMs must be >= 0');
  const filename = opts.workerFile ?? defaultWorkerFile();
  const filePath = filename.startsWith('file:') ? fileURLToPath(filename) : filename;
  if (!existsSync(filePath)) {
    throw new CryptoPoolError(
      CryptoPoolErrorCode.workerFailed,
      `crypto worker module not found at ${filePath}; build first (npm run build)`,
    );
  }
  const piscina = new Piscina<CryptoTask, TimedWorkerResult<unknown>>({
    filename: filePath,
    minThreads: opts.workers,
    maxThreads: opts.workers,
    idleTimeout: 2 ** 31 - 1,
    concurrentTasksPerWorker: 1,
  });

  const m = opts.meter;
  const queueDepth = m?.gauge({
    name: 'sphere_crypto_pool_queue_depth',
    help: 'Items waiting in the crypto pool (accumulating plus in flight).',
  });
  const utilizationGauge = m?.gauge({
    name: 'sphere_crypto_pool_utilization',
    help: 'Crypto worker thread utilisation, 0..1.',
  });
  const batchHist = m?.histogram({
    name: 'sphere_crypto_pool_batch_size',
    help: 'Items per crypto pool batch task.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  });
  const tasksTotal = m?.counter({
    name: 'sphere_crypto_pool_tasks_total',
    help: 'Batch tasks submitted to crypto workers.',
  });

  const caKeys = new Map<string, CaEntry>();
  let generation = 0;
  let pending: Pending[] = [];
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  let inFlightBatches = 0;
  let inFlightItems = 0;
  let completed = 0;
  let batches = 0;
  let closed = false;
  let closing: Promise<void> | undefined;
  const inFlight = new Set<Promise<void>>();
  // Utilisation: busy time reported by workers, read over windows.
  let busyMs = 0;
  const statsWindow = { t: performance.now(), busy: 0 };
  const gaugeWindow = { t: performance.now(), busy: 0 };
  const takeUtilization = (w: { t: number; busy: number }): number => {
    const now = performance.now();
    const u = (busyMs - w.busy) / (Math.max(now - w.t, 1e-3) * opts.workers);
    w.t = now;
    w.busy = busyMs;
    return Math.min(1, Math.max(0, u));
  };
  const onTaskDone = (ms: number): void => {
    busyMs += ms;
    if (utilizationGauge !== undefined && performance.now() - gaugeWindow.t >= 1000) {
      utilizationGauge.set(takeUtilization(gaugeWindow));
    }
  };

  const updateDepth = (): void => queueDepth?.set(pending.length + inFlightItems);

  function clearTimer(): void {
    if (timer === undefined) return;
    if (maxDelay === 0) clearImmediate(timer as NodeJS.Immediate);
    else clearTimeout(timer as NodeJS.Timeout);
    timer = undefined;
  }

  function flush(): void {
    clearTimer();
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    const caSubset: Record<string, Uint8Array> = {};
    for (const p of batch) {
      if (p.wireCaKeyId !== undefined && p.caPkcs8 !== undefined) caSubset[p.wireCaKeyId] = p.caPkcs8;
    }
    const { items, arena } = packItems(batch);
    inFlightBatches++;
    inFlightItems += batch.length;
    batchHist?.observe(batch.length);
    tasksTotal?.inc();
    updateDepth();
    const done = piscina
      .run({ kind: 'verify-issue', caKeys: caSubset, items }, { transferList: [arena] })
      .then(
        (res) => {
          onTaskDone(res.busyMs);
          settleBatch(batch, res as TimedWorkerResult<VerifyIssueWireResult[]>);
        },
        (e: unknown) => {
          const err = new CryptoPoolError(CryptoPoolErrorCode.workerFailed, 'crypto worker task failed', {
            cause: e,
          });
          for (const p of batch) p.reject(err);
        },
      )
      .finally(() => {
        inFlightBatches--;
        inFlightItems -= batch.length;
        completed += batch.length;
        batches++;
        inFlight.delete(done);
        updateDepth();
      });
    inFlight.add(done);
  }

  function settleBatch(batch: readonly Pending[], res: TimedWorkerResult<VerifyIssueWireResult[]>): void {
    if (!res.ok) {
      const err = poolError(res.error);
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const r = res.value[i];
      if (r === undefined)
        p.reject(new CryptoPoolError(CryptoPoolErrorCode.internal, 'worker returned too few results'));
      else if ('error' in r) p.reject(poolError(r.error));
      else p.resolve(r);
    });
  }

  function schedule(): void {
    if (timer !== undefined) return;
    timer = maxDelay === 0 ? setImmediate(flush) : setTimeout(flush, maxDelay);
  }

  return {
    verifyAndIssue(item) {
      if (closed)
        return Promise.reject(new CryptoPoolError(CryptoPoolErrorCode.closed, 'crypto pool is closed'));
      const tbs = Array.isArray(item.tbs) ? item.tbs : [];
      const ca = item.caKeyId === undefined ? undefined : caKeys.get(item.caKeyId);
      if (tbs.length > 0 && ca === undefined) {
        return Promise.reject(
          new CryptoPoolError(
            CryptoPoolErrorCode.unknownCaKey,
            `CA key ${String(item.caKeyId)} is not registered`,
          ),
        );
      }
      return new Promise<VerifyIssueResult>((resolve, reject) => {
        pending.push({
          item: { ...item, tbs },
          wireCaKeyId: ca?.wireId,
          caPkcs8: ca?.pkcs8,
          resolve,
          reject,
        });
        if (pending.length >= batchSize) flush();
        else schedule();
        updateDepth();
      });
    },

    registerCaKey(caKeyId, pkcs8) {
      const prev = caKeys.get(caKeyId);
      if (prev !== undefined && Buffer.compare(prev.pkcs8, pkcs8) === 0) return;
      caKeys.set(caKeyId, { pkcs8: Uint8Array.from(pkcs8), wireId: `${caKeyId}#${generation++}` });
    },

    stats() {
      return {
        queued: pending.length,
        inFlightBatches,
        completed,
        batches,
        utilization: takeUtilization(statsWindow),
      };
    },

    async runBench(attestations, perTask = batchSize) {
      if (closed) throw new CryptoPoolError(CryptoPoolErrorCode.closed, 'crypto pool is closed');
      const sizes: number[] = [];
      for (let left = attestations; left > 0; left -= perTask) sizes.push(Math.min(perTask, left));
      const t0 = performance.now();
      const results = await Promise.all(
        sizes.map(async (n) => {
          const r = (await piscina.run({ kind: 'bench', n })) as TimedWorkerResult<BenchResult>;
          onTaskDone(r.busyMs);
          if (!r.ok) throw poolError(r.error);
          return r.value;
        }),
      );
      return { elapsedMs: performance.now() - t0, results };
    },

    close() {
      if (closing !== undefined) return closing;
      closed = true;
      flush();
      closing = (async () => {
        await Promise.allSettled([...inFlight]);
        utilizationGauge?.set(takeUtilization(gaugeWindow));
        await piscina.destroy();
      })();
      return closing;
    },
  };
}
