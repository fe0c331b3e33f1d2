/**
 * The operator side of scenario rollouts (loadgen/runner/rollouts.ts) against a fake operator
 * client: setup calls, deployments at their simulated start, and the report's rollout entries.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createManualClock } from '../../../actors/runtime/index.js';
import type {
  CreateDeploymentRequest,
  Rollout,
  UploadImageRequest,
} from '../../../proto/gen/sphere/operator/v1/operator.js';
import type { OperatorClient } from '../../../services/operator-api/index.js';
import { deploymentRequest, prepareRollouts } from '../../../loadgen/runner/rollouts.js';
import { rolloutMetrics } from '../../../loadgen/report/index.js';
import {
  DEFAULT_GROUP_NAMES,
  compileScenario,
  imageContent,
  planFleet,
} from '../../../loadgen/scenario/index.js';
import type { Scenario } from '../../../loadgen/scenario/index.js';

const HOUR = 3_600_000;

function scenario(size = 1000): Scenario {
  return compileScenario({
    name: 'rollout-run',
    seed: 3,
    duration: '24h',
    fleet: { size, faults: { unendorsed: { count: 10 } } },
    groups: [{ name: 'Pilot' }],
    images: [
      { id: 'bad', name: 'blinky', version: '1.1.0', size: '8KiB', defectRate: 0.5 },
      { id: 'good', name: 'blinky', version: '1.2.0', size: '8KiB' },
    ],
    rollouts: [
      {
        name: 'bad-app',
        image: 'bad',
        group: 'Field Test',
        devices: '60%',
        startAt: '2h',
        waves: [{ count: 10 }, '25%', '100%'],
        successThreshold: '30%',
        errorCondition: { count: 12, share: '50%' },
        pauseBetweenWaves: '1h',
        autoRollback: true,
        expect: 'halted',
      },
      {
        name: 'good-app',
        image: 'good',
        group: 'Pilot',
        startAt: '3h',
        waves: ['100%'],
        successThreshold: 1,
        errorCondition: { count: 1 },
        expect: 'completed',
      },
      {
        name: 'late-app',
        image: 'good',
        group: 'Production',
        devices: { count: 5 },
        startAt: '23h',
        waves: ['100%'],
        successThreshold: 1,
        errorCondition: { count: 1 },
      },
    ],
  });
}

/** A fake operator API: records calls, answers with plausible ids and scripted rollout views. */
function fakeClient(options: { failDeployments?: boolean } = {}) {
  const calls = {
    products: [] as string[],
    groups: [] as string[],
    assigned: [] as { groupId: string; count: number }[],
    uploads: [] as UploadImageRequest[],
    deployments: [] as CreateDeploymentRequest[],
    polls: 0,
  };
  const views = new Map<string, Rollout>();
  const view = (id: string, req: CreateDeploymentRequest, state: string): Rollout => ({
    deploymentId: id,
    deviceGroupId: req.deviceGroupId,
    imageId: req.imageId,
    state,
    currentWave: 1,
    waves: [{ wave: 1, devicesByState: { pending: 3 } }],
    failures: 0,
    attempted: 3,
    haltReason: '',
    devices: [],
  });
  const client: Partial<OperatorClient> = {
    createProduct: (name) => {
      calls.products.push(name);
      return Promise.resolve({
        product: { productId: 'p-1', name, description: '', createdAtMs: 0 },
        deviceGroups: DEFAULT_GROUP_NAMES.map((g) => ({
          deviceGroupId: `g-${g}`,
          productId: 'p-1',
          name: g,
          osFeed: 'RETAIL',
          updatePolicy: 'ACCEPT_ALL',
          devices: 0,
        })),
      });
    },
    createDeviceGroup: (q) => {
      calls.groups.push(q.name);
      return Promise.resolve({
        deviceGroup: {
          deviceGroupId: `g-${q.name}`,
          productId: q.productId,
          name: q.name,
          osFeed: q.osFeed ?? '',
          updatePolicy: q.updatePolicy ?? '',
          devices: 0,
        },
      });
    },
    assignDevices: (groupId, ids) => {
      calls.assigned.push({ groupId, count: ids.length });
      return Promise.resolve({ assigned: ids.length, rejected: [] });
    },
    uploadImage: (image) => {
      calls.uploads.push({ securityVersion: 0, ...image });
      return Promise.resolve({
        image: {
          imageId: `i-${image.version}`,
          kind: image.kind,
          name: image.name,
          version: image.version,
          securityVersion: image.securityVersion ?? 0,
          length: image.content.length,
          sha256: '',
          targetName: '',
          uploadedAtMs: 0,
        },
        targetsVersion: 1,
      });
    },
    createDeployment: (d) => {
      const req = d as CreateDeploymentRequest;
      calls.deployments.push(req);
      if (options.failDeployments === true) return Promise.reject(new Error('no such image in your tenant'));
      const id = `d-${calls.deployments.length}`;
      views.set(id, view(id, req, 'running'));
      return Promise.resolve({ rollout: views.get(id) });
    },
    getDeployment: (id) => {
      calls.polls++;
      const current = views.get(id);
      if (current === undefined) return Promise.reject(new Error('not found'));
      return Promise.resolve({ rollout: current });
    },
  };
  return { client: client as OperatorClient, calls, views };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('rollout run', () => {
  test('rollouts - no rollouts: nothing to prepare, no call made', async () => {
    const { client, calls } = fakeClient();
    const s = compileScenario({ name: 'x', duration: '1h', fleet: { size: 10 } });
    expect(
      await prepareRollouts({ client, scenario: s, plans: planFleet(s), deviceIds: [], log: () => {} }),
    ).toBe(null);
    expect(calls.products).toEqual([]);
  });

  test('rollouts - setup: product, custom groups, every planned device assigned in batches, images uploaded', async () => {
    const s = scenario(12_000);
    const plans = planFleet(s);
    const { client, calls } = fakeClient();
    const lines: string[] = [];
    const run = await prepareRollouts({
      client,
      scenario: s,
      plans,
      deviceIds: plans.map((p) => `dev-${p.index}`),
      log: (line) => lines.push(line),
    });
    expect(run).not.toBe(null);
    expect(calls.products).toEqual(['rollout-run']);
    expect(calls.groups).toEqual(['Pilot']);
    // 11,990 healthy devices: Field Test 60% (7,194) and Production 5; Pilot takes the rest (4,791).
    const byGroup = new Map<string, number[]>();
    for (const { groupId, count } of calls.assigned)
      byGroup.set(groupId, [...(byGroup.get(groupId) ?? []), count]);
    expect(Object.fromEntries(byGroup)).toEqual({
      'g-Field Test': [5000, 2194],
      'g-Pilot': [4791],
      'g-Production': [5],
    });
    expect(calls.uploads.map((u) => [u.kind, u.name, u.version, u.securityVersion])).toEqual([
      ['app', 'blinky', '1.1.0', 1],
      ['app', 'blinky', '1.2.0', 1],
    ]);
    expect(calls.uploads[0]?.content).toEqual(imageContent(s.seed, { id: 'bad', sizeBytes: 8192 }));
    expect(lines).toEqual([
      'product p-1: 11,990 devices in 3 group(s), 2 image(s) uploaded, 3 rollout(s) scheduled',
    ]);
  });

  test('rollouts - deployments start at their simulated time; the summary keeps the last view', async () => {
    vi.useFakeTimers();
    const s = scenario();
    const plans = planFleet(s);
    const { client, calls, views } = fakeClient();
    const lines: string[] = [];
    const run = await prepareRollouts({
      client,
      scenario: s,
      plans,
      deviceIds: plans.map((p) => `dev-${p.index}`),
      log: (line) => lines.push(line),
    });
    if (run === null) throw new Error('expected rollouts');
    expect(run.updateRoot).toBe(null); // no TUF repository given
    const clock = createManualClock(1_000_000);
    run.start(clock, 1_000_000 - 30 * 60_000); // the run started 30 simulated minutes ago
    expect(run.progress().map((p) => p.state)).toEqual(['not-started', 'not-started', 'not-started']);

    clock.advance(1.5 * HOUR - 1);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.deployments).toHaveLength(0);
    clock.advance(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.deployments).toHaveLength(1);
    expect(calls.deployments[0]).toEqual({
      deviceGroupId: 'g-Field Test',
      imageId: 'i-1.1.0',
      waves: [
        { size: { $case: 'count', value: 10 } },
        { size: { $case: 'share', value: 0.25 } },
        { size: { $case: 'share', value: 1 } },
      ],
      successThreshold: 0.3,
      errorCount: 12,
      errorShare: 0.5,
      autoRollback: true,
      pauseBetweenWavesMs: HOUR,
    });
    clock.advance(HOUR);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.deployments.map((d) => d.deviceGroupId)).toEqual(['g-Field Test', 'g-Pilot']);
    expect(calls.deployments[1]).toMatchObject({ errorCount: 1, errorShare: 0, autoRollback: false });

    // Polling (about once a wall second) follows the service's state.
    views.set('d-1', {
      ...(views.get('d-1') as Rollout),
      state: 'halted',
      currentWave: 2,
      haltReason: 'error-count',
      waves: [
        { wave: 0, devicesByState: { pending: 100 } },
        { wave: 2, devicesByState: { failed: 12, rolled_back: 40, downloading: 5 } },
        { wave: 1, devicesByState: { succeeded: 0, failed: 2, rolled_back: 8 } },
      ],
      failures: 14,
      attempted: 99,
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(run.progress()).toEqual([
      { name: 'bad-app', state: 'halted', currentWave: 2, totalWaves: 3 },
      { name: 'good-app', state: 'running', currentWave: 1, totalWaves: 1 },
      { name: 'late-app', state: 'not-started', currentWave: 0, totalWaves: 1 },
    ]);
    expect(lines.slice(1)).toEqual([
      'rollout bad-app: deployment d-1 of bad to "Field Test" (594 devices) running',
      'rollout good-app: deployment d-2 of good to "Pilot" (391 devices) running',
      'rollout bad-app: halted in wave 2/3 (error-count) at 3h, 14 failed of 99 attempted',
    ]);
    const pollsAfterHalt = calls.polls;
    views.set('d-2', { ...(views.get('d-2') as Rollout), state: 'completed', currentWave: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    // A halted deployment never changes again, so only good-app was polled.
    expect(calls.polls - pollsAfterHalt).toBe(1);

    expect(lines.at(-1)).toBe('rollout good-app: completed in wave 1/1 at 3h, 0 failed of 3 attempted');
    const summaries = await run.finish();
    // late-app was due at 23h: the run ended first, so it never started (and nothing more is scheduled).
    clock.advance(24 * HOUR);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls.deployments).toHaveLength(2);
    expect(summaries).toEqual([
      {
        name: 'bad-app',
        deploymentId: 'd-1',
        image: { id: 'bad', kind: 'app', name: 'blinky', version: '1.1.0' },
        group: 'Field Test',
        devices: 594,
        startAtMs: 2 * HOUR,
        state: 'halted',
        currentWave: 2,
        totalWaves: 3,
        waves: [
          { wave: 0, devicesByState: { pending: 100 } },
          { wave: 1, devicesByState: { succeeded: 0, failed: 2, rolled_back: 8 } },
          { wave: 2, devicesByState: { failed: 12, rolled_back: 40, downloading: 5 } },
        ],
        failures: 14,
        attempted: 99,
        haltReason: 'error-count',
        expect: 'halted',
        expectationMet: true,
        error: null,
      },
      expect.objectContaining({
        name: 'good-app',
        deploymentId: 'd-2',
        state: 'completed',
        expectationMet: true,
      }),
      expect.objectContaining({
        name: 'late-app',
        deploymentId: null,
        state: 'not-started',
        expect: null,
        expectationMet: null,
        haltReason: null,
      }),
    ]);
    expect(rolloutMetrics(summaries)).toMatchObject({
      rollouts_completed: { count: 1 },
      rollouts_halted: { count: 1 },
      rollout_expectations_met: { rate: 1 },
    });
    expect(run.errors.size).toBe(0);
  });

  test('rollouts - a refused deployment is reported as an error and fails its expectation', async () => {
    vi.useFakeTimers();
    const s = scenario();
    const plans = planFleet(s);
    const { client } = fakeClient({ failDeployments: true });
    const run = await prepareRollouts({
      client,
      scenario: s,
      plans,
      deviceIds: plans.map((p) => `dev-${p.index}`),
      log: () => {},
    });
    if (run === null) throw new Error('expected rollouts');
    const clock = createManualClock(0);
    run.start(clock, 0);
    clock.advance(2 * HOUR);
    await vi.advanceTimersByTimeAsync(0);
    expect(run.progress()[0]?.state).toBe('error');
    const [bad] = await run.finish();
    expect(bad).toMatchObject({
      name: 'bad-app',
      deploymentId: null,
      state: 'not-started',
      expectationMet: false,
      error: 'CreateDeployment failed: no such image in your tenant',
    });
    expect([...run.errors]).toEqual([
      ['rollout bad-app: CreateDeployment failed: no such image in your tenant', 1],
    ]);
  });

  test('rollouts - the deployment request mirrors the compiled config', () => {
    const [, good] = scenario().rollouts;
    if (good === undefined) throw new Error('expected a rollout');
    expect(deploymentRequest(good, 'g-x', 'i-y')).toEqual({
      deviceGroupId: 'g-x',
      imageId: 'i-y',
      waves: [{ size: { $case: 'share', value: 1 } }],
      successThreshold: 1,
      errorCount: 1,
      errorShare: 0,
      autoRollback: false,
      pauseBetweenWavesMs: 0,
    });
  });
});
