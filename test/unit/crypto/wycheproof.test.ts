/**
 * Wycheproof ECDSA P-256/SHA-256 vectors against both verification implementations.
 *
 * Policy for `acceptable` vectors: no implicit pass. Every acceptable vector must be
 * listed in ACCEPTABLE_EXPECTATIONS with the answer each implementation is expected to
 * give, and the test asserts exactly that answer. The pinned vector files
 * (testvectors_v1, commit 507bb99) contain zero acceptable vectors, which is asserted
 * too, so a fixture update that introduces some forces a deliberate decision here.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  nobleVerifyDer,
  nobleVerifyP1363,
  publicKeyFromRaw,
  verifyDer,
  verifyP1363,
} from '../../../actors/crypto/index.js';

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface WycheproofGroup {
  publicKey?: { uncompressed: string };
  key?: { uncompressed: string };
  tests: WycheproofTest[];
}
interface WycheproofFile {
  numberOfTests: number;
  testGroups: WycheproofGroup[];
}

type Impl = 'native' | 'noble';
type FileName = 'ecdsa_secp256r1_sha256_p1363_test.json' | 'ecdsa_secp256r1_sha256_test.json';

/** Expected verify result for acceptable vectors, per file, implementation and tcId. */
const ACCEPTABLE_EXPECTATIONS: Record<FileName, Record<Impl, Record<number, boolean>>> = {
  'ecdsa_secp256r1_sha256_p1363_test.json': { native: {}, noble: {} },
  'ecdsa_secp256r1_sha256_test.json': { native: {}, noble: {} },
};

const FIXTURES = fileURLToPath(new URL('../../fixtures/wycheproof/', import.meta.url));

function load(name: FileName): WycheproofFile {
  return JSON.parse(readFileSync(FIXTURES + name, 'utf8')) as WycheproofFile;
}

const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

type Verifier = (pub65: Uint8Array, msg: Uint8Array, sig: Uint8Array) => boolean;

function makeNative(encoding: 'p1363' | 'der'): Verifier {
  const cache = new Map<string, ReturnType<typeof publicKeyFromRaw>>();
  return (pub65, msg, sig) => {
    const id = Buffer.from(pub65).toString('hex');
    let key = cache.get(id);
    if (key === undefined) {
      key = publicKeyFromRaw(pub65);
      cache.set(id, key);
    }
    return encoding === 'p1363' ? verifyP1363(key, msg, sig) : verifyDer(key, msg, sig);
  };
}

/** Runs every vector; returns human-readable failures (empty = all as expected). */
function runFile(
  name: FileName,
  impl: Impl,
  verify: Verifier,
): { failures: string[]; counts: Record<string, number> } {
  const file = load(name);
  const failures: string[] = [];
  const counts: Record<string, number> = { valid: 0, invalid: 0, acceptable: 0 };
  let total = 0;
  for (const group of file.testGroups) {
    const uncompressed = group.publicKey?.uncompressed ?? group.key?.uncompressed;
    if (uncompressed === undefined) throw new Error(`${name}: group without uncompressed public key`);
    const pub = bytes(uncompressed);
    for (const t of group.tests) {
      total++;
      counts[t.result] = (counts[t.result] ?? 0) + 1;
      let expected: boolean;
      if (t.result === 'acceptable') {
        const e = ACCEPTABLE_EXPECTATIONS[name][impl][t.tcId];
        if (e === undefined) {
          failures.push(`tcId ${t.tcId} (${t.comment}): acceptable vector without a recorded expectation`);
          continue;
        }
        expected = e;
      } else {
        expected = t.result === 'valid';
      }
      let got: boolean;
      try {
        got = verify(pub, bytes(t.msg), bytes(t.sig));
      } catch (e) {
        failures.push(`tcId ${t.tcId} (${t.comment}): threw ${String(e)}`);
        continue;
      }
      if (got !== expected) failures.push(`tcId ${t.tcId} (${t.comment}) [${t.result}]: got ${got}`);
    }
  }
  expect(total).toBe(file.numberOfTests);
  return { failures, counts };
}

describe('crypto wycheproof', () => {
  const cases: Array<[FileName, Impl, Verifier]> = [
    ['ecdsa_secp256r1_sha256_p1363_test.json', 'native', makeNative('p1363')],
    ['ecdsa_secp256r1_sha256_p1363_test.json', 'noble', nobleVerifyP1363],
    ['ecdsa_secp256r1_sha256_test.json', 'native', makeNative('der')],
    ['ecdsa_secp256r1_sha256_test.json', 'noble', nobleVerifyDer],
  ];
  for (const [name, impl, verify] of cases) {
    it(`wycheproof - ${impl} verifier matches every vector in ${name}`, () => {
      const { failures, counts } = runFile(name, impl, verify);
      expect(failures, `failing vectors:\n${failures.join('\n')}`).toEqual([]);
      expect(counts.valid).toBeGreaterThan(100);
      expect(counts.invalid).toBeGreaterThan(50);
      // See the header comment: the pinned files have no acceptable vectors.
      expect(counts.acceptable).toBe(Object.keys(ACCEPTABLE_EXPECTATIONS[name][impl]).length);
    });
  }
});
