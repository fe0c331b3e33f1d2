/**
 * Bounded building blocks of the detector: a capped map that forgets its least recently written
 * entry, and an event count over a sliding window kept in a fixed number of buckets.
 */

/**
 * A `Map` holding at most `capacity` entries. {@link set} makes an entry the most recent; beyond
 * capacity the least recently set entry is evicted (and counted). Every operation is O(1).
 */
export class BoundedMap<K, V> {
  readonly capacity: number;
  readonly #map = new Map<K, V>();
  #evicted = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Stores `value` as the most recent entry; evicts the oldest entry beyond capacity. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.capacity) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
      this.#evicted++;
    }
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  /** Entries from least to most recently set; deleting while iterating is safe. */
  entries(): IterableIterator<[K, V]> {
    return this.#map.entries();
  }

  get size(): number {
    return this.#map.size;
  }

  /** Entries dropped to stay within capacity, ever. */
  get evicted(): number {
    return this.#evicted;
  }
}

/** Buckets per window: a count may miss up to one bucket's worth (1/10 of the window) of events. */
export const WINDOW_BUCKETS = 10;

/**
 * How many events fell in the last `windowMs`, in {@link WINDOW_BUCKETS} aligned buckets of
 * `windowMs / WINDOW_BUCKETS` (a ring indexed by bucket number). The count at time t covers the
 * bucket of t and the nine before it: never more than the exact window [t - windowMs, t] holds,
 * at most one bucket less. Events older than every kept bucket are dropped, so out-of-order
 * input cannot inflate a count. O(WINDOW_BUCKETS) memory and time.
 */
export class WindowCount {
  readonly #width: number;
  /** Bucket number held by each slot (-Infinity: none). */
  readonly #bucket: number[] = new Array<number>(WINDOW_BUCKETS).fill(-Infinity);
  readonly #count: number[] = new Array<number>(WINDOW_BUCKETS).fill(0);
  #newest = -Infinity;

  constructor(windowMs: number) {
    this.#width = windowMs / WINDOW_BUCKETS;
  }

  /**
   * Counts one event at `atMs` (finite); returns the window's count as of `atMs`, or 0 when the
   * event is too old to keep.
   */
  add(atMs: number): number {
    const b = Math.floor(atMs / this.#width);
    const slot = ((b % WINDOW_BUCKETS) + WINDOW_BUCKETS) % WINDOW_BUCKETS;
    const held = this.#bucket[slot] ?? -Infinity;
    if (held > b) return 0;
    if (held < b) {
      this.#bucket[slot] = b;
      this.#count[slot] = 0;
    }
    this.#count[slot] = (this.#count[slot] ?? 0) + 1;
    if (b > this.#newest) this.#newest = b;
    let total = 0;
    for (let i = 0; i < WINDOW_BUCKETS; i++) {
      const other = this.#bucket[i] ?? -Infinity;
      if (other <= b && other > b - WINDOW_BUCKETS) total += this.#count[i] ?? 0;
    }
    return total;
  }

  /** End of the newest bucket counted; -Infinity before the first event. */
  get newestMs(): number {
    return (this.#newest + 1) * this.#width;
  }
}
