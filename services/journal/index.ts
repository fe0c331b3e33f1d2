/**
 * Durable state of the security service: an append-only journal of facts in a JetStream stream
 * (plus image content in an object store), replayed in order when a shard starts.
 */
export { MAX_RECORD_BYTES, memoryJournal, openJetStreamJournal } from './journal.js';
export type { JetStreamJournalOptions, Journal } from './journal.js';
export { b64, unb64 } from './records.js';
export type { JournalRecord, JournalRecordType, StoredCa } from './records.js';
