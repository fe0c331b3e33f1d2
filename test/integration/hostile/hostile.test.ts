/**
 * Hostile traffic (loadgen/hostile) against a real shard: real nats-server, the shard in-process,
 * real gRPC. Each attack kind runs every one of its variants and each attempt must be refused
 * with its variant's code; refusals of a proven sender must reach its tenant's alerts (ListAlerts),
 * those of an unauthenticated sender are counted as alerts to no tenant (sphere_alerts_total) and
 * never pinned on the tenant whose device they named. Run `npx tsc -p tsconfig.json` first.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  TENANT_ALERTED_CODES,
  VARIANT_CONTRACTS,
  alertDemand,
  alertKey,
  countTenantAlerts,
  prepareHostile,
} from '../../../loadgen/hostile/index.js';
import type { AttemptRecord, HostileTraffic } from '../../../loadgen/hostile/index.js';
import { serviceClock } from '../../../loadgen/runner/index.js';
import type { AttackProfile, AttacksConfig, DeviceRateLimit } from '../../../loadgen/scenario/index.js';
import { DEFAULT_POLICY } from '../../../services/attestation/index.js';
import { ALERT_SEVERITY } from '../../../services/registry/index.js';
import type { RejectCode } from '../../../proto/codec/index.js';
import {
  PARTITIONS,
  REQUEST_TIMEOUT_MS,
  attestSession,
  bootedDevice,
  createTestTenant,
  defaultImages,
  endorseAndClaim,
  sampleValue,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { ShardEnv, TestDevice, TestTenant } from '../../fixtures/shard.js';

const spec = (profile: AttackProfile, attempts: number, devices = 1) => ({
  profile,
  attempts,
  startAtMs: 0,
  forMs: 0,
  devices,
});

/** The tenant, its fleet (the victims) and the hostile traffic aimed at them, on `env`'s shard. */
function useHostile(env: () => ShardEnv, attacks: AttacksConfig, rateLimit: DeviceRateLimit) {
  let state: { tenant: TestTenant; victims: TestDevice[]; traffic: HostileTraffic } | undefined;
  beforeAll(async () => {
    const tenant = await createTestTenant(env().admin, 'Contoso Hostile');
    const victims = Array.from({ length: 4 }, () => bootedDevice(uniqueSeed('victim')));
    await endorseAndClaim(env().admin, tenant.client, victims);
    // The victims are live: attested, holding sessions of their own.
    for (const v of victims) await attestSession(env().devices, v);
    const traffic = await prepareHostile({
      attacks,
      seed: uniqueSeed('hostile'),
      name: 'hostile-test',
      transport: env().devices,
      admin: env().admin,
      grpc: env().shard.grpcAddress,
      tenant,
      victims: victims.map((v) => v.deviceId),
      partitions: PARTITIONS,
      clock: serviceClock(await env().admin.getServiceInfo()),
      firmware: { osVersion: '25.10', securityVersion: 5, images: defaultImages() },
      rateLimit,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      renewBeforeMs: 60_000,
      alertWaitMs: 10_000,
    });
    state = { tenant, victims, traffic };
  });
  return () => {
    if (state === undefined) throw new Error('useHostile(): only inside tests, after beforeAll');
    return state;
  };
}

/**
 * Makes every planned attempt of `profile`, one after the other, and checks each was refused
 * with its variant's code. Returns the records and the shard's metrics before and after.
 */
async function runProfile(env: () => ShardEnv, traffic: HostileTraffic, profile: AttackProfile) {
  const planned = traffic.plan.filter((a) => a.profile === profile);
  expect(planned.length).toBeGreaterThan(0);
  const before = await env().shard.meter.metricsText();
  const records: AttemptRecord[] = [];
  for (const a of planned) records.push(await traffic.attempt(a));
  const after = await env().shard.meter.metricsText();
  for (const r of records) {
    const what = `${r.attempt.variant} #${r.attempt.seq} on ${r.attempt.op ?? 'gRPC'}`;
    expect(r.outcome.kind, `${what}: ${JSON.stringify(r.outcome)}`).toBe('refused');
    if (r.outcome.kind === 'refused')
      expect(VARIANT_CONTRACTS[r.attempt.variant].expected, what).toContain(r.outcome.code);
  }
  return { records, before, after };
}

const codesOf = (records: readonly AttemptRecord[]): Map<string, number> => {
  const out = new Map<string, number>();
  for (const r of records)
    if (r.outcome.kind === 'refused') out.set(r.outcome.code, (out.get(r.outcome.code) ?? 0) + 1);
  return out;
};

