/**
 * The run's history as the devices saw it, for the verdict's checkers (loadgen/verdict): what the
 * service acknowledged (every certificate a device received, every update report it had
 * acknowledged), how each device ended, and attestation and update rates per wall second (drawn
 * beside the chaos timeline). Written to `history.json` next to `summary.json`.
 */
import { writeFile } from 'node:fs/promises';
import type { FaultProfile } from '../scenario/index.js';

/** Bumped when a field changes meaning. */
export const HISTORY_VERSION = 1;

/** What happened in one wall second of the run. */
export interface HistoryBucket {
  /** Seconds since the fleet started. */
  readonly s: number;
  /** Attestations that ended with certificates. */
  ok: number;
  /** Attestations the service refused for what the device sent (a security verdict). */
  rejected: number;
  /** Attempts that got no verdict: timeouts, transport errors, OVERLOADED (shard moving or busy). */
  unavailable: number;
  /** Update reports the service acknowledged. */
  reports: number;
}

/** How one device ended the run. */
export interface HistoryDevice {
  readonly id: string;
  readonly fault: FaultProfile | null;
  /** Set on the second device of a cloned pair (it carries the first one's identity). */
  readonly twin: boolean;
  poweredOn: boolean;
  /** Holds a certificate still valid at the end of the run. */
  attested: boolean;
  /** Attestations that gave it certificates. */
  certified: number;
  /** Wall ms (since the fleet started) of its last attestation with certificates, or null. */
  lastOkAtMs: number | null;
  /**
   * Spells without service, in wall ms since the fleet started: from its first attempt that got
   * no verdict to its next certificate (`null`: never certified again).
   */
  readonly outages: [number, number | null][];
}

/** One acknowledged update report. */
export interface HistoryReport {
  readonly device: string;
  readonly deployment: string;
  readonly reportId: string;
  readonly outcome: string;
}

export interface RunHistory {
  readonly version: number;
  /** Epoch ms at which the fleet started (the chaos timeline counts from the same moment). */
  readonly startedAtWallMs: number;
  readonly endedAtWallMs: number;
  readonly devices: readonly HistoryDevice[];
  /** Every certificate issue a device received: `[deviceId, notAfterMs]`. */
  readonly certified: readonly (readonly [string, number])[];
  readonly reports: readonly HistoryReport[];
  readonly buckets: readonly HistoryBucket[];
}

/** Codes that mean "no verdict now, ask again" rather than a security refusal. */
const UNAVAILABLE_CODES = new Set(['OVERLOADED']);

/** Collects the history while the run goes (one thread: plain arrays). */
export class HistoryRecorder {
  readonly #startedAt: number;
  readonly #wall: () => number;
  readonly #devices: HistoryDevice[];
  readonly #certified: [string, number][] = [];
  readonly #reports: HistoryReport[] = [];
  readonly #buckets: HistoryBucket[] = [];

  /** `wall` is epoch ms (injected so tests can drive it). */
  constructor(
    devices: readonly { id: string; fault: FaultProfile | null; twin: boolean }[],
    wall: () => number = Date.now,
  ) {
    this.#wall = wall;
    this.#startedAt = wall();
    this.#devices = devices.map((d) => ({
      ...d,
      poweredOn: false,
      attested: false,
      certified: 0,
      lastOkAtMs: null,
      outages: [],
    }));
  }

  #bucket(): { at: number; b: HistoryBucket } {
    const at = this.#wall() - this.#startedAt;
    const s = Math.max(0, Math.floor(at / 1000));
    while (this.#buckets.length <= s)
      this.#buckets.push({ s: this.#buckets.length, ok: 0, rejected: 0, unavailable: 0, reports: 0 });
    return { at, b: this.#buckets[s] as HistoryBucket };
  }

  #device(index: number): HistoryDevice {
    const d = this.#devices[index];
    if (d === undefined) throw new RangeError(`no device ${index}`);
    return d;
  }

  poweredOn(index: number): void {
    this.#device(index).poweredOn = true;
  }

  certified(index: number, notAfterMs: number): void {
    const d = this.#device(index);
    const { at, b } = this.#bucket();
    b.ok++;
    d.certified++;
    d.lastOkAtMs = at;
    const open = d.outages.at(-1);
    if (open !== undefined && open[1] === null) open[1] = at;
    this.#certified.push([d.id, notAfterMs]);
  }

  /** A refusal (`code` a rejection code) or an attempt without an answer (`code` null). */
  failed(index: number, code: string | null): void {
    const d = this.#device(index);
    const { at, b } = this.#bucket();
    if (code === null || UNAVAILABLE_CODES.has(code)) {
      b.unavailable++;
      const last = d.outages.at(-1);
      if (last === undefined || last[1] !== null) d.outages.push([at, null]);
    } else b.rejected++;
  }

  reportAcked(index: number, r: Omit<HistoryReport, 'device'>): void {
    this.#bucket().b.reports++;
    this.#reports.push({ device: this.#device(index).id, ...r });
  }

  /** The history at the end of the run; `attestedAt(i)` says whether device i holds a valid certificate. */
  finish(attestedAt: (index: number) => boolean): RunHistory {
    this.#devices.forEach((d, i) => (d.attested = attestedAt(i)));
    this.#bucket();
    return {
      version: HISTORY_VERSION,
      startedAtWallMs: this.#startedAt,
      endedAtWallMs: this.#wall(),
      devices: this.#devices,
      certified: this.#certified,
      reports: this.#reports,
      buckets: this.#buckets,
    };
  }
}

export async function writeHistoryJson(path: string, history: RunHistory): Promise<void> {
  await writeFile(path, `${JSON.stringify(history)}\n`);
}
