import { describe, expect, test } from 'vitest';
import { scenarioProblems as problems } from '../../fixtures/scenario.js';
import { CHAOS_DEFAULTS, compileChaosFault, parseScenarioYaml } from '../../../loadgen/scenario/index.js';
import type { ChaosConfig } from '../../../loadgen/scenario/index.js';

/** 2 simulated minutes at time scale 1: the run lasts 120 wall seconds. */
const HEAD = `name: chaos
duration: 2m
fleet:
  size: 100
`;

/** The chaos section of `HEAD` + `chaos` (indented YAML under `chaos:`). */
function chaosOf(chaos: string, head = HEAD): ChaosConfig {
  const c = parseScenarioYaml(`${head}chaos:\n${chaos}`).chaos;
  if (c === null) throw new Error('expected a chaos section');
  return c;
}

/** The issues of a rejected scenario as `path: message` lines. */
function issuesOf(chaos: string, head = HEAD): string[] {
  return problems(`${head}chaos:\n${chaos}`).issues.map(
    (i) => `${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('')}: ${i.message}`,
  );
}

describe('scenario: chaos section', () => {
  test('chaos - a scenario without chaos has chaos: null', () => {
    expect(parseScenarioYaml(HEAD).chaos).toBeNull();
  });

  test('chaos - an empty section gets the default stack and no faults', () => {
    expect(CHAOS_DEFAULTS).toEqual({ natsNodes: 3, shards: 3, leaseTtlMs: 6000 });
    expect(chaosOf('  faults: []\n')).toEqual({ natsNodes: 3, shards: 3, leaseTtlMs: 6000, faults: [] });
    expect(chaosOf('  natsNodes: 5\n  shards: 4\n  leaseTtl: 2s\n')).toEqual({
      natsNodes: 5,
      shards: 4,
      leaseTtlMs: 2000,
      faults: [],
    });
  });

  test('chaos - every link fault kind compiles to its action, label and times', () => {
    const c = chaosOf(`  faults:
    - { at: 20s, for: 15s, partition: { between: [shard-1, nats] } }
    - { at: 30s, for: 10s, latency: { between: [devices, nats], ms: 150, jitter: 50 } }
    - { at: 40s, for: 10s, latency: { between: [[devices, shards], nats-0], ms: 20 } }
    - { at: 50s, for: 5s, bandwidth: { between: [devices, nats], bytesPerSecond: 64KiB } }
    - { at: 1m, for: 5s, loss: { between: [nats-0, nats], rate: 0.05, share: 0.5 } }
    - { at: 70s, reset: { between: [devices, nats], share: 0.25 } }
`);
    expect(c.faults).toEqual([
      {
        index: 0,
        atMs: 20_000,
        forMs: 15_000,
        action: { kind: 'partition', between: [['shard-1'], ['nats']], share: 1 },
        label: 'partition shard-1 | nats',
      },
      {
        index: 1,
        atMs: 30_000,
        forMs: 10_000,
        action: { kind: 'latency', ms: 150, jitterMs: 50, between: [['devices'], ['nats']], share: 1 },
        label: 'latency devices | nats 150±50 ms',
      },
      {
        index: 2,
        atMs: 40_000,
        forMs: 10_000,
        action: {
          kind: 'latency',
          ms: 20,
          jitterMs: 0,
          between: [['devices', 'shards'], ['nats-0']],
          share: 1,
        },
        label: 'latency devices+shards | nats-0 20±0 ms',
      },
      {
        index: 3,
        atMs: 50_000,
        forMs: 5_000,
        action: { kind: 'bandwidth', bytesPerSecond: 65_536, between: [['devices'], ['nats']], share: 1 },
        label: 'bandwidth devices | nats 65536 B/s',
      },
      {
        index: 4,
        atMs: 60_000,
        forMs: 5_000,
        action: { kind: 'loss', rate: 0.05, between: [['nats-0'], ['nats']], share: 0.5 },
        label: 'loss nats-0 | nats (50%) 5%',
      },
      {
        index: 5,
        atMs: 70_000,
        forMs: null,
        action: { kind: 'reset', between: [['devices'], ['nats']], share: 0.25 },
        label: 'reset devices | nats (25%)',
      },
    ]);
  });

  test('chaos - process faults name their target; a kill without for stays down', () => {
    const c = chaosOf(`  shards: 2
  natsNodes: 1
  faults:
    - { at: 45s, for: 10s, kill: shard-1 }
    - { at: 50s, kill: nats-0 }
    - { at: 1m, for: 3s, pause: shard-0 }
`);
    expect(c.faults).toEqual([
      {
        index: 0,
        atMs: 45_000,
        forMs: 10_000,
        action: { kind: 'kill', target: 'shard-1' },
        label: 'kill shard-1',
      },
      {
        index: 1,
        atMs: 50_000,
        forMs: null,
        action: { kind: 'kill', target: 'nats-0' },
        label: 'kill nats-0',
      },
      {
        index: 2,
        atMs: 60_000,
        forMs: 3_000,
        action: { kind: 'pause', target: 'shard-0' },
        label: 'pause shard-0',
      },
    ]);
  });

  test('chaos - fault times are wall time: at must fall inside the wall duration (duration / timeScale)', () => {
    // 1 h at time scale 60 runs for 60 wall seconds.
    const fast = `name: fast
duration: 1h
timeScale: 60
fleet:
  size: 10
`;
    expect(chaosOf('  faults:\n    - { at: 59s, kill: shard-0 }\n', fast).faults[0]?.atMs).toBe(59_000);
    const e = problems(`${fast}chaos:\n  faults:\n    - { at: 60s, kill: shard-0 }\n`);
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]?.path).toEqual(['chaos', 'faults', 0, 'at']);
    expect(e.message).toContain(
      'chaos.faults[0].at: starts after the run ends (the run lasts 60 wall seconds)',
    );
  });
});

