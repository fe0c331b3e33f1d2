import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_UPDATE_BEHAVIOUR,
  UPDATE_CODES,
  initialUpdateAgentState,
  updateTransition,
} from '../../../actors/update-agent/index.js';
import type {
  InstalledImage,
  UpdateAgentEffect,
  UpdateAgentMessage,
  UpdateAgentState,
  UpdateOffer,
} from '../../../actors/update-agent/index.js';

const B = DEFAULT_UPDATE_BEHAVIOUR;
const OS_V4: InstalledImage = { kind: 'os', name: 'azure-sphere-os', version: '25.04', securityVersion: 4 };
const APP_V1: InstalledImage = { kind: 'app', name: 'blinky', version: '1.0.0', securityVersion: 0 };
const osOffer = (version: string, securityVersion: number, id = `os:${version}`): UpdateOffer => ({
  offerId: id,
  kind: 'os',
  name: 'azure-sphere-os',
  version,
  securityVersion,
  length: 1000,
  chunkSize: 256,
});
const appOffer = (version: string): UpdateOffer => ({
  offerId: `app:${version}`,
  kind: 'app',
  name: 'blinky',
  version,
  securityVersion: 0,
  length: 100,
  chunkSize: 256,
});

/** Feeds messages in order and returns the last state and every effect produced. */
function run(
  msgs: UpdateAgentMessage[],
  s0 = initialUpdateAgentState([OS_V4, APP_V1]),
  now = 0,
): [UpdateAgentState, UpdateAgentEffect[]] {
  let s = s0;
  const all: UpdateAgentEffect[] = [];
  for (const m of msgs) {
    const [next, fx] = updateTransition(s, m, now, B);
    s = next;
    all.push(...fx);
  }
  return [s, all];
}

const reports = (fx: UpdateAgentEffect[]) =>
  fx.flatMap((e) => (e.kind === 'report' ? [[e.offerId, e.outcome, e.code ?? null]] : []));
const chunks = (offerId: string, n: number): UpdateAgentMessage[] =>
  Array.from({ length: n }, (_, index) => ({
    type: 'update.chunk-received' as const,
    offerId,
    index,
    bytes: 256,
  }));
/** Everything after the download of `o` for a device where all goes well. */
const afterDownload = (o: UpdateOffer): UpdateAgentMessage[] => [
  { type: 'update.verified', offerId: o.offerId, ok: true },
  { type: 'update.installed', offerId: o.offerId, ok: true },
  { type: 'update.booted', offerId: o.offerId, ok: true },
  { type: 'update.health', offerId: o.offerId, ok: true },
];

