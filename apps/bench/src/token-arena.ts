/** Prompt buffers carved out of large chunks (a request keeps its view; a full chunk is left to the collector). */
export class TokenArena {
  private chunk = new Uint32Array(1 << 22);
  private used = 0;

  take(n: number): Uint32Array {
    if (n > this.chunk.length) return new Uint32Array(n);
    if (this.used + n > this.chunk.length) {
      this.chunk = new Uint32Array(this.chunk.length);
      this.used = 0;
    }
    const view = this.chunk.subarray(this.used, this.used + n);
    this.used += n;
    return view;
  }
}
