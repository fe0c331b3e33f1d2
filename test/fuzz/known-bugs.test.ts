/**
 * Minimal reproductions of the bugs the fuzzer found (deploy/fuzz/known-bugs.ts), each marked
 * `it.fails`: once a bug is fixed its test fails here, and the entry and the `.fails` go.
 * BUG-1 is the `wire.journal` entry itself (test/fuzz/journal.test.ts); BUG-3 is in wire.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ScenarioError, parseScenarioYaml } from '../../loadgen/scenario/index.js';
import { decodeAttestReply, encodeAttestReply } from '../../proto/codec/index.js';
import { deserializeRollout } from '../../services/rollouts/index.js';
import { unb64 } from '../../services/journal/index.js';

describe('fuzz - known bugs', () => {
  it('rollouts - deserializeRollout answers ROLLOUT_CORRUPT for a null device (BUG-2)', () => {
    expect(deserializeRollout('{"schema":1,"devices":[null],"index":{"a":0}}').ok).toBe(false);
  });

  it('rollouts - deserializeRollout answers ROLLOUT_CORRUPT for an object device ID (BUG-2)', () => {
    const text = '{"schema":1,"devices":[{"deviceId":{"toString":0}}],"index":{"a":0}}';
    expect(deserializeRollout(text).ok).toBe(false);
  });

  it('journal - a base64 field that is an object with a huge length is refused, not allocated (BUG-8)', () => {
    // The long campaign's counterexample: {"t":"endorse","keys":[{"length":142996951}]} published
    // into the journal made the shard allocate 143 MB and loop over it while applying.
    expect(() => unb64({ length: 142_996_951 } as unknown as string)).toThrow(TypeError);
  });

  it('codec - decodeAttestReply gives back the session that was encoded (BUG-5)', () => {
    const session = {
      sessionId: new Uint8Array(16),
      serverPublicKey: Uint8Array.of(4, ...new Uint8Array(64)),
      wrappedKey: new Uint8Array(32),
      expiresAtMs: 1,
    };
    const certificates = {
      updateCertificate: new Uint8Array(),
      clientCertificate: new Uint8Array(),
      tenantCa: new Uint8Array(),
      notAfterMs: 1,
    };
    const r = decodeAttestReply(encodeAttestReply({ ok: true, value: { ...certificates, session } }));
    expect(r.ok && r.value.ok && Object.keys(r.value.value.session)).toEqual(Object.keys(session));
  });

  it('scenario - a map key `constructor: ~` is a ScenarioError (BUG-6)', () => {
    const yaml = "name: x\nduration: 1h\nfleet: { size: 10, osMix: { '25.10': 1, constructor: ~ } }\n";
    expect(() => parseScenarioYaml(yaml)).toThrow(ScenarioError);
  });

  it('scenario - an alias without its anchor is a ScenarioError (BUG-4)', () => {
    expect(() => parseScenarioYaml('*a')).toThrow(ScenarioError);
  });
});