describe('update agent', () => {
  it('update agent - an OS update goes download, verify, install, reboot, health check, commit', () => {
    const o = osOffer('25.10', 5);
    const [s, fx] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [o] },
      ...chunks(o.offerId, 4),
      ...afterDownload(o),
    ]);
    expect(fx[0]).toEqual({ kind: 'request-offers' });
    expect(
      fx
        .filter((e) => e.kind === 'fetch-chunk')
        .map((e) => (e.kind === 'fetch-chunk' ? [e.index, e.offset, e.length] : [])),
    ).toEqual([
      [0, 0, 256],
      [1, 256, 256],
      [2, 512, 256],
      [3, 768, 232],
    ]);
    expect(fx.map((e) => e.kind).filter((k) => k !== 'fetch-chunk' && k !== 'report')).toEqual([
      'request-offers',
      'verify',
      'install',
      'reboot',
      'health-check',
      'schedule',
    ]);
    expect(reports(fx)).toEqual([
      ['os:25.10', 'downloading', null],
      ['os:25.10', 'installing', null],
      ['os:25.10', 'succeeded', null],
    ]);
    expect(s.components['os']).toEqual({
      active: { kind: 'os', name: 'azure-sphere-os', version: '25.10', securityVersion: 5 },
      previous: OS_V4,
      installedBy: 'os:25.10',
    });
    expect(s.antiRollbackVersion).toBe(5);
    expect(s.phase).toBe('idle');
    expect(fx.at(-1)).toEqual({
      kind: 'schedule',
      delayMs: B.checkEveryMs,
      msg: { type: 'update.check-due', timer: s.checkTimer },
    });
  });

  it('update agent - one check schedule at a time: boot checks and failed checks replace it, stale timers do nothing', () => {
    const schedules = (fx: UpdateAgentEffect[]) => fx.filter((e) => e.kind === 'schedule').map((e) => e.msg);
    // A regular check finds nothing: the next is scheduled as timer 1.
    let [s, fx] = run([{ type: 'update.check-due' }, { type: 'update.offers', offers: [] }]);
    expect(schedules(fx)).toEqual([{ type: 'update.check-due', timer: 1 }]);
    // The device reboots and checks at once (no timer): that check schedules timer 2.
    [s, fx] = run([{ type: 'update.check-due' }, { type: 'update.offers', offers: [] }], s);
    expect(schedules(fx)).toEqual([{ type: 'update.check-due', timer: 2 }]);
    // Timer 1 fires later: stale, no check. Timer 2 runs.
    [s, fx] = run([{ type: 'update.check-due', timer: 1 }], s);
    expect([s.phase, fx]).toEqual(['idle', []]);
    [s, fx] = run([{ type: 'update.check-due', timer: 2 }], s);
    expect(fx).toEqual([{ kind: 'request-offers' }]);
    // It fails: one retry, replacing the regular schedule (never one of each).
    [s, fx] = run([{ type: 'update.check-failed', retryInMs: 30_000 }], s);
    expect(s.phase).toBe('idle');
    expect(fx).toEqual([{ kind: 'schedule', delayMs: 30_000, msg: { type: 'update.check-due', timer: 3 } }]);
    // A failure report outside a check changes nothing.
    expect(run([{ type: 'update.check-failed', retryInMs: 1 }], s)).toEqual([s, []]);
  });

  it('update agent - OS offers go before application offers; the installed version is not downloaded but counts as succeeded', () => {
    const [s, fx] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [appOffer('1.1.0'), appOffer('1.0.0'), osOffer('25.10', 5)] },
    ]);
    expect(reports(fx)).toEqual([
      ['app:1.0.0', 'succeeded', UPDATE_CODES.ALREADY_INSTALLED],
      ['os:25.10', 'downloading', null],
    ]);
    expect(s.queue.map((o) => o.offerId)).toEqual(['app:1.1.0']);
    // Asked again (the report was not acknowledged yet), it reports under the same ID.
    const [, again] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [appOffer('1.0.0')] },
    ]);
    const ids = [...fx, ...again].flatMap((e) =>
      e.kind === 'report' && e.offerId === 'app:1.0.0' ? [e.reportId] : [],
    );
    expect(new Set(ids).size).toBe(1);
  });

  it('update agent - an OS below the anti-rollback version is refused without download', () => {
    const [s, fx] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [osOffer('24.10', 3)] },
    ]);
    expect(reports(fx)).toEqual([['os:24.10', 'failed', UPDATE_CODES.SECURITY_VERSION_ROLLBACK]]);
    expect(fx.some((e) => e.kind === 'fetch-chunk')).toBe(false);
    expect(s.phase).toBe('idle');
  });

  it('update agent - an interrupted download resumes from the next chunk, not from zero', () => {
    const o = osOffer('25.10', 5);
    const [s, fx] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [o] },
      ...chunks(o.offerId, 2),
      { type: 'update.download-interrupted', offerId: o.offerId, reason: 'power loss' },
    ]);
    expect(s.phase).toBe('interrupted');
    expect(fx.at(-1)).toEqual({
      kind: 'schedule',
      delayMs: B.resumeAfterMs,
      msg: { type: 'update.resume-due', offerId: o.offerId },
    });
    const [, fx2] = updateTransition(s, { type: 'update.resume-due', offerId: o.offerId }, 0, B);
    expect(fx2).toEqual([{ kind: 'fetch-chunk', offerId: o.offerId, index: 2, offset: 512, length: 256 }]);
  });

  it('update agent - install failure, boot loop and failed health check each keep the last known good image', () => {
    const o = osOffer('25.10', 5);
    const start: UpdateAgentMessage[] = [
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [o] },
      ...chunks(o.offerId, 4),
    ];
    const verified: UpdateAgentMessage = { type: 'update.verified', offerId: o.offerId, ok: true };
    const cases: [UpdateAgentMessage[], string, string][] = [
      [
        [verified, { type: 'update.installed', offerId: o.offerId, ok: false }],
        'failed',
        UPDATE_CODES.INSTALL_FAILED,
      ],
      [
        [
          verified,
          { type: 'update.installed', offerId: o.offerId, ok: true },
          { type: 'update.booted', offerId: o.offerId, ok: false },
        ],
        'rolled-back',
        UPDATE_CODES.BOOT_FAILED,
      ],
      [
        [
          verified,
          { type: 'update.installed', offerId: o.offerId, ok: true },
          { type: 'update.booted', offerId: o.offerId, ok: true },
          { type: 'update.health', offerId: o.offerId, ok: false },
        ],
        'rolled-back',
        UPDATE_CODES.HEALTH_CHECK_FAILED,
      ],
      [
        [{ type: 'update.verified', offerId: o.offerId, ok: false, code: 'TUF_HASH_MISMATCH' }],
        'failed',
        'TUF_HASH_MISMATCH',
      ],
    ];
    for (const [tail, outcome, code] of cases) {
      const [s, fx] = run([...start, ...tail]);
      expect(reports(fx).at(-1)).toEqual([o.offerId, outcome, code]);
      expect(s.components['os']?.active).toEqual(OS_V4);
      expect(s.antiRollbackVersion).toBe(4);
    }
  });

  it('update agent - late, duplicated and foreign results change nothing', () => {
    const o = osOffer('25.10', 5);
    const [s] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [o] },
      ...chunks(o.offerId, 1),
    ]);
    for (const m of [
      { type: 'update.chunk-received', offerId: o.offerId, index: 0, bytes: 256 },
      { type: 'update.chunk-received', offerId: 'os:other', index: 1, bytes: 256 },
      { type: 'update.verified', offerId: o.offerId, ok: true },
      { type: 'update.health', offerId: o.offerId, ok: true },
      { type: 'update.offers', offers: [osOffer('26.01', 6)] },
    ] satisfies UpdateAgentMessage[]) {
      expect(updateTransition(s, m, 0, B)).toEqual([s, []]);
    }
  });

  it('update agent - an application defers an OS update for at most 24 h from its first request', () => {
    const o = osOffer('25.10', 5);
    let [s] = run([{ type: 'update.check-due' }, { type: 'update.offers', offers: [o] }], undefined, 0);
    let fx: UpdateAgentEffect[];
    [s, fx] = updateTransition(s, { type: 'update.defer-requested', untilMs: 48 * 3_600_000 }, 1_000, B);
    expect(s.phase).toBe('deferred');
    expect(s.deferredUntilMs).toBe(1_000 + B.maxDeferralMs);
    expect(fx).toEqual([
      { kind: 'schedule', delayMs: B.maxDeferralMs, msg: { type: 'update.defer-elapsed' } },
    ]);
    // Asking again later does not extend past 24 h from the first request.
    [s] = updateTransition(
      s,
      { type: 'update.defer-requested', untilMs: 100 * 3_600_000 },
      10 * 3_600_000,
      B,
    );
    expect(s.deferredUntilMs).toBe(1_000 + B.maxDeferralMs);
    // Too early: still deferred. At the deadline the download restarts.
    expect(updateTransition(s, { type: 'update.defer-elapsed' }, 5 * 3_600_000, B)[0]).toBe(s);
    [s, fx] = updateTransition(s, { type: 'update.defer-elapsed' }, 1_000 + B.maxDeferralMs, B);
    expect(s.phase).toBe('downloading');
    expect(fx).toContainEqual({ kind: 'fetch-chunk', offerId: o.offerId, index: 0, offset: 0, length: 256 });
  });

  it('update agent - an ordered rollback restores the previous image, but never an OS below the fuses', () => {
    const app = appOffer('1.1.0');
    let [s, fx] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [app] },
      ...chunks(app.offerId, 1),
      ...afterDownload(app),
    ]);
    expect(s.components['app:blinky']?.active.version).toBe('1.1.0');
    [s, fx] = updateTransition(s, { type: 'update.rollback-ordered', offerId: app.offerId }, 0, B);
    expect(s.components['app:blinky']?.active).toEqual(APP_V1);
    expect(reports(fx)).toEqual([[app.offerId, 'rolled-back', UPDATE_CODES.ROLLBACK_ORDERED]]);
    expect(updateTransition(s, { type: 'update.rollback-ordered', offerId: 'app:unknown' }, 0, B)).toEqual([
      s,
      [],
    ]);

    const os = osOffer('25.10', 5);
    [s] = run([
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [os] },
      ...chunks(os.offerId, 4),
      ...afterDownload(os),
    ]);
    [s, fx] = updateTransition(s, { type: 'update.rollback-ordered', offerId: os.offerId }, 0, B);
    expect(reports(fx)).toEqual([[os.offerId, 'failed', UPDATE_CODES.SECURITY_VERSION_ROLLBACK]]);
    expect(s.components['os']?.active.version).toBe('25.10');
  });

  it('update agent - a retried offer reports under new report IDs', () => {
    const o = osOffer('25.10', 5);
    const fail: UpdateAgentMessage[] = [
      { type: 'update.check-due' },
      { type: 'update.offers', offers: [o] },
      ...chunks(o.offerId, 4),
      { type: 'update.verified', offerId: o.offerId, ok: false },
    ];
    const [, fx] = run([...fail, ...fail]);
    const ids = fx.flatMap((e) => (e.kind === 'report' ? [e.reportId] : []));
    expect(ids).toEqual([
      'os:25.10/1/downloading',
      'os:25.10/1/failed',
      'os:25.10/2/downloading',
      'os:25.10/2/failed',
    ]);
  });

  it('update agent - any message sequence keeps invariants: one active image per component, fuses never go down, the OS never runs below them', () => {
    const offers = [
      osOffer('25.10', 5),
      osOffer('26.01', 6),
      osOffer('24.10', 3),
      appOffer('1.1.0'),
      appOffer('2.0.0'),
    ];
    const ids = offers.map((o) => o.offerId);
    const msg = fc.oneof(
      fc.constant<UpdateAgentMessage>({ type: 'update.check-due' }),
      fc.constant<UpdateAgentMessage>({ type: 'update.check-failed', retryInMs: 1000 }),
      fc.subarray(offers).map<UpdateAgentMessage>((os) => ({ type: 'update.offers', offers: os })),
      fc
        .record({ offerId: fc.constantFrom(...ids), index: fc.nat(4) })
        .map<UpdateAgentMessage>((r) => ({ type: 'update.chunk-received', bytes: 256, ...r })),
      fc.constantFrom(...ids).map<UpdateAgentMessage>((offerId) => ({
        type: 'update.download-interrupted',
        offerId,
        reason: 'x',
      })),
      fc.constantFrom(...ids).map<UpdateAgentMessage>((offerId) => ({ type: 'update.resume-due', offerId })),
      fc
        .record({ offerId: fc.constantFrom(...ids), ok: fc.boolean() })
        .map<UpdateAgentMessage>((r) => ({ type: 'update.verified', ...r })),
      fc
        .record({ offerId: fc.constantFrom(...ids), ok: fc.boolean() })
        .map<UpdateAgentMessage>((r) => ({ type: 'update.installed', ...r })),
      fc
        .record({ offerId: fc.constantFrom(...ids), ok: fc.boolean() })
        .map<UpdateAgentMessage>((r) => ({ type: 'update.booted', ...r })),
      fc
        .record({ offerId: fc.constantFrom(...ids), ok: fc.boolean() })
        .map<UpdateAgentMessage>((r) => ({ type: 'update.health', ...r })),
      fc.nat(200_000_000).map<UpdateAgentMessage>((untilMs) => ({ type: 'update.defer-requested', untilMs })),
      fc.constant<UpdateAgentMessage>({ type: 'update.defer-elapsed' }),
      fc
        .constantFrom(...ids)
        .map<UpdateAgentMessage>((offerId) => ({ type: 'update.rollback-ordered', offerId })),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(msg, fc.nat(3_600_000)), { maxLength: 80 }), (steps) => {
        let s = initialUpdateAgentState([OS_V4, APP_V1]);
        let now = 0;
        let fuses = s.antiRollbackVersion;
        for (const [m, dt] of steps) {
          now += dt;
          [s] = updateTransition(s, m, now, B);
          expect(Object.keys(s.components).sort()).toEqual(['app:blinky', 'os']);
          expect(s.antiRollbackVersion).toBeGreaterThanOrEqual(fuses);
          fuses = s.antiRollbackVersion;
          expect(s.components['os']?.active.securityVersion).toBeGreaterThanOrEqual(s.antiRollbackVersion);
          if (s.deferredUntilMs !== null && s.deferralStartedMs !== null) {
            expect(s.deferredUntilMs - s.deferralStartedMs).toBeLessThanOrEqual(B.maxDeferralMs);
          }
          expect(s.current === null).toBe(['idle', 'checking', 'deferred'].includes(s.phase));
        }
      }),
      { numRuns: 400 },
    );
  });
});
