import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_PARTITIONS,
  DEVICE_OPS,
  asRejectCode,
  deviceSubject,
  deviceSubjectAll,
  parseDeviceId,
  parseTenantId,
  partitionOf,
  partitionOfSubject,
  shortDeviceId,
} from '../../../proto/codec/index.js';
import type { DeviceId } from '../../../proto/codec/index.js';

const hexString = (len: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: len, maxLength: len });

describe('codec ids', () => {
  it('ids - parseDeviceId accepts exactly 128 lowercase hex characters', () => {
    const id = 'ab'.repeat(64);
    expect(parseDeviceId(id)).toBe(id);
    expect(parseDeviceId(id.slice(1))).toBeNull();
    expect(parseDeviceId(`${id}0`)).toBeNull();
    expect(parseDeviceId(id.toUpperCase())).toBeNull();
    expect(parseDeviceId(`${id.slice(0, 127)}g`)).toBeNull();
    expect(parseDeviceId(`${id}\n`)).toBeNull();
    expect(parseDeviceId('')).toBeNull();
  });

  it('ids - parseTenantId accepts t- followed by 16 lowercase hex characters', () => {
    expect(parseTenantId('t-0123456789abcdef')).toBe('t-0123456789abcdef');
    expect(parseTenantId('t-0123456789ABCDEF')).toBeNull();
    expect(parseTenantId('t-0123456789abcde')).toBeNull();
    expect(parseTenantId('x-0123456789abcdef')).toBeNull();
  });

  it('ids - shortDeviceId is the first 12 characters', () => {
    const id = parseDeviceId('0123456789ab' + 'f'.repeat(116)) as DeviceId;
    expect(shortDeviceId(id)).toBe('0123456789ab');
  });

  it('ids - asRejectCode keeps known codes and maps unknown ones to INTERNAL', () => {
    expect(asRejectCode('NONCE_REUSED')).toBe('NONCE_REUSED');
    expect(asRejectCode('nonce_reused')).toBe('INTERNAL');
    expect(asRejectCode('')).toBe('INTERNAL');
  });
});

describe('codec subjects', () => {
  it('subjects - partitionOf is the first 32 bits of the ID modulo the partition count', () => {
    const id = parseDeviceId('00000041' + '0'.repeat(120)) as DeviceId;
    expect(partitionOf(id, 64)).toBe(0x41 % 64);
    const high = parseDeviceId('ffffffff' + '0'.repeat(120)) as DeviceId;
    expect(partitionOf(high, 64)).toBe(0xffffffff % 64);
    expect(partitionOf(high, 1)).toBe(0);
  });

  it('subjects - partitionOf is always within [0, partitions)', () => {
    fc.assert(
      fc.property(hexString(128), fc.integer({ min: 1, max: 4096 }), (s, n) => {
        const p = partitionOf(parseDeviceId(s) as DeviceId, n);
        expect(Number.isInteger(p)).toBe(true);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThan(n);
      }),
    );
  });

  it('subjects - device subjects round trip through partitionOfSubject', () => {
    for (const op of DEVICE_OPS) {
      for (const p of [0, 1, 63, DEFAULT_PARTITIONS - 1, 999_999]) {
        const s = deviceSubject(op, p);
        expect(s).toBe(`sphere.dev.v1.${op}.${p}`);
        expect(partitionOfSubject(s)).toBe(p);
      }
      expect(deviceSubjectAll(op)).toBe(`sphere.dev.v1.${op}.*`);
    }
  });

  it('subjects - partitionOfSubject returns null for subjects that do not end in a partition', () => {
    expect(partitionOfSubject('sphere.dev.v1.attest.*')).toBeNull();
    expect(partitionOfSubject('sphere.dev.v1.attest.')).toBeNull();
    expect(partitionOfSubject('sphere.dev.v1.attest.-1')).toBeNull();
    expect(partitionOfSubject('sphere.dev.v1.attest.1234567')).toBeNull();
    expect(partitionOfSubject('sphere.dev.v1.attest.1e3')).toBeNull();
  });
});
