/**
 * Durable state of the security service: an append-only journal of facts in a JetStream stream
 * (plus image content in an object store), replayed in order when a shard starts.
 */
export { FollowerWatchdog, MAX_RECORD_BYTES, memoryJournal, openJetStreamJournal } from './journal.js';
export type {
  FollowOptions,
  Follower,
  JetStreamJournalOptions,
  Journal,
  JournalEntry,
  WatchdogOptions,
} from './journal.js';
export { b64, unb64 } from './records.js';
export type {
  DeviceSnapshot,
  JournalRecord,
  JournalRecordType,
  PartitionBatch,
  StoredCa,
} from './records.js';
