/**
 * Small integer ids (entry ids, slots) handed out densely and reused after release: the allocator behind
 * tables whose payload lives column-wise in typed arrays. `onGrow(capacity)` runs before an id at or past
 * the current capacity is handed out, so the owner can resize its columns (`resized` helps).
 */
export class IdPool {
  private nextFree: Int32Array;
  private freeHead = -1;
  private high = 0;

  constructor(
    private readonly onGrow: (capacity: number) => void,
    initialCapacity = 16,
  ) {
    this.nextFree = new Int32Array(initialCapacity);
  }

  /** Ids handed out at least once: every live id is below it. */
  get highWater(): number {
    return this.high;
  }

  allocate(): number {
    if (this.freeHead !== -1) {
      const id = this.freeHead;
      this.freeHead = this.nextFree[id]!;
      return id;
    }
    if (this.high === this.nextFree.length) {
      this.nextFree = resized(this.nextFree, this.nextFree.length * 2);
      this.onGrow(this.nextFree.length);
    }
    return this.high++;
  }

  release(id: number): void {
    this.nextFree[id] = this.freeHead;
    this.freeHead = id;
  }

  /** Every id is free again (the owner's columns keep their size). */
  reset(): void {
    this.freeHead = -1;
    this.high = 0;
  }
}

/** A copy of `array` with `length` elements (the extra ones zero). */
export function resized<T extends Int32Array | Float64Array>(array: T, length: number): T {
  const out = new (array.constructor as new (n: number) => T)(length);
  out.set(array.subarray(0, Math.min(array.length, length)));
  return out;
}
