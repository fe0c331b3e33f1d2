import { describe, expect, it } from 'vitest';
import { AdmissionControl } from '../../../services/shard/admission.js';

describe('admission control', () => {
  it('admission - admits up to the bound and again after a release', () => {
    const a = new AdmissionControl({ maxInFlight: 2 });
    expect([a.tryAdmit(), a.tryAdmit(), a.tryAdmit()]).toEqual([true, true, false]);
    expect(a.hasRoom()).toBe(false);
    a.release(10);
    expect(a.inFlight).toBe(1);
    expect(a.tryAdmit()).toBe(true);
  });

  it('admission - refused devices get successive slots paced at the measured completion rate', () => {
    const a = new AdmissionControl({ maxInFlight: 1, minRetryWallMs: 0, minRatePerSec: 1 });
    // 500 completions in the first wall second: a rate of 500/s, i.e. one slot every 2 ms.
    for (let i = 0; i < 500; i++) a.release(i * 2);
    const now = 1_500;
    const waits = Array.from({ length: 5 }, () => a.retryWallMs(now, 0));
    expect(waits).toEqual([2, 4, 6, 8, 10]);
  });

  it('admission - waits stay within the cap however many devices are refused', () => {
    const a = new AdmissionControl({
      maxInFlight: 1,
      minRetryWallMs: 200,
      maxRetryWallMs: 1_000,
      minRatePerSec: 10,
    });
    const waits = Array.from({ length: 100 }, () => a.retryWallMs(0, 0.99));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(200);
    expect(Math.max(...waits)).toBeLessThanOrEqual(1_100);
    // At the 10/s floor, slots are 100 ms apart until the cap.
    expect(waits.slice(0, 3).map((w) => Math.round(w / 1.099))).toEqual([300, 400, 500]);
  });

  it('admission - with no completions for two seconds the rate falls back to the floor', () => {
    const a = new AdmissionControl({ maxInFlight: 1, minRatePerSec: 50 });
    for (let i = 0; i < 1000; i++) a.release(i);
    expect(a.ratePerSec(1_500)).toBe(1000);
    expect(a.ratePerSec(5_000)).toBe(50);
  });
});
