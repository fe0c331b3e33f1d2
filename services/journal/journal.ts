import { connect, DeliverPolicy, StorageType } from 'nats';
import type { ConsumerMessages, JetStreamClient, JetStreamManager, NatsConnection, ObjectStore } from 'nats';
import { natsServers } from '../../actors/runtime/index.js';
import { readJournalRecord, readPartitionBatch } from './records.js';
import type { JournalRecord, PartitionBatch } from './records.js';

/** A stored entry, as a follower receives it. */
export type JournalEntry =
  /** A service-wide record; `id` is the one its writer gave it (to match the write to its effect). */
  | { readonly kind: 'service'; readonly seq: number; readonly id: string; readonly record: JournalRecord }
  /** An append to one partition's log by that partition's owner. */
  | {
      readonly kind: 'partition';
      readonly seq: number;
      readonly partition: number;
      readonly batch: PartitionBatch;
    }
  /**
   * Something in the journal's subjects that is not a record (any NATS client that may publish
   * there can put one): skipped by followers. `partition` when it sits in a partition's log.
   */
  | {
      readonly kind: 'corrupt';
      readonly seq: number;
      readonly subject: string;
      readonly partition: number | null;
      readonly problem: string;
    };

export interface FollowOptions {
  /**
   * The follower's consumer went silent while the journal held entries it had not delivered, and
   * was re-created from the next one (`behind`: how many entries it was behind).
   */
  readonly onRestart?: (info: { readonly next: number; readonly behind: number }) => void;
}

/** A running follower of a journal. */
export interface Follower {
  /** Resolves once every entry stored when `follow` was called has been delivered. */
  readonly caughtUp: Promise<void>;
  /** Resolves when stopped; rejects if following failed (the follower's state stopped advancing). */
  readonly ended: Promise<void>;
  stop(): void;
}

/**
 * The service's durable state: one ordered log of facts. Service-wide records (tenant created,
 * devices claimed, image uploaded, rollout message, ...) are appended by any shard; each
 * partition's device snapshots are appended by its owner only, fenced: an append names the last
 * sequence its writer saw in that partition's log and is refused if anyone wrote since. Every
 * shard follows the whole log in order and applies it, so all shards fold the same facts in the
 * same order. Large bytes (image content) go to a blob store beside it.
 */
