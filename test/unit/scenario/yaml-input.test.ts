/**
 * Inputs the fuzzer found that escaped as bare errors (BUG-4, BUG-6 in deploy/fuzz/known-bugs.ts
 * before they were fixed): each must be a ScenarioError naming where the problem is.
 */
import { describe, expect, test } from 'vitest';
import { scenarioProblems as problems } from '../../fixtures/scenario.js';
import { ScenarioError, compileScenario, parseScenarioYaml } from '../../../loadgen/scenario/index.js';

describe('scenario yaml input', () => {
  test('yaml - an alias without its anchor is a ScenarioError at the alias, line and column', () => {
    const e = problems('name: x\nduration: 1h\nfleet:\n  size: *size\n');
    expect(e.issues).toEqual([
      {
        path: [],
        message: 'YAML error: alias *size refers to no anchor &size before it',
        line: 4,
        column: 9,
      },
    ]);
    expect(() => parseScenarioYaml('*a')).toThrow(ScenarioError);
  });

  test('yaml - every unresolved alias is listed; an anchor after its alias does not count', () => {
    const e = problems('name: *n\nduration: *d\nfleet: &d { size: 1 }\n');
    expect(e.issues.map((i) => [i.message, i.line])).toEqual([
      ['YAML error: alias *n refers to no anchor &n before it', 1],
      ['YAML error: alias *d refers to no anchor &d before it', 2],
    ]);
  });

  test('yaml - aliases that expand too far are a ScenarioError, not a ReferenceError', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 6; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const e = problems(`${lines.join('\n')}\nname: x\nduration: 1h\nfleet: { size: 1 }\n`);
    expect(e.message).toContain('YAML error: Excessive alias count');
  });

  test('yaml - anchors and aliases that resolve still work', () => {
    const s = parseScenarioYaml(
      'name: x\nduration: &d 2h\nfleet: { size: 3 }\nstages: [{ bootStorm: { within: *d } }]\n',
    );
    expect(s.stages[0]?.endMs).toBe(7_200_000);
  });

  test('yaml - a map key `constructor: ~` is an unknown key, not a TypeError', () => {
    const e = problems("name: x\nduration: 1h\nfleet: { size: 10, osMix: { '25.10': 1, constructor: ~ } }\n");
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]?.path).toEqual(['fleet', 'osMix', 'constructor']);
    expect(e.issues[0]?.message).toContain('unknown OS version "constructor"');
    expect(e.issues[0]?.line).toBe(3);
  });

  test('yaml - `constructor` in thresholds, and with any value, is refused the same way', () => {
    for (const value of ['~', '1', '"x"', '[a]', '{ prototype: 1 }']) {
      const e = problems(
        `name: x\nduration: 1h\nfleet: { size: 1 }\nthresholds: { constructor: ${value} }\n`,
      );
      expect(e.issues.map((i) => i.path)).toEqual([['thresholds', 'constructor']]);
      expect(e.issues[0]?.message).toContain('unknown metric');
    }
    // compileScenario over plain objects (not only YAML) too.
    expect(() =>
      compileScenario({
        name: 'x',
        duration: '1h',
        fleet: { size: 1, osMix: { '25.10': 1, constructor: null } },
      }),
    ).toThrow(ScenarioError);
  });
});
