/**
 * What the service stored, read back from its journal at the end of a run for the checkers: every
 * partition append (who wrote it, under which fencing token), every attestation outcome the
 * partition logs recorded, and every device update report the service journaled. Only what the
 * journal accepted is there: appends refused by fencing leave no trace.
 */
import type { DeviceSnapshot, Journal, JournalEntry, PartitionBatch } from '../../services/journal/index.js';
import type { PartitionAppend } from './ownership.js';

/** A failed attestation whose stored snapshot carries a certificate newer than the device had. */
export interface CertOnFailure {
  readonly device: string;
  readonly seq: number;
  readonly code: string;
  readonly notAfterMs: number;
}

/** Where a successful attestation was stored: the append and the nonce it consumed. */
export interface StoredAttestation {
  readonly seq: number;
  readonly owner: string;
  readonly token: number;
  readonly nonce: string;
}

export interface StoredHistory {
  readonly appends: PartitionAppend[];
  /** Successful attestations recorded, by `device@notAfterMs` of the certificate issued. */
  readonly attestations: Map<string, StoredAttestation[]>;
  readonly certsOnFailure: CertOnFailure[];
  /** Device update reports stored, by `deployment/device/reportId`. */
  readonly reports: Map<string, number>;
}

/** Key of a certificate issue: device and end of validity (each attestation issues a new one). */
export const certKey = (device: string, notAfterMs: number): string => `${device}@${notAfterMs}`;
/** Key of an update report. */
export const reportKey = (deployment: string, device: string, reportId: string): string =>
  `${deployment}/${device}/${reportId}`;

/** Folds journal entries (in order) into a {@link StoredHistory}. */
export class StoredHistoryBuilder {
  readonly history: StoredHistory = {
    appends: [],
    attestations: new Map(),
    certsOnFailure: [],
    reports: new Map(),
  };
  readonly #certOf = new Map<string, number>();

  add(e: JournalEntry): void {
    const h = this.history;
    if (e.kind === 'partition') {
      h.appends.push({
        seq: e.seq,
        partition: e.partition,
        owner: e.batch.o,
        token: e.batch.token,
        devices: e.batch.devices.length,
      });
      for (const s of e.batch.devices) this.#snapshot(e.seq, e.batch, s);
      return;
    }
    if (e.kind === 'corrupt' || e.record.t !== 'rollout') return;
    let msg: { type?: unknown; deviceId?: unknown; reportId?: unknown };
    try {
      msg = JSON.parse(e.record.msg) as typeof msg;
    } catch {
      return;
    }
    if (msg.type !== 'rollout.device-report') return;
    const key = reportKey(e.record.id, String(msg.deviceId), String(msg.reportId));
    h.reports.set(key, (h.reports.get(key) ?? 0) + 1);
  }

  #snapshot(seq: number, batch: PartitionBatch, s: DeviceSnapshot): void {
    const before = this.#certOf.get(s.d) ?? 0;
    const now = s.certs?.notAfterMs ?? 0;
    this.#certOf.set(s.d, Math.max(before, now));
    // Only a snapshot that consumed a nonce records an attestation outcome (others carry state on).
    if (s.nonce === null || s.last === null) return;
    if (s.last.ok && s.certs !== null) {
      const key = certKey(s.d, s.certs.notAfterMs);
      const stored = { seq, owner: batch.o, token: batch.token, nonce: s.nonce };
      const list = this.history.attestations.get(key);
      if (list === undefined) this.history.attestations.set(key, [stored]);
      else list.push(stored);
    } else if (!s.last.ok && now > before) {
      this.history.certsOnFailure.push({ device: s.d, seq, code: s.last.code, notAfterMs: now });
    }
  }
}

/** Reads the whole journal (up to what was stored when called) into a {@link StoredHistory}. */
export async function readStoredHistory(journal: Journal): Promise<StoredHistory> {
  const builder = new StoredHistoryBuilder();
  const follower = journal.follow((e) => {
    builder.add(e);
    return Promise.resolve();
  });
  try {
    await follower.caughtUp;
  } finally {
    follower.stop();
  }
  return builder.history;
}