/** Each refusal is counted once as an alert of its code (folded or stored, to a tenant or none). */
function expectAlertsCounted(before: string, after: string, records: readonly AttemptRecord[]): void {
  for (const [code, n] of codesOf(records)) {
    const alerted = (text: string) =>
      sampleValue(text, 'sphere_alerts_total', { type: code, severity: ALERT_SEVERITY[code as RejectCode] });
    expect(alerted(after) - alerted(before), `${code} alerts counted`).toBe(n);
  }
}

/** The refusals of a proven sender show in its tenant's ListAlerts: one alert per (device, code) at least. */
async function expectTenantAlerted(tenant: TestTenant, records: readonly AttemptRecord[]) {
  const demands = alertDemand(records);
  const found = await countTenantAlerts([tenant.client], demands, {
    sinceMs: 0,
    waitMs: 10_000,
    pollMs: 100,
  });
  for (const d of demands) {
    const f = found.get(alertKey(d.deviceId, d.type));
    expect(f?.alerts ?? 0, `${d.type} alerts naming ${d.deviceId.slice(0, 16)}`).toBeGreaterThan(0);
    expect(f?.covered ?? 0).toBeLessThanOrEqual(d.count);
  }
  return demands;
}

/** No alert of `codes` names any victim in the victims' tenant (unauthenticated garbage is pinned on nobody). */
async function expectNothingPinned(
  tenant: TestTenant,
  victims: readonly TestDevice[],
  codes: readonly string[],
) {
  for (const v of victims) {
    for (const type of codes) {
      const r = await tenant.client.listAlerts({ deviceId: v.deviceId, type, limit: 1000 });
      expect(r.alerts, `${type} pinned on ${v.deviceId.slice(0, 16)}`).toEqual([]);
    }
  }
}

describe('hostile traffic', () => {
  const env = useShard({ shardId: 'shard-hostile', seed: 'hostile' });
  const attacks: AttacksConfig = {
    profiles: [spec('impersonate', 9), spec('replay', 6), spec('malformed', 20), spec('tenantCrossing', 14)],
  };
  const hostile = useHostile(env, attacks, DEFAULT_POLICY.deviceRateLimit);

  it('hostile - impersonate: another device named with the attacker session (IDENTITY_MISMATCH), a made-up session or a guessed key (BAD_MAC), on every op', async () => {
    const { tenant, victims, traffic } = hostile();
    const { records, before, after } = await runProfile(env, traffic, 'impersonate');
    expect(Object.fromEntries(codesOf(records))).toEqual({ IDENTITY_MISMATCH: 3, BAD_MAC: 6 });
    expect(new Set(records.map((r) => r.attempt.op))).toEqual(
      new Set(['update-check', 'error-report', 'update-report']),
    );
    expectAlertsCounted(before, after, records);
    // IDENTITY_MISMATCH: the attacker's tenant is told, naming the attacker and the device it claimed to be.
    const [attacker] = traffic.attackerIds('impersonate');
    expect(await expectTenantAlerted(tenant, records)).toEqual([
      { deviceId: attacker, type: 'IDENTITY_MISMATCH', count: 3 },
    ]);
    const alerts = await tenant.client.listAlerts({ deviceId: attacker, type: 'IDENTITY_MISMATCH' });
    const claimed = alerts.alerts.map((a) => a.evidence['claimedDevice']);
    expect(claimed.every((id) => victims.some((v) => v.deviceId === id))).toBe(true);
    // BAD_MAC: nobody is proven to have sent it, so no tenant is told, and no victim is blamed.
    await expectNothingPinned(tenant, victims, ['BAD_MAC', 'IDENTITY_MISMATCH']);
  });

  it('hostile - replay: a sealed request sent again, at once or the session first one, is REPLAYED and alerted', async () => {
    const { tenant, traffic } = hostile();
    const { records, before, after } = await runProfile(env, traffic, 'replay');
    expect(Object.fromEntries(codesOf(records))).toEqual({ REPLAYED: 6 });
    expect(new Set(records.map((r) => r.attempt.variant))).toEqual(new Set(['immediate', 'stale']));
    expectAlertsCounted(before, after, records);
    const [replayer] = traffic.attackerIds('replay');
    expect(await expectTenantAlerted(tenant, records)).toEqual([
      { deviceId: replayer, type: 'REPLAYED', count: 6 },
    ]);
  });

  it('hostile - malformed: garbage, truncated, mistyped, unsealed and oversize messages are MALFORMED_INPUT or PAYLOAD_TOO_LARGE', async () => {
    const { tenant, victims, traffic } = hostile();
    const { records, before, after } = await runProfile(env, traffic, 'malformed');
    expect(Object.fromEntries(codesOf(records))).toEqual({ MALFORMED_INPUT: 16, PAYLOAD_TOO_LARGE: 4 });
    expect(new Set(records.map((r) => r.attempt.op))).toEqual(
      new Set(['challenge', 'attest', 'update-check', 'error-report', 'update-report']),
    );
    // Alerted to no tenant: counted, never on the tenant whose device the bytes named.
    expectAlertsCounted(before, after, records);
    expect(alertDemand(records)).toEqual([]);
    await expectNothingPinned(tenant, victims, ['MALFORMED_INPUT', 'PAYLOAD_TOO_LARGE']);
  });

  it('hostile - tenantCrossing: another tenant reads, claims, assigns, deploys to and lists alerts of our devices, calls admin methods, forges a token: refused, no data', async () => {
    const { tenant, victims, traffic } = hostile();
    const { records } = await runProfile(env, traffic, 'tenantCrossing');
    expect(Object.fromEntries(codesOf(records))).toEqual({
      NOT_FOUND: 6,
      ALREADY_CLAIMED: 2,
      NO_DATA: 2,
      FORBIDDEN: 2,
      UNAUTHENTICATED: 2,
    });
    // Nothing moved: every victim is still the tenant's, in no group of the intruder.
    for (const v of victims) {
      const d = await tenant.client.getDevice(v.deviceId);
      expect(d.device?.deviceId).toBe(v.deviceId);
    }
  });

  it('hostile - the judged summary: every profile refused, nothing accepted, every proven sender alerted', async () => {
    const { traffic } = hostile();
    const summary = await traffic.finish();
    expect(summary.profiles.map((p) => [p.profile, p.pass, p.accepted, p.notes])).toEqual([
      ['impersonate', true, 0, []],
      ['replay', true, 0, []],
      ['malformed', true, 0, []],
      ['tenantCrossing', true, 0, []],
    ]);
    expect(summary.pass).toBe(true);
    const impersonate = summary.profiles[0];
    expect(impersonate).toMatchObject({
      attempts: 9,
      alertPairs: 1,
      alertPairsFound: 1,
      unattributedRefusals: 6,
    });
    expect(TENANT_ALERTED_CODES).toContain('IDENTITY_MISMATCH');
  });
});

