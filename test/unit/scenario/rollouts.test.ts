import { describe, expect, test } from 'vitest';
import { scenarioProblems as problems } from '../../fixtures/scenario.js';
import { compileRolloutConfig } from '../../../services/rollouts/index.js';
import { MAX_IMAGE_BYTES as API_MAX_IMAGE_BYTES } from '../../../services/operator-api/index.js';
import {
  DEFAULT_GROUP_NAMES,
  MAX_IMAGE_BYTES,
  UPDATE_FAULTS,
  UPDATE_FAULT_LIST,
  formatSize,
  parseScenarioYaml,
  parseSize,
  scenarioWarnings,
} from '../../../loadgen/scenario/index.js';

const HEAD = `name: r
duration: 24h
fleet:
  size: 1000
  faults:
    tamperedKernel: { count: 10 }
    unendorsed: { count: 10 }
`;

/** The contract example: the whole of it, on a 1,000-device fleet with 20 hostile devices. */
const FULL = `${HEAD}updates:
  checkEvery: 20h
  chunkSize: 64KiB
  faults:
    installFails: 1%
    bootLoop: { count: 3 }
    powerLossMidDownload: 2%
    slowLink: 5%
  slowLinkBytesPerSecond: 2KiB
  deferOs: { devices: 5%, for: 12h }
groups:
  - { name: Canary, updatePolicy: SYSTEM_ONLY }
images:
  - { id: blinky-bad, kind: app, name: blinky, version: "1.1.0", size: 256KiB, defectRate: 0.5 }
  - { id: blinky-good, kind: app, name: blinky, version: "1.2.0", size: 256KiB, defectRate: 0 }
  - { id: os-next, kind: os, name: azure-sphere-os, version: "25.11", securityVersion: 6, size: 1MiB }
rollouts:
  - name: bad-app
    image: blinky-bad
    group: Field Test
    devices: 50%
    startAt: 2h
    waves: [ { count: 10 }, "25%", "100%" ]
    successThreshold: 95%
    errorCondition: { count: 5, share: 20% }
    pauseBetweenWaves: 30m
    autoRollback: true
    expect: halted
  - name: good-app
    image: blinky-good
    group: Production
    startAt: 4h
    waves: [ 0.5, { share: 1 } ]
    successThreshold: 0.9
    errorCondition: { share: 0.1 }
    expect: completed
  - name: os
    image: os-next
    group: Canary
    devices: { count: 40 }
    waves: [ "100%" ]
    successThreshold: 1
    errorCondition: { count: 1 }
thresholds:
  rollouts_completed: ["count==1"]
  rollouts_halted: ["count>=1"]
  rollout_expectations_met: ["rate==1"]
  update_success_rate: ["rate>0.5"]
`;

