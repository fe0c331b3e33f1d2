/** The security-service shard: partition actors, device gateway over NATS, host wiring. */
export { DEFAULT_SHARD_OPTIONS, startShard } from './host.js';
export { SHARD_HELP, compileShardOptions } from './options.js';
export type { Shard, ShardOptions } from './host.js';
export { SHARD_QUEUE, serveDevices } from './device-gateway.js';
export { partitionDefinition } from './partition-actor.js';
export type { ClaimOutcome, PartitionMessage, PartitionState } from './partition-actor.js';
export type { CryptoItem, CryptoPort, ShardContext } from './context.js';
