/**
 * A request body read once and replayable: every reader gets the chunks from the start, then the rest as they
 * arrive. A request whose ext_proc stream fails before the picker answered is sent again, body included, to
 * another picker.
 */
export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private done = false;
  private failure: Error | undefined;
  private waiters: Array<() => void> = [];

  constructor(source: AsyncIterable<Uint8Array>) {
    void this.pull(source);
  }

  /** The body from its first byte; throws what the source threw (the client went away). */
  async *reader(): AsyncGenerator<Buffer> {
    let next = 0;
    for (;;) {
      if (next < this.chunks.length) {
        yield this.chunks[next++]!;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.done) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private async pull(source: AsyncIterable<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of source) {
        this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        this.wake();
      }
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
    } finally {
      this.done = true;
      this.wake();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