describe('hostile traffic with a small request budget', () => {
  /** 5 requests at once, then one a minute of the shard's time (time scale 1): a flood of 15 outruns it. */
  const LIMIT = { burst: 5, perHour: 60 };
  const env = useShard({
    shardId: 'shard-hostile-flood',
    seed: 'hostile-flood',
    policy: { deviceRateLimit: LIMIT },
  });
  const hostile = useHostile(env, { profiles: [spec('flood', 15)] }, LIMIT);

  it('hostile - flood: past its budget every request of the flooding device is RATE_LIMITED and alerted', async () => {
    const { tenant, traffic } = hostile();
    const planned = traffic.plan.filter((a) => a.profile === 'flood');
    const before = await env().shard.meter.metricsText();
    const records: AttemptRecord[] = [];
    for (const a of planned) records.push(await traffic.attempt(a));
    const after = await env().shard.meter.metricsText();
    // The budget's requests pass (the device may send them); every one past it is refused.
    const outcomes = records.map((r) => (r.outcome.kind === 'refused' ? r.outcome.code : r.outcome.kind));
    expect(outcomes.slice(0, LIMIT.burst)).toEqual(Array(LIMIT.burst).fill('accepted'));
    expect(outcomes.slice(LIMIT.burst + 1)).toEqual(
      Array(planned.length - LIMIT.burst - 1).fill('RATE_LIMITED'),
    );
    expect(['accepted', 'RATE_LIMITED']).toContain(outcomes[LIMIT.burst]);
    expectAlertsCounted(before, after, records);
    const [flooder] = traffic.attackerIds('flood');
    const demands = await expectTenantAlerted(tenant, records);
    expect(demands.map((d) => [d.deviceId, d.type])).toEqual([[flooder, 'RATE_LIMITED']]);
    const summary = await traffic.finish();
    expect(summary.profiles[0]).toMatchObject({
      profile: 'flood',
      accepted: 0,
      alertPairsFound: 1,
      pass: true,
    });
    expect(summary.profiles[0]?.withinBudget).toBeGreaterThanOrEqual(LIMIT.burst);
  });
});
