/** What a full mailbox does with a new message. */
export const OverflowPolicy = {
  /** Refuse the new message (`tell` returns false); counted as `mailbox-full`. */
  DropNewest: 'drop-newest',
  /** Accept the new message and evict the oldest queued one; counted as `evicted`. */
  DropOldest: 'drop-oldest',
  /** Refuse the new message; counted separately as `rejected`. */
  Reject: 'reject',
} as const;
export type OverflowPolicy = (typeof OverflowPolicy)[keyof typeof OverflowPolicy];

/** Outcome of `Mailbox.offer`. */
export type OfferOutcome =
  | { readonly accepted: true; readonly evicted: boolean }
  | { readonly accepted: false; readonly reason: 'mailbox-full' | 'rejected' };

const INITIAL_SLOTS = 4;

/**
 * Bounded FIFO ring buffer. Storage starts tiny and doubles on demand (never
 * beyond `capacity` slots), so idle actors cost a few words each.
 */
export class Mailbox<T> {
  private slots: (T | undefined)[] = [];
  private head = 0;
  private count = 0;

  constructor(
    readonly capacity: number,
    readonly overflow: OverflowPolicy,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`mailbox capacity must be a positive integer, got ${capacity}`);
    }
  }

  get size(): number {
    return this.count;
  }

  /** Enqueues `msg` subject to the bound and overflow policy. */
  offer(msg: T): OfferOutcome {
    let evicted = false;
    if (this.count >= this.capacity) {
      if (this.overflow === OverflowPolicy.DropNewest) return { accepted: false, reason: 'mailbox-full' };
      if (this.overflow === OverflowPolicy.Reject) return { accepted: false, reason: 'rejected' };
      this.shift();
      evicted = true;
    }
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) % this.slots.length] = msg;
    this.count++;
    return { accepted: true, evicted };
  }

  /** Removes and returns the oldest message, or undefined when empty. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const msg = this.slots[this.head];
    this.slots[this.head] = undefined; // let GC reclaim it
    this.head = (this.head + 1) % this.slots.length;
    this.count--;
    return msg;
  }

  /** Empties the mailbox, returning the messages in FIFO order. */
  drain(): T[] {
    const out: T[] = [];
    while (this.count > 0) out.push(this.shift() as T);
    this.slots = [];
    this.head = 0;
    return out;
  }

  private grow(): void {
    const next = new Array<T | undefined>(
      Math.min(this.capacity, Math.max(INITIAL_SLOTS, this.slots.length * 2)),
    );
    for (let i = 0; i < this.count; i++) next[i] = this.slots[(this.head + i) % this.slots.length];
    this.slots = next;
    this.head = 0;
  }
}
