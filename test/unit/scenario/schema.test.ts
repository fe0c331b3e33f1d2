import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { scenarioProblems as problems } from '../../fixtures/scenario.js';
import {
  ScenarioError,
  compileScenario,
  loadScenarioFile,
  parseScenarioYaml,
  scenarioWarnings,
} from '../../../loadgen/scenario/index.js';

const MINIMAL = `name: minimal
duration: 1h
fleet:
  size: 100
`;

describe('scenario schema', () => {
  test('schema - a minimal scenario gets every default filled', () => {
    const s = parseScenarioYaml(MINIMAL);
    expect(s.name).toBe('minimal');
    expect(s.description).toBe('');
    expect(s.seed).toBe('sphere');
    expect(s.timeScale).toBe(1);
    expect(s.durationMs).toBe(3_600_000);
    expect(s.wallDurationMs).toBe(3_600_000);
    expect(s.fleet.osMix).toEqual([{ version: '25.10', securityVersion: 5, share: 1, count: 100 }]);
    expect(s.fleet.apps).toEqual([{ name: 'blinky', version: '1.0.0' }]);
    expect(s.fleet.faults).toEqual({
      tamperedKernel: 0,
      unendorsed: 0,
      clonedKey: 0,
      replay: 0,
      belowMinVersion: 0,
      wrongClock: 0,
    });
    expect(s.fleet.hostileDevices).toBe(0);
    expect(s.connections).toEqual({ mode: 'shared', pool: 4 });
    expect(s.stages).toEqual([
      { kind: 'bootStorm', index: 0, startMs: 0, endMs: 10_000, devices: 100, firstDevice: 0 },
    ]);
    expect(s.device).toEqual({
      attestEveryMs: 86_400_000,
      heartbeatEveryMs: 3_600_000,
      retry: { initialMs: 30_000, maxMs: 3_600_000, multiplier: 2, jitter: 0.2 },
      requestTimeoutMs: 5_000,
      replayAfterMs: 600_000,
      renewBeforeMs: 3_600_000,
    });
    expect(s.service).toEqual({
      nonceTtlMs: 300_000,
      certificateLifetimeMs: 86_400_000,
      minSecurityVersion: 3,
      maxClockSkewMs: 300_000,
      deviceRateLimit: { burst: 600, perHour: 600 },
    });
    expect(s.thresholds).toEqual([]);
  });

  test('schema - numeric seed becomes a string, timeScale gives the wall duration', () => {
    const s = compileScenario({ name: 'x', seed: 42, timeScale: 2880, duration: '48h', fleet: { size: 10 } });
    expect(s.seed).toBe('42');
    expect(s.wallDurationMs).toBe(60_000);
  });

  test('schema - the full example from the docs compiles with stages resolved to counts', () => {
    const s = parseScenarioYaml(`
name: boot-storm
description: docs example
seed: 42
timeScale: 2880
duration: 48h
fleet:
  size: 2000
  osMix: { "25.10": 0.7, "25.04": 0.3 }
  apps: [ { name: blinky, version: "1.0.0" } ]
  faults:
    tamperedKernel: 0.005
connections: { mode: shared, pool: 4 }
stages:
  - bootStorm: { devices: 1500, within: 10s }
  - ramp: { rate: 20/s, for: 5m }
  - hold: { for: 1h }
device:
  attestEvery: 24h
  heartbeatEvery: 1h
  retry: { initial: 30s, max: 1h, multiplier: 2, jitter: 0.2 }
  requestTimeout: 5000
service:
  nonceTtl: 5m
  certificateLifetime: 24h
  minSecurityVersion: 3
  maxClockSkew: 5m
thresholds:
  attest_latency_ms: ["p(99)<500", "p(50)<100"]
  attest_success_rate: ["rate>0.99"]
  hostile_rejected_rate: ["rate==1"]
  devices_attested: ["count>=1980"]
`);
    expect(s.fleet.faults.tamperedKernel).toBe(10);
    expect(s.fleet.osMix.map((o) => [o.version, o.count])).toEqual([
      ['25.04', 600],
      ['25.10', 1400],
    ]);
    expect(s.stages).toEqual([
      { kind: 'bootStorm', index: 0, startMs: 0, endMs: 10_000, devices: 1500, firstDevice: 0 },
      // 20/s for 5m would be 6000 arrivals: the ramp stops when the fleet is all on.
      {
        kind: 'ramp',
        index: 1,
        startMs: 10_000,
        endMs: 310_000,
        devices: 500,
        firstDevice: 1500,
        ratePerSec: 20,
      },
      { kind: 'hold', index: 2, startMs: 310_000, endMs: 3_910_000, devices: 0, firstDevice: 2000 },
    ]);
    expect(s.thresholds.map((t) => `${t.metric}:${t.expression}`)).toEqual([
      'attest_latency_ms:p(99)<500',
      'attest_latency_ms:p(50)<100',
      'attest_success_rate:rate>0.99',
      'hostile_rejected_rate:rate==1',
      'devices_attested:count>=1980',
    ]);
  });

  test('schema - stage shares and the percent form resolve against the fleet', () => {
    const s = compileScenario({
      name: 'x',
      duration: '1h',
      fleet: { size: 1001 },
      stages: [{ bootStorm: { devices: '75%', within: '1m' } }, { bootStorm: { within: '1m' } }],
    });
    expect(s.stages.map((st) => st.devices)).toEqual([751, 250]);
  });

  test('schema - unknown keys are errors that name the key, with a suggestion and line', () => {
    const error = problems(`name: typo
duration: 1h
fleet:
  size: 10
  sizee: 11
devices:
  attestEvery: 24h
`);
    expect(error.message).toContain(
      'fleet.sizee: unknown key "sizee" (did you mean "size"?) (line 5, column 3)',
    );
    expect(error.message).toContain(
      'devices: unknown key "devices" (did you mean "device"?) (line 6, column 1)',
    );
    expect(error.message).toMatch(/^invalid scenario bad\.yaml \(2 problems\):/);
    expect(error.issues).toHaveLength(2);
  });

  test('schema - every problem is listed at once, each with its field path and line', () => {
    const error = problems(`name: many
timeScale: 0
duration: forever
fleet:
  size: 0
  osMix: { "25.10": 0.6, "25.04": 0.3 }
connections: { mode: dedicated }
stages:
  - bootStorm: { devices: 10, within: 10s }
  - ramp: { rate: fast, for: 5m }
device:
  retry: { jitter: 2 }
thresholds:
  attest_latncy_ms: ["p(99)<500"]
  attest_success_rate: ["rate>>0.99"]
`);
    const m = error.message;
    expect(m).toContain('timeScale: must be > 0, got 0 (line 2, column 1)');
    expect(m).toContain('duration: expected a duration like "30s" or "24h", got "forever" (line 3');
    expect(m).toContain('fleet.size: must be >= 1, got 0 (line 5');
    expect(m).toContain('fleet.osMix: shares must sum to 1, got 0.9 (line 6');
    expect(m).toContain('connections.mode: expected one of "shared", "per-device", got "dedicated" (line 7');
    expect(m).toContain('stages[1].ramp.rate: expected a rate like "20/s", got "fast" (line 10');
    expect(m).toContain('device.retry.jitter: must be <= 1, got 2 (line 12');
    expect(m).toContain('thresholds.attest_latncy_ms: unknown metric (did you mean "attest_latency_ms"?)');
    expect(m).toContain('thresholds.attest_success_rate[0]: expected an expression like');
    expect(error.issues.length).toBe(9);
    for (const issue of error.issues) expect(issue.line).toBeGreaterThan(0);
  });

  test('schema - missing required fields are named', () => {
    const error = problems(`description: nothing else\n`);
    expect(error.message).toContain('name: required (expected a string)');
    expect(error.message).toContain('duration: required');
    expect(error.message).toContain('fleet: required (expected a mapping)');
  });

  test('schema - unquoted OS versions get a hint to quote them', () => {
    const error = problems(`name: v
duration: 1h
fleet:
  size: 10
  osMix:
    25.10: 1
`);
    expect(error.message).toContain('fleet.osMix["25.1"]: unknown OS version "25.1"; did you mean "25.10"?');
    expect(error.message).toContain('(line 6, column 5)');
  });

  test('schema - an OS in the mix below the minimum security version is rejected', () => {
    const error = problems(`name: v
duration: 1h
fleet:
  size: 10
  osMix: { "23.05": 0.5, "25.10": 0.5 }
`);
    expect(error.message).toContain(
      'fleet.osMix["23.05"]: OS 23.05 has security version 1, below service.minSecurityVersion (3)',
    );
  });

  test('schema - fault amounts: share range, count form, pairs, and the 50% cap', () => {
    const error = problems(`name: f
duration: 1h
fleet:
  size: 100
  faults:
    tamperedKernel: 1.5
    unendorsed: { count: -1 }
    clonedKey: { count: 3 }
    replay: { counts: 2 }
`);
    expect(error.message).toContain(
      'fleet.faults.tamperedKernel: expected a share of the fleet in [0, 1) like 0.005 or "0.5%", or { count: N }, got 1.5 (line 6',
    );
    expect(error.message).toContain(
      'fleet.faults.unendorsed.count: expected a whole number of devices (0 or more), got -1 (line 7',
    );
    expect(error.message).toContain(
      'fleet.faults.replay.counts: unknown key "counts" (only "count" is allowed) (line 9',
    );

    const pairs = problems(
      `name: f\nduration: 1h\nfleet:\n  size: 100\n  faults:\n    clonedKey: { count: 3 }\n`,
    );
    expect(pairs.message).toContain('fleet.faults.clonedKey.count: clonedKey devices come in pairs');
    expect(pairs.message).toContain('(line 6');

    const cap = problems(
      `name: f\nduration: 1h\nfleet:\n  size: 100\n  faults:\n    replay: 0.4\n    unendorsed: { count: 11 }\n`,
    );
    expect(cap.message).toContain(
      'fleet.faults: 51 hostile devices is more than half of the fleet (at most 50 of 100) (line 5',
    );
  });

  test('schema - fault shares resolve exactly by largest remainder; clonedKey stays even', () => {
    const s = compileScenario({
      name: 'f',
      duration: '1h',
      fleet: {
        size: 1000,
        faults: { tamperedKernel: 0.0025, unendorsed: 0.0025, clonedKey: 0.003, replay: { count: 7 } },
      },
    });
    // 2.5 + 2.5 -> 3 + 2 (tie goes to the earlier profile); clonedKey 3 -> 2 (pairs).
    expect(s.fleet.faults).toMatchObject({ tamperedKernel: 3, unendorsed: 2, clonedKey: 2, replay: 7 });
    expect(s.fleet.hostileDevices).toBe(14);
  });

  test('schema - stages: one kind per stage, counts within the fleet, the fleet fully powered, within duration', () => {
    const both = problems(`name: s
duration: 1h
fleet: { size: 100 }
stages:
  - bootStorm: { devices: 50, within: 10s }
    hold: { for: 1m }
  - {}
  - bootstorm: { within: 10s }
`);
    expect(both.message).toContain(
      'stages[0]: expected exactly one of bootStorm, ramp, hold, got bootStorm and hold (line 5',
    );
    expect(both.message).toContain(
      'stages[1]: expected exactly one of bootStorm, ramp, hold, got none (line 7',
    );
    expect(both.message).toContain(
      'stages[2].bootstorm: unknown key "bootstorm" (did you mean "bootStorm"?) (line 8',
    );

    const tooMany = problems(`name: s
duration: 1h
fleet: { size: 100 }
stages:
  - bootStorm: { devices: 80, within: 10s }
  - bootStorm: { devices: 30, within: 10s }
`);
    expect(tooMany.message).toContain(
      'stages[1].bootStorm.devices: 30 devices requested but only 20 of 100 are still off after earlier stages (line 6',
    );

    const short = problems(`name: s
duration: 1h
fleet: { size: 100 }
stages:
  - bootStorm: { devices: 80, within: 10s }
  - hold: { for: 2h }
`);
    expect(short.message).toContain('stages: stages power on 80 of 100 devices');
    expect(short.message).toContain('stages: stages take 2h but duration is 1h (line 4');
  });

  test('schema - per-device connections have no pool', () => {
    const error = problems(
      `name: c\nduration: 1h\nfleet: { size: 10 }\nconnections: { mode: per-device, pool: 4 }\n`,
    );
    expect(error.message).toContain(
      'connections.pool: per-device mode opens one connection per device and has no pool',
    );
    expect(
      compileScenario({ name: 'c', duration: '1h', fleet: { size: 10 }, connections: { mode: 'per-device' } })
        .connections,
    ).toEqual({
      mode: 'per-device',
    });
  });

  test('schema - cross-field checks: retry bounds, hostile threshold without hostiles, belowMin without a version', () => {
    const error = problems(`name: x
duration: 1h
fleet:
  size: 10
  faults: { belowMinVersion: { count: 1 } }
device:
  retry: { initial: 10m, max: 1m }
service:
  minSecurityVersion: 1
`);
    expect(error.message).toContain(
      'device.retry.max: retry.max (1m) must not be shorter than retry.initial (10m) (line 7',
    );
    expect(error.message).toContain(
      'fleet.faults.belowMinVersion: no known OS version has a security version below service.minSecurityVersion (1)',
    );
    const noHostiles = problems(
      `name: x\nduration: 1h\nfleet: { size: 10 }\nthresholds:\n  hostile_rejected_rate: rate==1\n`,
    );
    expect(noHostiles.message).toContain(
      'thresholds.hostile_rejected_rate: the fleet has no hostile devices',
    );
    expect(noHostiles.issues[0]?.line).toBe(5);
  });

  test('schema - app versions must be strings, with a hint to quote', () => {
    const error = problems(
      `name: a\nduration: 1h\nfleet:\n  size: 10\n  apps:\n    - { name: blinky, version: 1.0 }\n`,
    );
    expect(error.message).toContain(
      'fleet.apps[0].version: expected a string, got 1 (quote it in YAML) (line 6',
    );
  });

  test('schema - without YAML text, errors still name paths but carry no line', () => {
    try {
      compileScenario({ name: 'x', duration: '1h', fleet: { size: 10, osMix: { '25.10': 0.5 } } });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ScenarioError);
      expect((error as ScenarioError).message).toBe(
        'invalid scenario (1 problem):\n  - fleet.osMix: shares must sum to 1, got 0.5',
      );
    }
  });

  test('yaml - syntax errors are reported with line and column', () => {
    const error = problems(`name: broken\nfleet:\n  size: [1, 2\nduration: 1h\n`);
    expect(error.message).toMatch(/YAML syntax error: .*\(line \d+, column \d+\)/);
    const duplicate = problems(`name: a\nname: b\nduration: 1h\nfleet: { size: 1 }\n`);
    expect(duplicate.message).toMatch(/YAML syntax error: Map keys must be unique.*\(line 2, column 1\)/);
  });

  test('yaml - the top level must be a mapping', () => {
    expect(problems('- just\n- a list\n').message).toContain('expected a mapping, got a list');
    expect(problems('').message).toContain('expected a mapping, got null');
  });

  test('load - reads a file; a missing file is a ScenarioError with the cause', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scenario-'));
    const path = join(dir, 'ok.yaml');
    await writeFile(path, MINIMAL);
    expect((await loadScenarioFile(path)).name).toBe('minimal');
    const missing = join(dir, 'missing.yaml');
    const error = await loadScenarioFile(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).message).toContain(`scenario ${missing}`);
    expect((error as ScenarioError).message).toContain('cannot read the file (ENOENT)');
    expect((error as ScenarioError).cause).toBeDefined();
  });
});

