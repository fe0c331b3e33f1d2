/**
 * Partition ownership by lease in JetStream KV, fenced by KV revisions (see `logic.ts`).
 */
export { DEFAULT_LEASE_CONFIG, desiredOwner, holds, liveShards, plan, rendezvousWeight } from './logic.js';
export type { LeaseAction, LeaseConfig, LeaseEntry, LeaseRecord, MemberEntry } from './logic.js';
export { LeaseManager, openKvLeaseStore } from './manager.js';
export type { BadLeaseValue, LeaseEvent, LeaseStore } from './manager.js';
