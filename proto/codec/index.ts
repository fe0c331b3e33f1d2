/**
 * The protocol's front door: subjects, IDs, rejection codes and strict codecs that turn wire
 * bytes into domain values (and back). Generated types from proto/gen stay behind this module.
 */
export * from './device.js';
export * from './ids.js';
export * from './reject-codes.js';
export * from './subjects.js';
export { decodeStrict, encodeMessage } from './strict.js';
export type { DecodeFailure, Decoded, MessageFns } from './strict.js';