describe('scenario: chaos section errors', () => {
  test('chaos - a fault has exactly one kind', () => {
    const two = problems(
      `${HEAD}chaos:\n  faults:\n    - { at: 1s, for: 1s, kill: shard-0, partition: { between: [shard-0, nats] } }\n`,
    );
    expect(two.message).toContain('chaos.faults[0]: a fault has exactly one of');
    expect(two.message).toContain('got partition, kill');
    const none = problems(`${HEAD}chaos:\n  faults:\n    - { at: 1s, for: 1s }\n`);
    expect(none.message).toContain('chaos.faults[0]: a fault has exactly one of');
    expect(none.message).toContain('got none');
  });

  test('chaos - an endpoint that is not one names the side', () => {
    expect(issuesOf('  faults:\n    - { at: 1s, partition: { between: [shard-x, nats] } }\n')).toEqual([
      '.chaos.faults[0].partition.between[0]: expected devices, shards, shard-N, nats or nats-N, got "shard-x"',
    ]);
    expect(
      issuesOf('  faults:\n    - { at: 1s, partition: { between: [nats, [devices, shard-x]] } }\n'),
    ).toEqual([
      '.chaos.faults[0].partition.between[1][1]: expected devices, shards, shard-N, nats or nats-N, got "shard-x"',
    ]);
    expect(issuesOf('  faults:\n    - { at: 1s, partition: { between: [shard-1] } }\n')).toEqual([
      '.chaos.faults[0].partition.between: expected two sides like [shard-1, nats], got a list',
    ]);
    expect(issuesOf('  faults:\n    - { at: 1s, partition: { between: [[], nats] } }\n')).toEqual([
      '.chaos.faults[0].partition.between[0]: a side needs at least one endpoint',
    ]);
  });

  test('chaos - endpoints are numbered from 0: shard-3 does not exist with 3 shards', () => {
    expect(issuesOf('  shards: 3\n  faults:\n    - { at: 1s, kill: shard-3 }\n')).toEqual([
      '.chaos.faults[0].kill: shard-3 does not exist (the stack has 3 shards, 3 NATS nodes, numbered from 0)',
    ]);
    expect(
      issuesOf(
        '  natsNodes: 2\n  faults:\n    - { at: 1s, for: 2s, partition: { between: [shard-0, nats-2] } }\n',
      ),
    ).toEqual([
      '.chaos.faults[0].partition.between[1]: nats-2 does not exist (the stack has 3 shards, 2 NATS nodes, numbered from 0)',
    ]);
    expect(chaosOf('  shards: 3\n  faults:\n    - { at: 1s, kill: shard-2 }\n').faults).toHaveLength(1);
  });

  test('chaos - every link ends at NATS: a fault between devices and a shard is refused', () => {
    const both = issuesOf(
      '  faults:\n    - { at: 1s, for: 2s, partition: { between: [devices, shard-1] } }\n',
    );
    expect(both).toEqual([
      '.chaos.faults[0].partition.between: the two sides must differ and one of them must include NATS (every link ends at a NATS node)',
    ]);
    const same = issuesOf(
      '  faults:\n    - { at: 1s, for: 2s, latency: { between: [nats, nats], ms: 5 } }\n',
    );
    expect(same).toHaveLength(1);
    expect(same[0]).toMatch(/^\.chaos\.faults\[0\]\.latency\.between: the two sides must differ/);
  });

  test('chaos - a pause needs for', () => {
    expect(issuesOf('  faults:\n    - { at: 1s, pause: shard-0 }\n')).toEqual([
      '.chaos.faults[0].for: a pause needs `for` (how long the process is stopped)',
    ]);
  });

  test('chaos - a process fault targets one process, not a group', () => {
    const e = issuesOf('  faults:\n    - { at: 1s, for: 1s, kill: shards }\n');
    expect(e).toEqual(['.chaos.faults[0].kill: expected a process like shard-1 or nats-2, got "shards"']);
  });

  test('chaos - out of range values and unknown keys name their path', () => {
    expect(issuesOf('  faults:\n    - { at: 1s, for: 1s, kil: shard-0 }\n')).toContain(
      '.chaos.faults[0].kil: unknown key "kil" (did you mean "kill"?)',
    );
    expect(issuesOf('  shard: 2\n')).toEqual(['.chaos.shard: unknown key "shard" (did you mean "shards"?)']);
    const share = issuesOf(
      '  faults:\n    - { at: 1s, for: 1s, reset: { between: [devices, nats], share: 0 } }\n',
    );
    expect(share).toHaveLength(1);
    expect(share[0]).toMatch(/^\.chaos\.faults\[0\]\.reset\.share: must be > 0/);
    const forZero = issuesOf('  faults:\n    - { at: 1s, for: 0s, kill: shard-0 }\n');
    expect(forZero).toHaveLength(1);
    expect(forZero[0]).toMatch(/^\.chaos\.faults\[0\]\.for: must be longer than 0/);
    expect(issuesOf('  faults:\n    - { for: 1s, kill: shard-0 }\n')).toContain(
      '.chaos.faults[0].at: required',
    );
    const nodes = issuesOf('  natsNodes: 10\n');
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatch(/^\.chaos\.natsNodes: must be <= 9/);
  });

  test('chaos - every problem is reported with its line', () => {
    const e = problems(`${HEAD}chaos:
  faults:
    - { at: 1s, for: 1s, kill: shard-7 }
    - { at: 5m, for: 1s, pause: shard-0 }
`);
    expect(e.issues.map((i) => [i.path.join('.'), i.line])).toEqual([
      ['chaos.faults.0.kill', 7],
      ['chaos.faults.1.at', 8],
    ]);
  });
});

describe('compileChaosFault (sphere chaos inject)', () => {
  const stack = { shards: 2, natsNodes: 3 };
  test('a fault without at compiles for now, with a manual index', () => {
    const f = compileChaosFault({ for: '10s', partition: { between: ['shard-1', 'nats'] } }, stack);
    expect(f).toMatchObject({ index: -1, atMs: 0, forMs: 10_000, label: 'partition shard-1 | nats' });
    expect(f.action).toEqual({ kind: 'partition', between: [['shard-1'], ['nats']], share: 1 });
  });
  test('problems are named, and checked against the running stack', () => {
    expect(() => compileChaosFault({ kill: 'shard-2' }, stack)).toThrow(/kill: shard-2 does not exist/);
    expect(() => compileChaosFault({ for: '1s' }, stack)).toThrow(/exactly one of/);
    expect(() => compileChaosFault({ latency: { between: ['devices', 'nats'] } }, stack)).toThrow(
      /latency\.ms/,
    );
    expect(() => compileChaosFault('kill', stack)).toThrow();
  });
});
