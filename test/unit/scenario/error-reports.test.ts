import { describe, expect, test } from 'vitest';
import { scenarioProblems as problems } from '../../fixtures/scenario.js';
import { DEFAULT_DEVICE_ERROR_BEHAVIOUR } from '../../../actors/device/index.js';
import { deviceBehaviour } from '../../../loadgen/runner/index.js';
import { parseScenarioYaml } from '../../../loadgen/scenario/index.js';

const HEAD = `name: e
duration: 24h
fleet:
  size: 100
`;

describe('scenario error reports', () => {
  test('errors - without the section devices never crash and upload daily', () => {
    const s = parseScenarioYaml(HEAD);
    expect(s.errors).toEqual({
      appCrashesPerDay: 0,
      appExitsPerDay: 0,
      osCrashesPerDay: 0,
      uploadEveryMs: 86_400_000,
      crashyImages: [],
    });
    // What the fleet runner gives each device actor: the defaults, the scenario's device knobs.
    expect(deviceBehaviour(s)).toEqual({ ...s.device, errors: DEFAULT_DEVICE_ERROR_BEHAVIOUR });
  });

  test('errors - rates, the upload period and crashy images compile; images without a rate are not crashy', () => {
    const s = parseScenarioYaml(`${HEAD}errors:
  appCrashesPerDay: 0.5
  appExitsPerDay: 0.25
  osCrashesPerDay: 0.01
  uploadEvery: 12h
images:
  - { id: ok, name: blinky, version: '1.2.0', size: 1KiB }
  - { id: crashy, name: blinky, version: '1.3.0', size: 1KiB, crashesPerDay: 6 }
  - { id: os-crashy, kind: os, name: azure-sphere-os, version: '25.10', size: 1KiB, crashesPerDay: 2 }
`);
    expect(s.errors).toEqual({
      appCrashesPerDay: 0.5,
      appExitsPerDay: 0.25,
      osCrashesPerDay: 0.01,
      uploadEveryMs: 43_200_000,
      crashyImages: [
        { kind: 'app', name: 'blinky', version: '1.3.0', crashesPerDay: 6 },
        { kind: 'os', name: 'azure-sphere-os', version: '25.10', crashesPerDay: 2 },
      ],
    });
    expect(deviceBehaviour(s).errors).toEqual({ ...DEFAULT_DEVICE_ERROR_BEHAVIOUR, ...s.errors });
    // The image list itself is unchanged: crash rates live in `errors`.
    expect(s.images.map((i) => Object.keys(i).includes('crashesPerDay'))).toEqual([false, false, false]);
  });

  test('errors - bad rates, periods and keys are named by field', () => {
    const error = problems(`${HEAD}errors:
  appCrashesPerDay: -1
  appExitsPerDay: often
  osCrashesPerDay: 5000
  uploadEvery: 30s
  crashesPerDay: 1
images:
  - { id: a, name: blinky, version: '2', size: 1KiB, crashesPerDay: '3/d' }
`);
    const rate = 'expected a number of events per device and simulated day from 0 to 1000, like 0.5';
    expect(error.message).toContain(`errors.appCrashesPerDay: ${rate}, got -1 (line 6`);
    expect(error.message).toContain(`errors.appExitsPerDay: ${rate}, got "often"`);
    expect(error.message).toContain(`errors.osCrashesPerDay: ${rate}, got 5000`);
    expect(error.message).toContain(`images[0].crashesPerDay: ${rate}, got "3/d"`);
    expect(error.message).toContain(
      'errors.crashesPerDay: unknown key "crashesPerDay" (did you mean "osCrashesPerDay"?)',
    );
  });

  test('errors - the upload period is between a minute and 14 days', () => {
    expect(problems(`${HEAD}errors: { uploadEvery: 30s }\n`).message).toContain(
      'errors.uploadEvery: must be between 1m and 14d (a report spans at most 14 days), got 30s',
    );
    expect(problems(`${HEAD}errors: { uploadEvery: 15d }\n`).message).toContain(
      'errors.uploadEvery: must be between 1m and 14d',
    );
    expect(problems(`${HEAD}errors: { uploadEvery: 0s }\n`).message).toContain(
      'errors.uploadEvery: must be longer than 0',
    );
  });
});
