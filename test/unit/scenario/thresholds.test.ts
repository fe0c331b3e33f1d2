import { describe, expect, test } from 'vitest';
import {
  LatencyRecorder,
  THRESHOLD_METRICS,
  ThresholdError,
  compileThresholds,
  evaluateThresholds,
  parseThreshold,
  percentileOfSorted,
} from '../../../loadgen/scenario/index.js';

describe('thresholds', () => {
  test('thresholds - parse every aggregation and operator', () => {
    expect(parseThreshold('attest_latency_ms', 'p(99)<500')).toEqual({
      metric: 'attest_latency_ms',
      expression: 'p(99)<500',
      aggregation: { name: 'p', percentile: 99 },
      operator: '<',
      value: 500,
    });
    expect(parseThreshold('attest_latency_ms', ' p( 99.9 ) <= 1e3 ').aggregation).toEqual({
      name: 'p',
      percentile: 99.9,
    });
    expect(parseThreshold('attest_latency_ms', ' p( 99.9 ) <= 1e3 ').value).toBe(1000);
    for (const name of ['avg', 'min', 'max', 'med'] as const) {
      expect(parseThreshold('challenge_latency_ms', `${name}>=2.5`).aggregation).toEqual({ name });
    }
    expect(parseThreshold('attest_success_rate', 'rate>0.99').operator).toBe('>');
    expect(parseThreshold('hostile_rejected_rate', 'rate==1').operator).toBe('==');
    expect(parseThreshold('transport_errors', 'count!=3').operator).toBe('!=');
    expect(parseThreshold('devices_attested', 'count>=1980').value).toBe(1980);
  });

  test('thresholds - reject unknown metrics, bad syntax and aggregations the metric does not support', () => {
    expect(() => parseThreshold('latency', 'p(99)<5')).toThrow(/unknown metric "latency"/);
    expect(() => parseThreshold('attest_latency_ms', 'p99<5')).toThrow(ThresholdError);
    expect(() => parseThreshold('attest_latency_ms', 'p(99)=<5')).toThrow(/expected an expression/);
    expect(() => parseThreshold('attest_latency_ms', 'p(99)<')).toThrow(ThresholdError);
    expect(() => parseThreshold('attest_latency_ms', 'p(101)<5')).toThrow(/within 0..100/);
    expect(() => parseThreshold('attest_latency_ms', 'rate>0.5')).toThrow(
      'attest_latency_ms is a trend metric: use p(N), avg, min, max, med, not rate',
    );
    expect(() => parseThreshold('attest_success_rate', 'p(99)<1')).toThrow(/rate metric: use rate/);
    expect(() => parseThreshold('devices_attested', 'avg>1')).toThrow(/count metric: use count/);
    expect(() => parseThreshold('attest_success_rate', 'rate>99')).toThrow(/share between 0 and 1/);
  });

  test('thresholds - every metric has a kind and a description', () => {
    expect(Object.keys(THRESHOLD_METRICS).sort()).toEqual(
      [
        'attest_latency_ms',
        'attest_success_rate',
        'attestations_failed',
        'attestations_ok',
        'challenge_latency_ms',
        'devices_attested',
        'hostile_rejected_rate',
        'transport_errors',
        'rollouts_completed',
        'rollouts_halted',
        'rollout_expectations_met',
        'update_success_rate',
      ].sort(),
    );
    for (const metric of Object.values(THRESHOLD_METRICS))
      expect(metric.description.length).toBeGreaterThan(10);
  });

  test('thresholds - rollout metrics: counts of final states, rates of expectations and update outcomes', () => {
    expect(THRESHOLD_METRICS.rollouts_completed.kind).toBe('count');
    expect(THRESHOLD_METRICS.rollouts_halted.kind).toBe('count');
    expect(THRESHOLD_METRICS.rollout_expectations_met.kind).toBe('rate');
    expect(THRESHOLD_METRICS.update_success_rate.kind).toBe('rate');
    expect(parseThreshold('rollouts_halted', 'count==1').value).toBe(1);
    expect(parseThreshold('update_success_rate', 'rate>=0.95').operator).toBe('>=');
    expect(() => parseThreshold('rollout_expectations_met', 'count==2')).toThrow(
      'rollout_expectations_met is a rate metric: use rate, not count',
    );
    expect(() => parseThreshold('update_success_rate', 'rate>1.5')).toThrow(
      'a rate is a share between 0 and 1',
    );
    const report = evaluateThresholds(
      {
        rollouts_completed: ['count==1'],
        rollouts_halted: ['count==1'],
        rollout_expectations_met: ['rate==1'],
        update_success_rate: ['rate>0.9'],
      },
      {
        rollouts_completed: { count: 1 },
        rollouts_halted: { count: 0 },
        rollout_expectations_met: { rate: 1 },
      },
    );
    expect(report.results.map((r) => [r.metric, r.actual, r.pass])).toEqual([
      ['rollouts_completed', 1, true],
      ['rollouts_halted', 0, false],
      ['rollout_expectations_met', 1, true],
      ['update_success_rate', null, false],
    ]);
  });

  test('evaluate - trends from exact samples use k6 linear interpolation', () => {
    const values = [5, 1, 4, 2, 3]; // sorted 1..5
    const report = evaluateThresholds(
      {
        attest_latency_ms: [
          'p(50)==3',
          'p(90)==4.6',
          'p(25)<2.01',
          'avg==3',
          'min==1',
          'max==5',
          'med==3',
          'p(0)==1',
          'p(100)==5',
        ],
      },
      { attest_latency_ms: { values } },
    );
    expect(report.results.map((r) => [r.expression, r.actual, r.pass])).toEqual([
      ['p(50)==3', 3, true],
      ['p(90)==4.6', 4.6, true],
      ['p(25)<2.01', 2, true],
      ['avg==3', 3, true],
      ['min==1', 1, true],
      ['max==5', 5, true],
      ['med==3', 3, true],
      ['p(0)==1', 1, true],
      ['p(100)==5', 5, true],
    ]);
    expect(report.pass).toBe(true);
  });

  test('evaluate - boundaries of every operator', () => {
    const observed = { devices_attested: { count: 10 } };
    const cases: [string, boolean][] = [
      ['count<10', false],
      ['count<=10', true],
      ['count>10', false],
      ['count>=10', true],
      ['count==10', true],
      ['count!=10', false],
    ];
    for (const [expression, pass] of cases) {
      expect(evaluateThresholds({ devices_attested: [expression] }, observed).pass, expression).toBe(pass);
    }
  });

  test('evaluate - rates, counts, a failing threshold fails the whole report', () => {
    const report = evaluateThresholds(
      compileThresholds({ attest_success_rate: 'rate>0.99', hostile_rejected_rate: ['rate==1'] }),
      {
        attest_success_rate: { rate: 0.985 },
        hostile_rejected_rate: { values: [1, 1, 1, 1] },
      },
    );
    expect(report.results).toEqual([
      { metric: 'attest_success_rate', expression: 'rate>0.99', actual: 0.985, pass: false },
      { metric: 'hostile_rejected_rate', expression: 'rate==1', actual: 1, pass: true },
    ]);
    expect(report.pass).toBe(false);
  });

  test('evaluate - no data fails with actual null; no thresholds passes', () => {
    const report = evaluateThresholds(
      { attest_latency_ms: ['p(99)<500'], transport_errors: ['count<1'], attest_success_rate: ['rate>0.5'] },
      { attest_latency_ms: { values: [] }, attest_success_rate: { rate: Number.NaN } },
    );
    expect(report.results.map((r) => [r.actual, r.pass])).toEqual([
      [null, false],
      [null, false],
      [null, false],
    ]);
    expect(evaluateThresholds([], {})).toEqual({ pass: true, results: [] });
  });

  test('evaluate - trends can come from a LatencyRecorder', () => {
    const recorder = new LatencyRecorder();
    for (let i = 1; i <= 1000; i++) recorder.record(i);
    const report = evaluateThresholds(
      { attest_latency_ms: ['p(99)<1000', 'p(99)>980'] },
      { attest_latency_ms: { latency: recorder } },
    );
    expect(report.pass).toBe(true);
    // Exact p(99) of 1..1000 is 990.01; the histogram is within 1% of it.
    expect(Math.abs((report.results[0]?.actual ?? 0) - 990.01)).toBeLessThanOrEqual(9.91);
  });

  test('compile - raw defs with errors throw one ThresholdError listing each', () => {
    expect(() => compileThresholds({ attest_latency_ms: ['p(99)<5', 'nope'], bogus: ['count>1'] })).toThrow(
      /thresholds\.attest_latency_ms\[1\]: expected an expression[\s\S]*thresholds\.bogus\[0\]: unknown metric/,
    );
  });

  test('percentile - sorted-array helper edge cases', () => {
    expect(percentileOfSorted([], 50)).toBeNaN();
    expect(percentileOfSorted([7], 99)).toBe(7);
    expect(percentileOfSorted([1, 2], 50)).toBe(1.5);
    expect(percentileOfSorted([10, 20, 30, 40], 75)).toBeCloseTo(32.5, 12);
  });
});
