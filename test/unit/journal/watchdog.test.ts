/**
 * The journal follower's watchdog (pure logic: time and the stream's last sequence are injected;
 * checks are called by hand). A follower silent for the stall period while the journal holds
 * entries it has not delivered is restarted once; an idle follower that is caught up, a busy one,
 * and one whose NATS cannot be asked are left alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FollowerWatchdog } from '../../../services/journal/index.js';

const dogs: FollowerWatchdog[] = [];
afterEach(() => dogs.splice(0).forEach((d) => d.stop()));

function setup(last: () => Promise<number>) {
  let now = 0;
  let next = 11;
  const restarts: number[] = [];
  const dog = new FollowerWatchdog({
    next: () => next,
    lastSeq: last,
    restart: (behind) => restarts.push(behind),
    stallMs: 3_000,
    checkEveryMs: 3_600_000,
    now: () => now,
  });
  dogs.push(dog);
  return {
    dog,
    restarts,
    advance: (ms: number) => (now += ms),
    deliver: (seq: number) => {
      next = seq + 1;
      dog.progress();
    },
  };
}

describe('journal follower watchdog', () => {
  it('watchdog - silent past the stall period while the journal is ahead: restarts once, saying how far behind', async () => {
    const w = setup(() => Promise.resolve(14));
    w.advance(2_999);
    await w.dog.check();
    expect(w.restarts).toEqual([]);
    w.advance(1);
    await w.dog.check();
    expect(w.restarts).toEqual([4]); // 11, 12, 13, 14 not delivered
    w.advance(10_000);
    await w.dog.check(); // stopped by its restart: the new consumer gets a new watchdog
    expect(w.restarts).toEqual([4]);
  });

  it('watchdog - deliveries keep it quiet; caught up and idle is not a stall', async () => {
    let last = 12;
    const w = setup(() => Promise.resolve(last));
    w.advance(2_000);
    w.deliver(11);
    w.advance(2_000);
    await w.dog.check(); // 2 s since the last delivery
    expect(w.restarts).toEqual([]);
    w.deliver(12);
    w.advance(5_000);
    await w.dog.check(); // idle, nothing to read
    expect(w.restarts).toEqual([]);
    last = 13;
    w.advance(2_000);
    await w.dog.check(); // the idle check restarted the stall period
    expect(w.restarts).toEqual([]);
    w.advance(1_000);
    await w.dog.check();
    expect(w.restarts).toEqual([1]);
  });

  it('watchdog - a follower busy applying an entry, or a stream that cannot be asked, is left alone', async () => {
    let fail = true;
    const w = setup(() => (fail ? Promise.reject(new Error('timeout')) : Promise.resolve(20)));
    w.dog.busy = true;
    w.advance(60_000);
    await w.dog.check();
    w.dog.busy = false;
    await w.dog.check(); // NATS unreachable: no answer, no restart
    expect(w.restarts).toEqual([]);
    fail = false;
    await w.dog.check();
    expect(w.restarts).toEqual([10]);
  });
});
