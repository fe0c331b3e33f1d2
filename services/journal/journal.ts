import { connect, StorageType } from 'nats';
import type { JetStreamClient, NatsConnection, ObjectStore } from 'nats';
import type { JournalRecord } from './records.js';

/**
 * The shard's durable state as an append-only journal of facts (tenant created, devices claimed,
 * image uploaded, rollout message applied, ...). A restarted shard replays it in order and ends up
 * in the state it had: every step is deterministic given the recorded inputs (times, keys, IDs).
 * Large bytes (image content) go to a blob store beside it.
 */
export interface Journal {
  /** Appends `record`; resolves once it is stored (for JetStream: acknowledged by the server). */
  append(record: JournalRecord): Promise<void>;
  /** Stores `bytes` under `name` (image content); resolves once stored. */
  putBlob(name: string, bytes: Uint8Array): Promise<void>;
  getBlob(name: string): Promise<Uint8Array | null>;
  /** Feeds every stored record, in append order, to `apply`; resolves with how many. */
  replay(apply: (record: JournalRecord) => void | Promise<void>): Promise<number>;
  /** Whether the journal survives the process (JetStream) or not (memory). */
  readonly durable: boolean;
  close(): Promise<void>;
}

/**
 * The journal of a shard that keeps its state in memory only: nothing outlives the process and a
 * new process starts empty, so records and blobs are not kept (the state itself holds them).
 */
export function memoryJournal(): Journal {
  return {
    durable: false,
    append: () => Promise.resolve(),
    putBlob: () => Promise.resolve(),
    getBlob: () => Promise.resolve(null),
    replay: () => Promise.resolve(0),
    close: () => Promise.resolve(),
  };
}

export interface JetStreamJournalOptions {
  readonly servers: string;
  /** Names the stream (`<NAME>_JOURNAL`), its subjects (`<name>.journal.>`) and blob bucket. */
  readonly name: string;
  /** NATS connection name. */
  readonly connectionName: string;
}

/** Records larger than this are refused (NATS' default max payload is 1 MiB). */
export const MAX_RECORD_BYTES = 900 * 1024;

/**
 * The journal in a JetStream stream (file storage, so it survives nats-server restarts too) and
 * image content in a JetStream object store. Appends are pipelined: each resolves on its own
 * acknowledgement, and JetStream stores them in the order they were published on this connection.
 */
export async function openJetStreamJournal(opts: JetStreamJournalOptions): Promise<Journal> {
  const nc: NatsConnection = await connect({ servers: opts.servers, name: opts.connectionName });
  try {
    const stream = `${opts.name.toUpperCase().replace(/[^A-Z0-9_-]/g, '_')}_JOURNAL`;
    const subject = `${opts.name}.journal`;
    const jsm = await nc.jetstreamManager().catch((cause: unknown) => {
      throw new Error(
        `JetStream is not available on ${opts.servers}: start nats-server with -js (the local stack does), or run the shard with --no-journal`,
        { cause },
      );
    });
    try {
      await jsm.streams.info(stream);
    } catch {
      await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], storage: StorageType.File });
    }
    const js: JetStreamClient = nc.jetstream();
    const blobs: ObjectStore = await js.views.os(`${opts.name}-blobs`, { storage: StorageType.File });
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    return {
      durable: true,
      async append(record) {
        const data = encoder.encode(JSON.stringify(record));
        if (data.length > MAX_RECORD_BYTES) {
          throw new Error(
            `journal record ${record.t} is ${data.length} bytes (limit ${MAX_RECORD_BYTES}); split it`,
          );
        }
        await js.publish(`${subject}.${record.t}`, data);
      },
      async putBlob(name, bytes) {
        await blobs.putBlob({ name }, bytes);
      },
      getBlob: (name) => blobs.getBlob(name),
      async replay(apply) {
        const info = await jsm.streams.info(stream);
        const last = info.state.last_seq;
        if (info.state.messages === 0) return 0;
        const consumer = await js.consumers.get(stream);
        const messages = await consumer.consume();
        let n = 0;
        for await (const m of messages) {
          await apply(JSON.parse(decoder.decode(m.data)) as JournalRecord);
          n++;
          if (m.seq >= last) break;
        }
        await messages.close();
        return n;
      },
      async close() {
        await nc.drain();
      },
    };
  } catch (e) {
    await nc.close();
    throw e;
  }
}