describe('scenario warnings', () => {
  test('warnings - compressed service windows and lapsing certificates are flagged', () => {
    const s = parseScenarioYaml(`name: w
timeScale: 2880
duration: 12h
fleet: { size: 10 }
service: { certificateLifetime: 1h }
`);
    const warnings = scenarioWarnings(s);
    expect(warnings.map((w) => w.path)).toEqual([
      'service.nonceTtl',
      'service.maxClockSkew',
      'service.certificateLifetime',
      'device.attestEvery',
    ]);
    expect(warnings[0]?.message).toBe(
      '5m is only 104ms of wall time at timeScale 2880; healthy devices may be rejected with NONCE_STALE under load. Use at least 48m.',
    );
  });

  test('warnings - an OS build the service cannot appraise, and deferrals beyond 24 h', () => {
    const s = parseScenarioYaml(`name: w
duration: 25h
fleet: { size: 10 }
updates: { deferOs: { devices: { count: 2 }, for: 36h } }
images:
  - { id: next, kind: os, name: azure-sphere-os, version: "26.04", securityVersion: 6, size: 1KiB }
  - { id: known, kind: os, name: azure-sphere-os, version: "25.10", size: 1KiB }
`);
    const warnings = scenarioWarnings(s);
    expect(warnings.map((w) => w.path)).toEqual(['images[0].version', 'updates.deferOs.for']);
    expect(warnings[0]?.message).toContain(
      'no reference measurements for OS 26.04 (it knows 23.05, 24.10, 25.04, 25.10)',
    );
    expect(warnings[1]?.message).toBe(
      'applications may postpone an OS update by at most 1d; the agents will install after that, not after 1d12h',
    );
  });

  test('warnings - a real-time scenario with a re-attestation cycle has none', () => {
    expect(scenarioWarnings(parseScenarioYaml(`name: w\nduration: 25h\nfleet: { size: 10 }\n`))).toEqual([]);
  });
});
