/**
 * 64-bit hashes as pairs of int32 halves, the form the index tables work on: value `i` of a
 * `BigUint64Array` is `(lo, hi) = (a[2i], a[2i + 1])` of an `Int32Array` over the same memory.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Reusable buffer exposing 64-bit values as int32 halves. `load` copies the values in (a plain memory
 * copy: neither a `bigint` per value nor a new view per call) and returns the shared halves array,
 * valid until the next `load`.
 */
export class HalvesScratch {
  private values = new BigUint64Array(256);
  private words = new Int32Array(this.values.buffer);

  load(source: BigUint64Array): Int32Array {
    if (source.length > this.values.length) {
      this.values = new BigUint64Array(Math.max(source.length, this.values.length * 2));
      this.words = new Int32Array(this.values.buffer);
    }
    if (LITTLE_ENDIAN) this.values.set(source);
    else {
      for (let i = 0; i < source.length; i++) {
        this.words[2 * i] = lowHalf(source[i]!);
        this.words[2 * i + 1] = highHalf(source[i]!);
      }
    }
    return this.words;
  }

  /** Halves of one value at words 0 and 1. */
  loadOne(value: bigint): Int32Array {
    if (LITTLE_ENDIAN) this.values[0] = value;
    else {
      this.words[0] = lowHalf(value);
      this.words[1] = highHalf(value);
    }
    return this.words;
  }
}

export function lowHalf(value: bigint): number {
  return Number(BigInt.asUintN(32, value)) | 0;
}

export function highHalf(value: bigint): number {
  return Number(BigInt.asUintN(32, value >> 32n)) | 0;
}

export function joinHalves(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
