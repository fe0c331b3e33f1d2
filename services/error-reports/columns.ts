/**
 * Compact growable storage for the service-side index: numeric columns over typed arrays and a
 * string dictionary, so a stored event costs a few dozen bytes instead of an object per field.
 */

/** A growable column of numbers in a typed array (doubling; amortised O(1) push). */
export class NumberColumn {
  #data: Float64Array | Int32Array | Uint8Array;
  #length = 0;
  readonly #make: (n: number) => Float64Array | Int32Array | Uint8Array;

  private constructor(make: (n: number) => Float64Array | Int32Array | Uint8Array) {
    this.#make = make;
    this.#data = make(64);
  }

  /** Integers up to 2^53 (times, counts). 8 bytes per value. */
  static float64(): NumberColumn {
    return new NumberColumn((n) => new Float64Array(n));
  }

  /** Signed 32-bit integers (indexes, -1 for none). 4 bytes per value. */
  static int32(): NumberColumn {
    return new NumberColumn((n) => new Int32Array(n));
  }

  /** 0..255 (kinds, exit codes). 1 byte per value. */
  static uint8(): NumberColumn {
    return new NumberColumn((n) => new Uint8Array(n));
  }

  get length(): number {
    return this.#length;
  }

  push(v: number): void {
    if (this.#length === this.#data.length) {
      const grown = this.#make(this.#data.length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[this.#length++] = v;
  }

  /** Only valid for `0 <= i < length`. */
  at(i: number): number {
    return this.#data[i] as number;
  }

  /** Bytes held, for memory accounting. */
  get byteLength(): number {
    return this.#data.byteLength;
  }
}

/** Interns strings: each distinct string is held once and named by a dense index from 0. */
export class StringDictionary {
  readonly #index = new Map<string, number>();
  readonly #strings: string[] = [];

  intern(s: string): number {
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.#strings.length;
      this.#strings.push(s);
      this.#index.set(s, i);
    }
    return i;
  }

  /** The index of `s`, or -1 when it was never interned (then nothing can match it). */
  lookup(s: string): number {
    return this.#index.get(s) ?? -1;
  }

  /** Only valid for an index `intern` returned. */
  get(i: number): string {
    return this.#strings[i] as string;
  }

  get size(): number {
    return this.#strings.length;
  }
}
