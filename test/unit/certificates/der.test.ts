import { describe, expect, it } from 'vitest';
import { der } from '../../../services/certificates/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('certificates der', () => {
  it('der - lengths use short form below 128 and minimal long form above', () => {
    expect(hex(der.encodeLength(0))).toBe('00');
    expect(hex(der.encodeLength(127))).toBe('7f');
    expect(hex(der.encodeLength(128))).toBe('8180');
    expect(hex(der.encodeLength(256))).toBe('820100');
    expect(hex(der.encodeLength(70000))).toBe('83011170');
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 70000]) {
      const enc = der.octetString(new Uint8Array(n));
      expect(enc.length).toBe(n + 1 + der.encodeLength(n).length);
      expect(hex(enc.subarray(1, 1 + der.encodeLength(n).length))).toBe(hex(der.encodeLength(n)));
    }
  });

  it('der - integers are minimal and sign-padded', () => {
    expect(hex(der.integerFromBytes(Uint8Array.of(0x7f)))).toBe('02017f');
    expect(hex(der.integerFromBytes(Uint8Array.of(0x80)))).toBe('02020080');
    expect(hex(der.integerFromBytes(Uint8Array.of(0, 0, 0x01)))).toBe('020101');
    expect(hex(der.integerFromBytes(Uint8Array.of(0, 0x80)))).toBe('02020080');
    expect(hex(der.integerFromBytes(new Uint8Array(0)))).toBe('020100');
    expect(hex(der.integerFromBytes(Uint8Array.of(0, 0)))).toBe('020100');
    expect(hex(der.integerFromNumber(0))).toBe('020100');
    expect(hex(der.integerFromNumber(2))).toBe('020102');
    expect(hex(der.integerFromNumber(128))).toBe('02020080');
    expect(hex(der.integerFromNumber(256))).toBe('02020100');
    expect(hex(der.integerFromNumber(-1))).toBe('0201ff');
    expect(hex(der.integerFromNumber(-128))).toBe('020180');
    expect(hex(der.integerFromNumber(-129))).toBe('0202ff7f');
  });

  it('der - object identifiers encode base-128 arcs', () => {
    expect(hex(der.oid('1.2.840.10045.2.1'))).toBe('06072a8648ce3d0201');
    expect(hex(der.oid('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302');
    expect(hex(der.oid('2.5.29.19'))).toBe('0603551d13');
    expect(hex(der.oid('2.999.3'))).toBe('0603883703');
    expect(() => der.oid('1.40')).toThrow(RangeError);
    expect(() => der.oid('1.x')).toThrow(RangeError);
  });

  it('der - times follow RFC 5280 (UTCTime through 2049, then GeneralizedTime)', () => {
    const t = Date.UTC(2025, 5, 7, 8, 9, 10, 999);
    expect(Buffer.from(der.x509Time(t)).toString('latin1')).toBe('\x17\x0d250607080910Z');
    expect(Buffer.from(der.x509Time(Date.UTC(2049, 11, 31, 23, 59, 59))).toString('latin1')).toBe(
      '\x17\x0d491231235959Z',
    );
    expect(Buffer.from(der.x509Time(Date.UTC(2050, 0, 1))).toString('latin1')).toBe(
      '\x18\x0f20500101000000Z',
    );
    expect(Buffer.from(der.x509Time(Date.UTC(1950, 0, 1))).toString('latin1')).toBe('\x17\x0d500101000000Z');
    expect(() => der.utcTime(Date.UTC(2050, 0, 1))).toThrow(RangeError);
  });

  it('der - strings, booleans, null, bit strings and tagging', () => {
    expect(hex(der.utf8String('é'))).toBe('0c02c3a9');
    expect(hex(der.printableString('Ab 1'))).toBe('130441622031');
    expect(() => der.printableString('a@b')).toThrow(RangeError);
    expect(hex(der.boolean(true))).toBe('0101ff');
    expect(hex(der.boolean(false))).toBe('010100');
    expect(hex(der.nullValue())).toBe('0500');
    expect(hex(der.bitString(Uint8Array.of(0xaa)))).toBe('030200aa');
    expect(hex(der.namedBitString([0]))).toBe('03020780'); // digitalSignature
    expect(hex(der.namedBitString([5, 6]))).toBe('03020106'); // keyCertSign, cRLSign
    expect(hex(der.namedBitString([0, 8]))).toBe('0303078080');
    expect(hex(der.explicit(3, der.nullValue()))).toBe('a3020500');
    expect(hex(der.implicit(6, Uint8Array.of(0x61)))).toBe('860161');
    expect(hex(der.implicit(1, Uint8Array.of(0x05, 0x00), true))).toBe('a1020500');
  });

  it('der - SET OF sorts members by encoding, SEQUENCE keeps order', () => {
    const a = der.utf8String('b');
    const b = der.utf8String('a');
    expect(hex(der.set(a, b))).toBe('31060c01610c0162');
    expect(hex(der.sequence(a, b))).toBe('30060c01620c0161');
  });
});
