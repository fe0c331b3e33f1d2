import { describe, expect, test } from 'vitest';
import { alertDemand, alertKey, judgeHostile, planAttacks } from '../../../loadgen/hostile/index.js';
import type {
  AlertsFound,
  AttemptOutcome,
  AttemptRecord,
  PlannedAttempt,
} from '../../../loadgen/hostile/index.js';
import type { AttackProfile, AttacksConfig } from '../../../loadgen/scenario/index.js';

const LIMIT = { burst: 2, perHour: 3600 }; // 2 at once, then one a simulated second

function attempt(profile: AttackProfile, variant: string, seq = 0): PlannedAttempt {
  return {
    profile,
    seq,
    atMs: 0,
    variant,
    op: null,
    attacker: 0,
    victim: 0,
    seed: `s/${seq}`,
  } as PlannedAttempt;
}

function rec(
  profile: AttackProfile,
  variant: string,
  outcome: AttemptOutcome,
  o: { sender?: string | null; sentAtMs?: number; answeredAtMs?: number; seq?: number } = {},
): AttemptRecord {
  return {
    attempt: attempt(profile, variant, o.seq ?? 0),
    outcome,
    sender: o.sender ?? null,
    sentAtMs: o.sentAtMs ?? 0,
    answeredAtMs: o.answeredAtMs ?? o.sentAtMs ?? 0,
  };
}

const refused = (code: string): AttemptOutcome => ({ kind: 'refused', code, message: `refused ${code}` });
const config = (...p: [AttackProfile, number][]): AttacksConfig => ({
  profiles: p.map(([profile, attempts]) => ({ profile, attempts, startAtMs: 0, forMs: 0, devices: 1 })),
});
const found = (entries: [string, string, AlertsFound][]): Map<string, AlertsFound> =>
  new Map(entries.map(([d, t, f]) => [alertKey(d, t), f]));