export interface Journal {
  /** Whether the journal survives the process (JetStream) or not (memory). */
  readonly durable: boolean;
  /** The first record (the service's genesis), or `null` while the journal is empty. */
  first(): Promise<JournalRecord | null>;
  /** Stores `genesis` as the first record if the journal is still empty; `false` if another was first. */
  begin(genesis: Extract<JournalRecord, { t: 'genesis' }>): Promise<boolean>;
  /**
   * Appends a service-wide record under `id`; resolves with its sequence once stored. An id that
   * was already stored (within JetStream's duplicate window, 2 minutes) is not stored again: the
   * first record's sequence is returned. Unique ids make every append a new record; an id derived
   * from the request (a device's report ID) makes a repeated request idempotent.
   */
  append(record: JournalRecord, id: string): Promise<number>;
  /**
   * Appends to partition `partition`'s log if its last entry is still `expectedSeq` (0: the log
   * is empty); resolves with the new sequence, or `null` when refused because someone else wrote.
   * A repeat of a stored append (same writer, token and `expectedSeq`) is stored once and
   * resolves with that append's sequence.
   * `expectedSeq: null` appends unconditionally (only the test-only unfenced mode does that).
   */
  appendPartition(
    partition: number,
    batch: PartitionBatch,
    expectedSeq: number | null,
  ): Promise<number | null>;
  /** Delivers every entry in order from the first, then each new one, to `deliver` (one at a time). */
  follow(deliver: (entry: JournalEntry) => Promise<void> | void, opts?: FollowOptions): Follower;
  /** Stores `bytes` under `name` (image content); resolves once stored. */
  putBlob(name: string, bytes: Uint8Array): Promise<void>;
  getBlob(name: string): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/** Records larger than this are refused (NATS' default max payload is 1 MiB). */
export const MAX_RECORD_BYTES = 900 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeRecord(what: string, value: unknown): Uint8Array {
  const data = encoder.encode(JSON.stringify(value));
  if (data.length > MAX_RECORD_BYTES)
    throw new Error(`journal record ${what} is ${data.length} bytes (limit ${MAX_RECORD_BYTES}); split it`);
  return data;
}

/**
 * The message id of a fenced partition append: its writer, tenure and fence name the one append
 * intended, so a repeat of it (a publish whose answer was lost) is stored once.
 */
const partitionAppendId = (partition: number, batch: PartitionBatch, expectedSeq: number): string =>
  `part-${partition}-${batch.o}-${batch.token}-${expectedSeq}`;

/**
 * A journal in memory, for a shard that keeps no state across processes: the same log, order and
 * fencing as the JetStream one, so the shard runs one code path either way.
 */
export function memoryJournal(): Journal {
  const entries: JournalEntry[] = [];
  const byId = new Map<string, number>();
  const lastOfPartition = new Map<number, number>();
  const blobs = new Map<string, Uint8Array>();
  const wakers = new Set<() => void>();
  const push = (make: (seq: number) => JournalEntry): number => {
    const entry = make(entries.length + 1);
    entries.push(entry);
    for (const w of wakers) w();
    return entry.seq;
  };
  return {
    durable: false,
    first: () => {
      const e = entries[0];
      return Promise.resolve(e?.kind === 'service' ? e.record : null);
    },
    begin(genesis) {
      if (entries.length > 0) return Promise.resolve(false);
      push((seq) => ({ kind: 'service', seq, id: 'genesis', record: genesis }));
      return Promise.resolve(true);
    },
    append(record, id) {
      encodeRecord(record.t, record);
      const stored = byId.get(id);
      if (stored !== undefined) return Promise.resolve(stored);
      const seq = push((s) => ({ kind: 'service', seq: s, id, record }));
      byId.set(id, seq);
      return Promise.resolve(seq);
    },
    appendPartition(partition, batch, expectedSeq) {
      encodeRecord('partition batch', batch);
      const id = expectedSeq === null ? null : partitionAppendId(partition, batch, expectedSeq);
      const stored = id === null ? undefined : byId.get(id);
      if (stored !== undefined) return Promise.resolve(stored);
      if (expectedSeq !== null && (lastOfPartition.get(partition) ?? 0) !== expectedSeq)
        return Promise.resolve(null);
      const seq = push((s) => ({ kind: 'partition', seq: s, partition, batch }));
      lastOfPartition.set(partition, seq);
      if (id !== null) byId.set(id, seq);
      return Promise.resolve(seq);
    },
    follow(deliver) {
      let stopped = false;
      let next = 0;
      const target = entries.length;
      let caught!: () => void;
      const caughtUp = new Promise<void>((r) => (caught = r));
      if (target === 0) caught();
      let wake: (() => void) | null = null;
      const waker = () => wake?.();
      wakers.add(waker);
      const ended = (async () => {
        while (!stopped) {
          const e = entries[next];
          if (e === undefined) {
            await new Promise<void>((r) => (wake = r));
            wake = null;
            continue;
          }
          next++;
          await deliver(e);
          if (next === target) caught();
        }
      })();
      return {
        caughtUp,
        ended,
        stop() {
          stopped = true;
          wakers.delete(waker);
          waker();
        },
      };
    },
    putBlob(name, bytes) {
      blobs.set(name, bytes);
      return Promise.resolve();
    },
    getBlob: (name) => Promise.resolve(blobs.get(name) ?? null),
    close() {
      for (const w of wakers) w();
      wakers.clear();
      return Promise.resolve();
    },
  };
}

export interface JetStreamJournalOptions {
  readonly servers: string;
  /** Names the stream (`<NAME>_JOURNAL`), its subjects (`<name>.journal.>`, `<name>.part.>`) and blob bucket. */
  readonly name: string;
  /** NATS connection name. */
  readonly connectionName: string;
  /** Replicas of the stream and blob store (3 on a 3-node cluster). */
  readonly replicas?: number;
}

/** How long a follower's pull waits for messages (its idle heartbeat is half of it). */
const CONSUME_EXPIRES_MS = 2_000;

export interface WatchdogOptions {
  /** The next sequence the follower will deliver. */
  readonly next: () => number;
  /** The journal's last sequence now (may reject: NATS unreachable). */
  readonly lastSeq: () => Promise<number>;
  /** Ends the follower's consumer so that it is re-created from `next()`. */
  readonly restart: (behind: number) => void;
  /** Silence that counts as a stall (wall ms). */
  readonly stallMs?: number;
  readonly checkEveryMs?: number;
  readonly now?: () => number;
}

/**
 * Restarts a follower whose consumer went silent while the journal held more. An ordered consumer
 * whose server died re-creates itself only after missed heartbeats and a backoff of its pull's
 * expiry, and while the cluster elects leaders that can take tens of seconds; every commit waits
 * on the follower meanwhile. The watchdog asks the stream for its last sequence once a second of
 * silence (`stallMs`) and, if the follower is behind, ends the consumer: a new one starts from
 * the next undelivered entry.
 */
export class FollowerWatchdog {
  /** The follower is applying an entry: slow work is not a stall. */
  busy = false;
  readonly #o: WatchdogOptions;
  readonly #now: () => number;
  readonly #timer: ReturnType<typeof setInterval>;
  #lastProgress: number;
  #checking = false;
  #stopped = false;

