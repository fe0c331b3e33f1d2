/**
 * Fuzz - the entry-point table itself: everything the codec, DEVICE_OPS and the gRPC service
 * define is fuzzed, with a valid-message generator where one is needed (a new message or op fails
 * here, naming the line to add in deploy/fuzz/).
 */
import { describe, expect, it } from 'vitest';
import { DEVICE_LIMITS, DEVICE_OPS } from '../../proto/codec/index.js';
import { OperatorServiceService } from '../../proto/gen/sphere/operator/v1/operator.js';
import { FUZZ_ENTRY_POINTS } from '../../deploy/fuzz/entry-points.js';
import { VALID_DEVICE_MESSAGES, deviceDecoders, deviceOpMessages } from '../../deploy/fuzz/device-codec.js';
import { OP_COUNTERS } from '../../deploy/fuzz/target.js';

describe('fuzz - entry-point table', () => {
  const decoders = deviceDecoders();

  it('table - names are unique and every family is present', () => {
    const names = FUZZ_ENTRY_POINTS.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const d of decoders) expect(names).toContain(`codec.decode${d.message}`);
    for (const m of Object.keys(OperatorServiceService))
      expect(names).toContain(`operator-api.deserialize.${m}`);
    for (const op of DEVICE_OPS) expect(names).toContain(`wire.device.${op}`);
    expect(names).toContain('wire.operator-api');
  });

  it('table - every codec decoder has a valid-message generator (deploy/fuzz/device-codec.ts VALID_DEVICE_MESSAGES)', () => {
    expect(decoders.length).toBeGreaterThanOrEqual(12);
    expect(
      decoders.filter((d) => VALID_DEVICE_MESSAGES[d.message] === undefined).map((d) => d.message),
    ).toEqual([]);
    expect(decoders.filter((d) => d.encode === undefined).map((d) => d.message)).toEqual([]);
  });

  it('table - every device op has request and reply decoders (OP_MESSAGES) and a counter (OP_COUNTERS)', () => {
    const ops = deviceOpMessages(decoders);
    expect(ops.filter((o) => o.request === undefined || o.reply === undefined).map((o) => o.op)).toEqual([]);
    expect(DEVICE_OPS.filter((op) => OP_COUNTERS[op] === undefined)).toEqual([]);
  });

  it('table - probing finds the size limits DEVICE_LIMITS states', () => {
    const limits = DEVICE_LIMITS as Readonly<Record<string, number>>;
    const byName = new Map(decoders.map((d) => [d.message, d.limit]));
    expect(byName.get('ChallengeRequest')).toBe(limits['challengeRequest']);
    expect(byName.get('AttestRequest')).toBe(limits['attestRequest']);
    expect(byName.get('Heartbeat')).toBe(limits['heartbeat']);
    expect(byName.get('UpdateCheckReply')).toBe(limits['updateCheckReply']);
  });

  it('table - field shapes are discovered from the generated decoders', () => {
    const evidence = decoders.find((d) => d.message === 'Evidence');
    expect(evidence?.shape?.fields.map((f) => f.field)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(evidence?.shape?.fields.find((f) => f.field === 3)?.nested?.fields.map((f) => f.field)).toEqual([
      1, 2,
    ]);
  });
});