describe('hostile judge', () => {
  test('judge - refusals with their codes, every proven sender alerted: the row passes', () => {
    const records = [
      rec('impersonate', 'foreign-session', refused('IDENTITY_MISMATCH'), { sender: 'A' }),
      rec('impersonate', 'made-up-session', refused('BAD_MAC')),
      rec('impersonate', 'wrong-key', refused('BAD_MAC')),
      rec('impersonate', 'foreign-session', refused('IDENTITY_MISMATCH'), { sender: 'A' }),
    ];
    const s = judgeHostile(
      config(['impersonate', 4]),
      records,
      found([['A', 'IDENTITY_MISMATCH', { alerts: 1, covered: 2 }]]),
      LIMIT,
    );
    expect(s.pass).toBe(true);
    expect(s.profiles[0]).toMatchObject({
      profile: 'impersonate',
      attempts: 4,
      refused: { IDENTITY_MISMATCH: 2, BAD_MAC: 2 },
      accepted: 0,
      unexpectedRefusals: 0,
      tenantAlerted: 2,
      alertPairs: 1,
      alertPairsFound: 1,
      alertsRead: 1,
      refusalsCovered: 2,
      unattributedRefusals: 2,
      expectedCodes: ['IDENTITY_MISMATCH', 'BAD_MAC'],
      notes: [],
      pass: true,
    });
  });

  test('judge - one accepted attempt fails the row and says what got through', () => {
    const s = judgeHostile(
      config(['replay', 2]),
      [
        rec('replay', 'immediate', refused('REPLAYED'), { sender: 'R' }),
        rec('replay', 'stale', { kind: 'accepted', detail: 'update-check answered OK' }, { sender: 'R' }),
      ],
      found([['R', 'REPLAYED', { alerts: 1, covered: 1 }]]),
      LIMIT,
    );
    expect(s.pass).toBe(false);
    expect(s.profiles[0]?.accepted).toBe(1);
    expect(s.profiles[0]?.notes).toEqual(['stale: ACCEPTED: update-check answered OK']);
  });

  test('judge - a refusal with another code than the variant expects fails the row', () => {
    const s = judgeHostile(
      config(['malformed', 1]),
      [rec('malformed', 'oversize', refused('MALFORMED_INPUT'))],
      new Map(),
      LIMIT,
    );
    expect(s.profiles[0]).toMatchObject({ unexpectedRefusals: 1, unattributedRefusals: 0, pass: false });
    expect(s.profiles[0]?.notes[0]).toContain(
      'oversize: refused MALFORMED_INPUT (expected PAYLOAD_TOO_LARGE)',
    );
  });

  test('judge - a proven sender with no alert in its tenant fails the row; unattributed codes need none', () => {
    const records = [
      rec('replay', 'immediate', refused('REPLAYED'), { sender: 'R' }),
      rec('replay', 'stale', refused('REPLAYED'), { sender: 'R' }),
    ];
    const s = judgeHostile(config(['replay', 2]), records, new Map(), LIMIT);
    expect(s.profiles[0]).toMatchObject({ alertPairs: 1, alertPairsFound: 0, tenantAlerted: 2, pass: false });
    expect(s.profiles[0]?.notes[0]).toBe(
      "no REPLAYED alert names device R… in its tenant's alerts (2 refusals)",
    );
    expect(alertDemand(records)).toEqual([{ deviceId: 'R', type: 'REPLAYED', count: 2 }]);
    // BAD_MAC has no sender: nothing to ask the tenant for.
    expect(alertDemand([rec('impersonate', 'wrong-key', refused('BAD_MAC'))])).toEqual([]);
  });

  test('judge - folded alerts cover their refusals, at most the refusals there were', () => {
    const records = Array.from({ length: 5 }, (_, i) =>
      rec('replay', i % 2 === 0 ? 'immediate' : 'stale', refused('REPLAYED'), { sender: 'R', seq: i }),
    );
    const s = judgeHostile(
      config(['replay', 5]),
      records,
      found([['R', 'REPLAYED', { alerts: 2, covered: 9 }]]),
      LIMIT,
    );
    expect(s.profiles[0]).toMatchObject({ alertsRead: 2, refusalsCovered: 5, pass: true });
  });

  test('judge - a flood may have its budget accepted; past it, acceptances are the attack getting through', () => {
    const flood = (accepted: number, refusedN: number, spanMs: number): AttemptRecord[] => [
      ...Array.from({ length: accepted }, (_, i) =>
        rec(
          'flood',
          'over-budget',
          { kind: 'accepted', detail: 'OK' },
          { sender: 'F', sentAtMs: 0, answeredAtMs: spanMs, seq: i },
        ),
      ),
      ...Array.from({ length: refusedN }, (_, i) =>
        rec('flood', 'over-budget', refused('RATE_LIMITED'), { sender: 'F', sentAtMs: 0, seq: accepted + i }),
      ),
    ];
    const alerts = found([['F', 'RATE_LIMITED', { alerts: 1, covered: 1 }]]);
    // 2 s from the first request sent to the last answered: 2 + 2 + 1 may pass.
    const ok = judgeHostile(config(['flood', 25]), flood(5, 20, 2000), alerts, LIMIT);
    expect(ok.profiles[0]).toMatchObject({
      withinBudget: 5,
      accepted: 0,
      refused: { RATE_LIMITED: 20 },
      pass: true,
    });
    const over = judgeHostile(config(['flood', 25]), flood(7, 18, 2000), alerts, LIMIT);
    expect(over.profiles[0]).toMatchObject({ withinBudget: 5, accepted: 2, pass: false });
    expect(over.profiles[0]?.notes[0]).toContain('had 7 requests accepted, its budget allows 5');
  });

  test('judge - unanswered attempts are shown but do not fail; skipped and missing attempts do', () => {
    const answered = rec('tenantCrossing', 'read', refused('NOT_FOUND'));
    const lost = rec('tenantCrossing', 'claim', { kind: 'no-answer', reason: 'TIMEOUT' });
    const s = judgeHostile(config(['tenantCrossing', 2]), [answered, lost], new Map(), LIMIT);
    expect(s.profiles[0]).toMatchObject({ noAnswer: 1, skipped: 0, pass: true });
    const skipped = rec('tenantCrossing', 'claim', { kind: 'skipped', reason: 'no intruder tenant' });
    const t = judgeHostile(config(['tenantCrossing', 3]), [answered, skipped], new Map(), LIMIT);
    expect(t.profiles[0]).toMatchObject({ attempts: 3, skipped: 2, pass: false });
    expect(t.profiles[0]?.notes).toEqual([
      '1 of 3 attempts were not made before the run ended',
      'claim: not attempted: no intruder tenant',
    ]);
  });

  test('judge - a profile with nothing refused fails, even with every attempt unanswered', () => {
    const s = judgeHostile(
      config(['malformed', 1]),
      [rec('malformed', 'garbage', { kind: 'no-answer', reason: 'TIMEOUT' })],
      new Map(),
      LIMIT,
    );
    expect(s.profiles[0]?.pass).toBe(false);
    expect(s.profiles[0]?.notes).toEqual(['nothing was refused with an expected code']);
  });

  test('judge - rows follow the config; the summary passes only if every row does', () => {
    const plan = planAttacks(config(['replay', 1], ['malformed', 1]), 's', 1);
    const records = plan.map((a) =>
      a.profile === 'replay'
        ? { attempt: a, outcome: refused('REPLAYED'), sender: 'R', sentAtMs: 0, answeredAtMs: 0 }
        : { attempt: a, outcome: refused('MALFORMED_INPUT'), sender: null, sentAtMs: 0, answeredAtMs: 0 },
    );
    const s = judgeHostile(
      config(['replay', 1], ['malformed', 1]),
      records,
      found([['R', 'REPLAYED', { alerts: 1, covered: 1 }]]),
      LIMIT,
    );
    expect(s.profiles.map((p) => [p.profile, p.pass])).toEqual([
      ['replay', true],
      ['malformed', true],
    ]);
    expect(s.pass).toBe(true);
  });
});