describe('scenario updates, images and rollouts', () => {
  test('rollouts - the full example compiles to counts, bytes and simulated ms', () => {
    const s = parseScenarioYaml(FULL);
    expect(s.updates).toEqual({
      checkEveryMs: 72_000_000,
      chunkBytes: 65_536,
      slowLinkBytesPerSecond: 2_048,
      faults: { installFails: 10, bootLoop: 3, powerLossMidDownload: 20, slowLink: 50 },
      deferOs: { devices: 50, forMs: 43_200_000 },
    });
    expect(s.groups).toEqual([{ name: 'Canary', osFeed: 'RETAIL', updatePolicy: 'SYSTEM_ONLY' }]);
    expect(s.images).toEqual([
      {
        id: 'blinky-bad',
        kind: 'app',
        name: 'blinky',
        version: '1.1.0',
        securityVersion: 1,
        sizeBytes: 262_144,
        defectRate: 0.5,
      },
      {
        id: 'blinky-good',
        kind: 'app',
        name: 'blinky',
        version: '1.2.0',
        securityVersion: 1,
        sizeBytes: 262_144,
        defectRate: 0,
      },
      {
        id: 'os-next',
        kind: 'os',
        name: 'azure-sphere-os',
        version: '25.11',
        securityVersion: 6,
        sizeBytes: 1_048_576,
        defectRate: 0,
      },
    ]);
    // 980 healthy devices: bad-app takes 50% (490), os takes 40, good-app (no devices) the rest.
    expect(s.rollouts).toEqual([
      {
        name: 'bad-app',
        imageId: 'blinky-bad',
        group: 'Field Test',
        devices: 490,
        startAtMs: 7_200_000,
        config: {
          waves: [{ count: 10 }, { share: 0.25 }, { share: 1 }],
          successThreshold: 0.95,
          errorThreshold: { count: 5, share: 0.2 },
          autoRollback: true,
          pauseBetweenWavesMs: 1_800_000,
        },
        expect: 'halted',
      },
      {
        name: 'good-app',
        imageId: 'blinky-good',
        group: 'Production',
        devices: 450,
        startAtMs: 14_400_000,
        config: {
          waves: [{ share: 0.5 }, { share: 1 }],
          successThreshold: 0.9,
          errorThreshold: { share: 0.1 },
          autoRollback: false,
          pauseBetweenWavesMs: 0,
        },
        expect: 'completed',
      },
      {
        name: 'os',
        imageId: 'os-next',
        group: 'Canary',
        devices: 40,
        startAtMs: 0,
        config: {
          waves: [{ share: 1 }],
          successThreshold: 1,
          errorThreshold: { count: 1 },
          autoRollback: false,
          pauseBetweenWavesMs: 0,
        },
        expect: null,
      },
    ]);
    // Every compiled config is one the rollout service accepts as is.
    for (const rollout of s.rollouts) expect(compileRolloutConfig(rollout.config).ok).toBe(true);
    expect(s.thresholds.map((t) => t.metric)).toEqual([
      'rollouts_completed',
      'rollouts_halted',
      'rollout_expectations_met',
      'update_success_rate',
    ]);
  });

  test('rollouts - without the sections: default update agent, no images, no rollouts', () => {
    const s = parseScenarioYaml(HEAD);
    expect(s.updates).toEqual({
      checkEveryMs: 20 * 3_600_000,
      chunkBytes: 64 * 1024,
      slowLinkBytesPerSecond: 2 * 1024,
      faults: { installFails: 0, bootLoop: 0, powerLossMidDownload: 0, slowLink: 0 },
      deferOs: { devices: 0, forMs: 0 },
    });
    expect([s.groups, s.images, s.rollouts]).toEqual([[], [], []]);
  });

  test('rollouts - image defaults: kind app, security version 1, defect rate 0; plain byte sizes', () => {
    const s = parseScenarioYaml(`${HEAD}images:\n  - { id: a, name: blinky, version: "2", size: 4096 }\n`);
    expect(s.images).toEqual([
      {
        id: 'a',
        kind: 'app',
        name: 'blinky',
        version: '2',
        securityVersion: 1,
        sizeBytes: 4096,
        defectRate: 0,
      },
    ]);
  });

  test('rollouts - a group without devices takes all healthy devices; rollouts to one group share it', () => {
    const s = parseScenarioYaml(`${HEAD}images:
  - { id: a, name: blinky, version: "2", size: 1KiB }
rollouts:
  - { name: one, image: a, group: Production, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: two, image: a, group: Production, devices: 980, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
`);
    expect(s.rollouts.map((r) => [r.group, r.devices])).toEqual([
      ['Production', 980],
      ['Production', 980],
    ]);
  });

  test('rollouts - shares of the healthy devices round down exactly (no float drift)', () => {
    const s = parseScenarioYaml(
      `name: f
duration: 1h
fleet: { size: 100 }
images: [{ id: a, name: blinky, version: "2", size: 1KiB }]
rollouts:
  - { name: x, image: a, group: Production, devices: 29%, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: y, image: a, group: Field Test, devices: 0.57, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: z, image: a, group: Development OS Evaluation, devices: 1, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
`.replace('Development OS Evaluation', 'Production OS Evaluation'),
    );
    expect(s.rollouts.map((r) => r.devices)).toEqual([29, 57, 1]);
  });

  test('rollouts - references: unknown image and group with suggestions, app to a SYSTEM_ONLY group', () => {
    const error = problems(`${HEAD}images:
  - { id: blinky-good, name: blinky, version: "1.2.0", size: 256KiB }
rollouts:
  - name: a
    image: blinky-god
    group: field test
    waves: ["100%"]
    successThreshold: 1
    errorCondition: { count: 1 }
  - name: b
    image: blinky-good
    group: Development
    waves: ["100%"]
    successThreshold: 1
    errorCondition: { count: 1 }
`);
    const m = error.message;
    expect(m).toContain(
      'rollouts[0].image: unknown image "blinky-god" (did you mean "blinky-good"?); images: blinky-good (line 12, column 5)',
    );
    expect(m).toContain(
      `rollouts[0].group: unknown device group "field test" (did you mean "Field Test"?); default groups: ${DEFAULT_GROUP_NAMES.join(', ')} (line 13, column 5)`,
    );
    expect(m).toContain(
      'rollouts[1].group: "Development" has update policy SYSTEM_ONLY (OS updates only), so its devices never install the app image "blinky-good" (line 19, column 5)',
    );
    expect(error.issues).toHaveLength(3);
  });

  test('rollouts - waves and thresholds are checked by the rollout service’s own rules, under the right path', () => {
    const rollout = (body: string): string =>
      `${HEAD}images:\n  - { id: a, name: blinky, version: "2", size: 1KiB }\nrollouts:\n  - name: x\n    image: a\n    group: Production\n${body}`;
    const lastWave = problems(
      rollout(
        `    waves: [{ count: 10 }, "50%"]\n    successThreshold: 1\n    errorCondition: { count: 1 }\n`,
      ),
    );
    expect(lastWave.message).toContain(
      'rollouts[0].waves[1]: the last wave must be { share: 1 } (reach 100%) (line 14, column 28)',
    );
    const shrinking = problems(
      rollout(
        `    waves: ["50%", "25%", "100%"]\n    successThreshold: 1\n    errorCondition: { count: 1 }\n`,
      ),
    );
    expect(shrinking.message).toContain('rollouts[0].waves[1]: must exceed the previous share wave (line 14');
    const noBudget = problems(
      rollout(`    waves: ["100%"]\n    successThreshold: 1\n    errorCondition: {}\n`),
    );
    expect(noBudget.message).toContain(
      'rollouts[0].errorCondition: needs count, share or both (an unbounded error budget is refused) (line 16, column 5)',
    );
    const shapes = problems(
      rollout(
        `    devices: 2.5\n    waves: [20, { count: 0 }, { count: 3, share: 1 }, "120%"]\n    successThreshold: 95\n    errorCondition: { count: 1.5, share: 0 }\n    pauseBetweenWaves: soon\n    expect: done\n`,
      ),
    );
    const m = shapes.message;
    expect(m).toContain(
      'rollouts[0].waves[0]: expected a cumulative share like "25%" or 0.25, or { count: N }, got 20 (write { count: 20 } for 20 devices) (line 15',
    );
    expect(m).toContain(
      'rollouts[0].devices: expected a device count like 400 or { count: 400 }, or a share of the healthy devices like "50%", got 2.5 (line 14',
    );
    expect(m).toContain('rollouts[0].waves[1].count: expected a whole number of devices (1 or more), got 0');
    expect(m).toContain('rollouts[0].waves[2]: needs exactly one of count or share');
    expect(m).toContain('rollouts[0].waves[3]: expected a cumulative share like "25%" or 0.25');
    expect(m).toContain(
      'rollouts[0].successThreshold: expected a share in [0, 1] like 0.95 or "95%", got 95 (line 16',
    );
    expect(m).toContain('rollouts[0].errorCondition.count: expected a whole number, got 1.5 (line 17');
    expect(m).toContain(
      'rollouts[0].errorCondition.share: expected a share in (0, 1] like 0.95 or "95%", got 0',
    );
    expect(m).toContain(
      'rollouts[0].pauseBetweenWaves: expected a duration like "30s" or "24h", got "soon" (line 18',
    );
    expect(m).toContain('rollouts[0].expect: expected one of "completed", "halted", got "done" (line 19');
    for (const issue of shapes.issues) expect(issue.line, issue.message).toBeGreaterThan(0);
  });

  test('rollouts - required fields are named; the start must be within the run', () => {
    const required = problems(`${HEAD}rollouts:
  - name: x
    image: a
    group: Production
`);
    expect(required.message).toContain('rollouts[0].waves: required (expected a list) (line 9');
    expect(required.message).toContain('rollouts[0].successThreshold: required (line 9');
    expect(required.message).toContain('rollouts[0].errorCondition: required (expected a mapping) (line 9');
    expect(required.issues).toHaveLength(3);

    const late = problems(`${HEAD}images:
  - { id: a, name: blinky, version: "2", size: 1KiB }
rollouts:
  - name: x
    image: a
    group: Production
    startAt: 24h
    waves: ["100%"]
    successThreshold: 1
    errorCondition: { count: 1 }
`);
    expect(late.message).toContain(
      'rollouts[0].startAt: the rollout starts at 1d but the run lasts 1d (line 14, column 5)',
    );
  });

  test('rollouts - a second error pass: duplicate rollout names and shared-group device counts', () => {
    const error = problems(`${HEAD}images:
  - { id: a, name: blinky, version: "2", size: 1KiB }
rollouts:
  - { name: x, image: a, group: Production, devices: { count: 100 }, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: x, image: a, group: Production, devices: 50%, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: y, image: a, group: Field Test, devices: 0.001, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
`);
    const m = error.message;
    expect(m).toContain('rollouts[1].name: duplicate rollout name "x" (also rollouts[0]) (line 12');
    expect(m).toContain(
      'rollouts[1].devices: rollouts to the same group share its devices: rollouts[0] assigns 100 devices to "Production", this one 490 (line 12',
    );
    expect(m).toContain(
      'rollouts[2].devices: this share of the 980 healthy devices rounds down to no device (line 13',
    );
  });

  test('rollouts - groups take at most the healthy devices; a group left with none is named', () => {
    const rollouts = (a: string, b: string): string => `${HEAD}images:
  - { id: a, name: blinky, version: "2", size: 1KiB }
rollouts:
  - { name: x, image: a, group: Production, ${a}waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: y, image: a, group: Field Test, ${b}waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
`;
    expect(problems(rollouts('devices: 60%, ', 'devices: 500, ')).message).toContain(
      'rollouts: rollout groups take 1088 devices but the fleet has only 980 healthy devices (no fault profile) (line 10, column 1)',
    );
    expect(problems(rollouts('devices: 100%, ', '')).message).toContain(
      'rollouts[1]: group "Field Test" gets the healthy devices other groups leave, but they take all 980; give this rollout "devices" (line 12, column 5)',
    );
    const split = parseScenarioYaml(rollouts('', ''));
    expect(split.rollouts.map((r) => r.devices)).toEqual([490, 490]);
  });

  test('rollouts - images: ids, names, versions, sizes, kinds and OS security versions', () => {
    const error = problems(`${HEAD}images:
  - { id: a, name: Blinky, version: 1.5, size: 64KB, defectRate: 2 }
  - { id: a, kind: os, name: os, version: "25.11", size: 8MiB }
  - { id: b, kind: firmware, name: x, version: "1", size: 0 }
  - { id: c, name: os, version: "25.11", size: 1KiB }
  - { id: d, kind: os, name: os, version: "25.11", securityVersion: 7, size: 1KiB }
`);
    const m = error.message;
    expect(m).toContain(
      'images[0].name: expected 1 to 64 characters of a-z, 0-9 and "-", starting with a letter or digit, got "Blinky" (line 9',
    );
    expect(m).toContain('images[0].version: expected a version of 1 to 32 characters');
    expect(m).toContain('got 1.5 (quote it in YAML) (line 9');
    expect(m).toContain(
      'images[0].size: expected a size like "64KiB", "1MiB" or a number of bytes, got "64KB" (did you mean "64KiB"?) (line 9',
    );
    expect(m).toContain('images[0].defectRate: expected a share in [0, 1] like 0.95 or "95%", got 2');
    expect(m).toContain(`images[1].size: must be between 1 byte and ${formatSize(MAX_IMAGE_BYTES)}`);
    expect(m).toContain('images[2].kind: expected one of "app", "os", got "firmware" (line 11');
    expect(m).toContain('images[2].size: must be between 1 byte and');
    // Second pass (once every field parses): duplicates and the OS security version, which a
    // known build has already (devices report it), and an unknown one must give.
    const second = problems(`${HEAD}images:
  - { id: a, kind: os, name: os, version: "25.11", size: 1KiB }
  - { id: a, kind: os, name: os, version: "25.11", securityVersion: 7, size: 1KiB }
  - { id: b, kind: os, name: os, version: "25.04", securityVersion: 5, size: 1KiB }
`);
    expect(second.message).toContain(
      'images[0].securityVersion: required for os images the service has no build of (the anti-rollback version devices check) (line 9, column 5)',
    );
    expect(second.message).toContain(
      'images[2].securityVersion: OS 25.04 has security version 4 (leave it out, or upload another version) (line 11',
    );
    const known = parseScenarioYaml(`${HEAD}images:
  - { id: a, kind: os, name: os, version: "25.04", size: 1KiB }
`);
    expect(known.images[0]?.securityVersion).toBe(4);
    expect(second.message).toContain('images[1].id: duplicate image id "a" (also images[0]) (line 10');
    expect(second.message).toContain(
      'images[1].version: images[0] is also the os image os 25.11; the service keeps one image per kind, name and version (line 10',
    );
    expect(MAX_IMAGE_BYTES).toBe(API_MAX_IMAGE_BYTES);
  });

  test('rollouts - custom groups may not reuse a default name or each other', () => {
    const error = problems(`${HEAD}groups:
  - { name: Production }
  - { name: Pilot, osFeed: RETAIL_EVAL }
  - { name: Pilot }
  - { name: Other, updatePolicy: EVERYTHING }
`);
    const m = error.message;
    expect(m).toContain(
      'groups[3].updatePolicy: expected one of "ACCEPT_ALL", "SYSTEM_ONLY", got "EVERYTHING" (line 12',
    );
    const second = problems(
      `${HEAD}groups:\n  - { name: Production }\n  - { name: Pilot }\n  - { name: Pilot }\n`,
    );
    expect(second.message).toContain(
      'groups[0].name: "Production" is one of the product\'s default groups, which exist already',
    );
    expect(second.message).toContain('groups[2].name: duplicate group name "Pilot" (line 11');
  });

  test('updates - chunk size range, sizes, durations, unknown faults, and the 50% cap', () => {
    const error = problems(`${HEAD}updates:
  checkEvery: 0s
  chunkSize: 1MiB
  slowLinkBytesPerSecond: 0
  faults:
    installFails: 1.5
    bootLoop: { count: -2 }
    brownout: 1%
`);
    const m = error.message;
    expect(m).toContain('updates.checkEvery: must be longer than 0, got "0s" (line 9');
    expect(m).toContain('updates.chunkSize: must be between 4KiB and 512KiB, got "1MiB" (line 10');
    expect(m).toContain(
      'updates.slowLinkBytesPerSecond: must be more than 0 bytes per second, got 0 (line 11',
    );
    expect(m).toContain('updates.faults.installFails: expected a share of the fleet in [0, 1)');
    expect(m).toContain(
      'updates.faults.bootLoop.count: expected a whole number of devices (0 or more), got -2',
    );
    expect(m).toContain('updates.faults.brownout: unknown key "brownout" (line 15');

    const cap = problems(`${HEAD}updates:\n  faults:\n    slowLink: 40%\n    bootLoop: { count: 101 }\n`);
    expect(cap.message).toContain(
      'updates.faults: 501 devices with update faults is more than half of the fleet (at most 500 of 1000) (line 9',
    );
  });

  test('thresholds - rollout metrics need rollouts; expectations need an expect', () => {
    const none = problems(`${HEAD}thresholds:
  rollouts_completed: ["count==1"]
  update_success_rate: ["rate>0.9", "rate<1"]
`);
    expect(none.message).toContain(
      'thresholds.rollouts_completed: the scenario has no rollouts, so this threshold has no data; remove it or add rollouts (line 9',
    );
    expect(none.issues.filter((i) => i.path.includes('update_success_rate'))).toHaveLength(1);
    const noExpect = problems(`${HEAD}images:
  - { id: a, name: blinky, version: "2", size: 1KiB }
rollouts:
  - { name: x, image: a, group: Production, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
thresholds:
  rollout_expectations_met: ["rate==1"]
`);
    expect(noExpect.message).toContain(
      'thresholds.rollout_expectations_met: no rollout has an "expect", so this threshold has no data',
    );
    expect(problems(`${HEAD}thresholds:\n  rollouts_halted: ["rate>0"]\n`).message).toContain(
      'thresholds.rollouts_halted[0]: rollouts_halted is a count metric: use count, not rate',
    );
  });

  test('warnings - a rollout starting less than one update check before the end is flagged', () => {
    const s = parseScenarioYaml(`${HEAD}updates: { checkEvery: 2h }
images:
  - { id: a, name: blinky, version: "2", size: 1KiB }
rollouts:
  - { name: late, image: a, group: Production, startAt: 23h, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
  - { name: early, image: a, group: Production, startAt: 1h, waves: ["100%"], successThreshold: 1, errorCondition: { count: 1 } }
`);
    const warnings = scenarioWarnings(s).filter((w) => w.path.startsWith('rollouts'));
    expect(warnings).toEqual([
      {
        path: 'rollouts[0].startAt',
        message:
          'rollout "late" starts 1h before the run ends, but devices check for updates only every 2h (updates.checkEvery), so some may never see it',
      },
    ]);
  });

  test('catalog - every update fault has a description and an outcome', () => {
    expect(UPDATE_FAULT_LIST).toEqual(['installFails', 'bootLoop', 'powerLossMidDownload', 'slowLink']);
    for (const fault of UPDATE_FAULT_LIST)
      expect(UPDATE_FAULTS[fault].description.length).toBeGreaterThan(10);
    expect(UPDATE_FAULTS.installFails).toMatchObject({ outcome: 'failed', code: 'INSTALL_FAILED' });
    expect(UPDATE_FAULTS.bootLoop).toMatchObject({ outcome: 'rolled-back', code: 'BOOT_FAILED' });
  });

  test('sizes - parse bytes and binary units; refuse decimal units and fractions of a byte', () => {
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('512B')).toBe(512);
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize(' 1.5 KiB ')).toBe(1536);
    expect(parseSize('1MiB')).toBe(1_048_576);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(() => parseSize('1MB')).toThrow('(did you mean "1MiB"?)');
    expect(() => parseSize('1 parsec')).toThrow('expected a size like');
    expect(() => parseSize('0.3KiB')).toThrow('must be a whole number of bytes');
    expect(() => parseSize(-1)).toThrow('expected a size like');
    expect(() => parseSize(true)).toThrow('got true');
    expect([formatSize(512), formatSize(65_536), formatSize(1536), formatSize(1_048_576)]).toEqual([
      '512B',
      '64KiB',
      '1.5KiB',
      '1MiB',
    ]);
  });
});
