import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DETECTION_ALERT_TYPES,
  DETECTION_SEVERITY,
  ThreatDetector,
} from '../../../services/detection/index.js';
import type { DetectionConfig, SecurityEvent } from '../../../services/detection/index.js';
import { dev } from './harness.js';

/** Small caps and low thresholds, so random input fills every table and trips every rule. */
const TIGHT: Partial<DetectionConfig> = {
  maxTrackedDevices: 4,
  maxFleetKeys: 3,
  maxSuppressedKeys: 5,
  replayWindowMs: 1_000,
  floodMaxRequests: 3,
  floodWindowMs: 1_000,
  driftMinDevices: 2,
  driftWindowMs: 5_000,
  crashMinDevices: 1,
  crashWindowMs: 2_000,
  crashReportLagMs: 1_000,
  cloneWindowMs: 5_000,
  suppressWindowMs: 3_000,
};

const deviceArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 6 }).map(dev) },
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.string({ maxLength: 4 }) },
);
const timeArb = fc.oneof(
  { weight: 20, arbitrary: fc.integer({ min: -1_000, max: 8_000 }) },
  { weight: 1, arbitrary: fc.double() }, // NaN, ±Infinity, huge, tiny
);
const countArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.double());
const tenantArb = fc.constantFrom('t-a', 't-b', '');
const smallArb = fc.constantFrom('a', 'b', '');
/** Few values, so drift keys repeat despite the tight key cap. */
const tinyArb = fc.constantFrom('a', '');

const eventArb: fc.Arbitrary<SecurityEvent> = fc.oneof(
  fc.record({
    kind: fc.constant('attestation' as const),
    atMs: timeArb,
    deviceId: deviceArb,
    tenantId: fc.option(tenantArb),
    productId: fc.constant(null),
    ok: fc.boolean(),
    code: fc.constantFrom(
      null,
      'DUPLICATE_IDENTITY',
      'NONCE_REUSED',
      'MEASUREMENT_MISMATCH',
      'BAD_SIGNATURE',
    ),
    bootIdHex: smallArb,
    bootCount: countArb,
    osVersion: tinyArb,
    unknownMeasurements: fc.array(fc.record({ stage: tinyArb, digestHex: tinyArb }), { maxLength: 2 }),
  }),
  fc.record({
    kind: fc.constant('rejection' as const),
    atMs: timeArb,
    deviceId: deviceArb,
    tenantId: fc.option(tenantArb),
    op: smallArb,
    code: fc.constantFrom('NONCE_REUSED', 'REPLAYED', 'DUPLICATE_IDENTITY', 'BAD_MAC', ''),
    detail: fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 300 }), { maxKeys: 12 }),
  }),
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      atMs: timeArb,
      deviceId: deviceArb,
      tenantId: fc.option(tenantArb),
      op: smallArb,
    }),
  },
  fc.record({
    kind: fc.constant('update-result' as const),
    atMs: timeArb,
    deviceId: deviceArb,
    tenantId: tenantArb,
    deploymentId: fc.constantFrom('d-1', 'd-2', 'd-3', 'd-4'),
    component: fc.constantFrom('os', 'app'),
    version: fc.constantFrom('1', '2'),
    outcome: fc.constantFrom('succeeded' as const, 'failed' as const, 'rolled-back' as const),
  }),
  fc.record({
    kind: fc.constant('error-report' as const),
    atMs: timeArb,
    deviceId: deviceArb,
    tenantId: tenantArb,
    productId: fc.constant(null),
    groupId: fc.constant(null),
    events: fc.array(
      fc.record({
        kind: fc.constantFrom('app-crash', 'os-crash', 'app-exit', 'weird'),
        component: fc.constantFrom('os', 'app', ''),
        version: fc.constantFrom('1', '2', ''),
        exitCode: countArb,
        atMs: timeArb,
      }),
      { maxLength: 4 },
    ),
  }),
);

/** A run: events with a prune at some of them (the prune time is the event's, or a jump ahead). */
const pruneArb = fc.oneof(
  { weight: 10, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.integer({ min: -500, max: 6_000 }) },
);
const runArb = fc.array(fc.tuple(eventArb, pruneArb), { minLength: 50, maxLength: 300 });

describe('detector properties', () => {
  it('detector properties - caps hold after any events and prunes, and nothing throws', () => {
    fc.assert(
      fc.property(runArb, (run) => {
        const d = new ThreatDetector(TIGHT);
        for (const [e, pruneAhead] of run) {
          const alerts = d.observe(e);
          for (const a of alerts) {
            expect(a.id).toMatch(/^ta-[0-9a-f]{32}$/);
            expect(DETECTION_ALERT_TYPES).toContain(a.type);
            expect(a.severity).toBe(DETECTION_SEVERITY[a.type]);
            expect(a.message.length).toBeGreaterThan(0);
          }
          if (pruneAhead !== null) d.prune(e.atMs + pruneAhead);
          const s = d.stats();
          expect(s.trackedDevices).toBeLessThanOrEqual(4);
          expect(s.fleetKeys).toBeLessThanOrEqual(2 * 3); // drift keys and deployments, 3 each
          expect(s.suppressedKeys).toBeLessThanOrEqual(5);
          for (const t of ['CLONED_IDENTITY', 'REPLAYED_REQUEST', 'DEVICE_FLOODING'] as const) {
            expect(s.byRule[t]).toBeLessThanOrEqual(4);
          }
          expect(s.byRule.MEASUREMENT_DRIFT).toBeLessThanOrEqual(3);
          expect(s.byRule.CRASH_BURST_AFTER_UPDATE).toBeLessThanOrEqual(4 + 3);
        }
        // Far past every window, only state stamped with absurd future times can remain.
        d.prune(1e9);
        const s = d.stats();
        const finiteRun = run.every(([e]) => Math.abs(e.atMs) < 1e8 || !Number.isFinite(e.atMs));
        if (finiteRun) expect([s.trackedDevices, s.fleetKeys, s.suppressedKeys]).toEqual([0, 0, 0]);
      }),
      { numRuns: 120 },
    );
  });

  it('detector properties - two detectors fed the same events raise the same alerts', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 50, maxLength: 300 }), (events) => {
        const a = new ThreatDetector(TIGHT);
        const b = new ThreatDetector(TIGHT);
        const fromA = events.flatMap((e) => a.observe(e));
        const fromB = events.flatMap((e) => b.observe(e));
        expect(fromB).toEqual(fromA);
        expect(b.stats()).toEqual(a.stats());
      }),
      { numRuns: 100 },
    );
  });
});