  constructor(opts: WatchdogOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#lastProgress = this.#now();
    this.#timer = setInterval(() => void this.check(), opts.checkEveryMs ?? 1_000);
    this.#timer.unref?.();
  }

  /** An entry was delivered. */
  progress(): void {
    this.#lastProgress = this.#now();
  }

  /** One check (the timer calls it; exposed for tests). */
  async check(): Promise<void> {
    if (this.#stopped || this.busy || this.#checking) return;
    if (this.#now() - this.#lastProgress < (this.#o.stallMs ?? 3_000)) return;
    this.#checking = true;
    try {
      const last = await this.#o.lastSeq().catch(() => null);
      if (this.#stopped || this.busy || last === null) return;
      const behind = last - this.#o.next() + 1;
      if (behind <= 0) {
        // Caught up and idle: check again after another stall period.
        this.#lastProgress = this.#now();
        return;
      }
      this.stop();
      this.#o.restart(behind);
    } finally {
      this.#checking = false;
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}

/**
 * The journal in a JetStream stream (file storage, so it survives nats-server restarts too) and
 * image content in a JetStream object store. Service records go to `<name>.journal.<t>`, partition
 * batches to `<name>.part.<partition>` (fenced with Nats-Expected-Last-Subject-Sequence). Appends
 * are pipelined; a follower is an ordered consumer, which re-creates itself after reconnects.
 */
/**
 * A replicated stream answers publishes only once its replicas elected a leader (until then
 * JetStream says 503, no responders): wait for it, up to 30 s.
 */
async function waitForLeader(jsm: JetStreamManager, stream: string, replicas: number): Promise<void> {
  if (replicas <= 1) return;
  const until = Date.now() + 30_000;
  for (;;) {
    const info = await jsm.streams.info(stream).catch(() => null);
    if (info?.cluster?.leader !== undefined && info.cluster.leader !== '') return;
    if (Date.now() > until)
      throw new Error(`stream ${stream} has no leader after 30 s (are ${replicas} JetStream servers up?)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function openJetStreamJournal(opts: JetStreamJournalOptions): Promise<Journal> {
  const nc: NatsConnection = await connect({
    servers: natsServers(opts.servers),
    name: opts.connectionName,
    maxReconnectAttempts: -1,
  });
  try {
    const stream = `${opts.name.toUpperCase().replace(/[^A-Z0-9_-]/g, '_')}_JOURNAL`;
    const service = `${opts.name}.journal`;
    const part = `${opts.name}.part`;
    const subjects = [`${service}.>`, `${part}.>`];
    const jsm: JetStreamManager = await nc.jetstreamManager().catch((cause: unknown) => {
      throw new Error(
        `JetStream is not available on ${opts.servers}: start nats-server with -js (the local stack does), or run the shard with --no-journal`,
        { cause },
      );
    });
    const replicas = opts.replicas ?? 1;
    try {
      const info = await jsm.streams.info(stream);
      if (!subjects.every((s) => info.config.subjects?.includes(s)))
        await jsm.streams.update(stream, { ...info.config, subjects });
    } catch (e) {
      if (!String(e).includes('stream not found')) throw e;
      await jsm.streams
        .add({ name: stream, subjects, storage: StorageType.File, num_replicas: replicas })
        .catch(async (err: unknown) => {
          // Another shard created it first.
          await jsm.streams.info(stream).catch(() => {
            throw err;
          });
        });
    }
    await waitForLeader(jsm, stream, replicas);
    const js: JetStreamClient = nc.jetstream();
    const blobs: ObjectStore = await js.views.os(`${opts.name}-blobs`, {
      storage: StorageType.File,
      replicas,
    });
    const parse = (m: {
      subject: string;
      seq: number;
      data: Uint8Array;
      headers?: { get(k: string): string };
    }): JournalEntry => {
      const inPartition = m.subject.startsWith(`${part}.`);
      const partition = inPartition ? Number(m.subject.slice(part.length + 1)) : null;
      const corrupt = (problem: string): JournalEntry => ({
        kind: 'corrupt',
        seq: m.seq,
        subject: m.subject,
        partition: partition !== null && Number.isSafeInteger(partition) && partition >= 0 ? partition : null,
        problem,
      });
      let value: unknown;
      try {
        value = JSON.parse(decoder.decode(m.data));
      } catch {
        return corrupt(`not JSON (${m.data.length} bytes)`);
      }
      if (partition !== null) {
        const batch = readPartitionBatch(value);
        if (typeof batch === 'string') return corrupt(batch);
        if (!Number.isSafeInteger(partition) || partition < 0) return corrupt('not a partition subject');
        return { kind: 'partition', seq: m.seq, partition, batch };
      }
      const record = readJournalRecord(value);
      if (typeof record === 'string') return corrupt(record);
      return { kind: 'service', seq: m.seq, id: m.headers?.get('Nats-Msg-Id') ?? '', record };
    };
    return {
      durable: true,
      async first() {
        // The genesis record, wherever it is: only one is ever stored (see begin), and a message
        // someone else published into the stream may precede it.
        const m = await jsm.streams
          .getMessage(stream, { last_by_subj: `${service}.genesis` })
          .catch((e: unknown) => {
            if (String(e).includes('no message found')) return null;
            throw e;
          });
        if (m === null) return null;
        const entry = parse({ subject: m.subject, seq: m.seq, data: m.data });
        if (entry.kind !== 'service') throw new Error(`journal ${stream}: the genesis record is corrupt`);
        return entry.record;
      },
      async begin(genesis) {
        try {
          // Only the first genesis is stored: the subject must still be empty (the server ignores
          // an expected last *stream* sequence of 0, so the subject's is the one that holds).
          await js.publish(`${service}.genesis`, encodeRecord('genesis', genesis), {
            expect: { lastSubjectSequence: 0 },
          });
          return true;
        } catch (e) {
          if (String(e).includes('wrong last sequence')) return false;
          throw e;
        }
      },
      async append(record, id) {
        const ack = await js.publish(`${service}.${record.t}`, encodeRecord(record.t, record), { msgID: id });
        return ack.seq;
      },
      async appendPartition(partition, batch, expectedSeq) {
        const data = encodeRecord('partition batch', batch);
        try {
          // The message id names the intended append (writer, fence), so JetStream stores one
          // copy of it whatever happens to the publish on its way; a repeat is answered with the
          // stored copy's sequence.
          const ack = await js.publish(
            `${part}.${partition}`,
            data,
            expectedSeq === null
              ? {}
              : {
                  msgID: partitionAppendId(partition, batch, expectedSeq),
                  expect: { lastSubjectSequence: expectedSeq },
                },
          );
          return ack.seq;
        } catch (e) {
          if (String(e).includes('wrong last sequence')) return null;
          throw e;
        }
      },
      follow(deliver, followOpts) {
        let stopped = false;
        let messages: ConsumerMessages | null = null;
        let caught!: () => void;
        let failed!: (e: unknown) => void;
        const caughtUp = new Promise<void>((resolve, reject) => {
          caught = resolve;
          failed = reject;
        });
        const ended = (async () => {
          const info = await jsm.streams.info(stream);
          const target = info.state.last_seq;
          if (info.state.messages === 0) caught();
          /** The next stream sequence to deliver: a consumer (re)starts there. */
          let next = 1;
          // Ends when stopped, or when the journal's connection is closed (nothing left to follow).
          for (let restart = false; !stopped && !nc.isClosed(); restart = true) {
            const opening = js.consumers
              .get(
                stream,
                next === 1 ? {} : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: next },
              )
              .then((c) => c.consume({ expires: CONSUME_EXPIRES_MS }));
            let current: ConsumerMessages;
            try {
              current = await opening;
            } catch (e) {
              // The first consumer fails the follower (misconfigured); a restarted one waits for NATS.
              if (!restart) throw e;
              await new Promise((r) => setTimeout(r, 1_000));
              continue;
            }
            messages = current;
            if (stopped) void current.close();
            const watchdog = new FollowerWatchdog({
              next: () => next,
              lastSeq: () => jsm.streams.info(stream).then((i) => i.state.last_seq),
              restart: (behind) => {
                followOpts?.onRestart?.({ next, behind });
                void current.close();
              },
            });
            try {
              for await (const m of current) {
                // A restarted consumer may hand over what its predecessor already delivered.
                if (m.seq < next) continue;
                watchdog.busy = true;
                await deliver(parse(m));
                watchdog.busy = false;
                watchdog.progress();
                next = m.seq + 1;
                if (m.seq >= target) caught();
              }
            } finally {
              watchdog.stop();
            }
          }
        })().catch((e: unknown) => {
          failed(e);
          if (!stopped) throw e;
        });
        return {
          caughtUp,
          ended,
          stop() {
            stopped = true;
            void messages?.close();
          },
        };
      },
      async putBlob(name, bytes) {
        await blobs.putBlob({ name }, bytes);
      },
      getBlob: (name) => blobs.getBlob(name),
      async close() {
        await nc.drain().catch(() => nc.close());
      },
    };
  } catch (e) {
    await nc.close();
    throw e;
  }
}
