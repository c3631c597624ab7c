import type { ProcessingResponse } from "../wire/messages.js";

/** How the processor ended the stream. */
export interface StreamStatus {
  code: number;
  details: string;
}

export type InboxItem = { message: ProcessingResponse } | { ended: StreamStatus };

/** Responses from the processor, read one at a time in order; the end status comes last. */
export class Inbox {
  private readonly items: InboxItem[] = [];
  private waiter: ((item: InboxItem) => void) | undefined;
  private status: StreamStatus | undefined;

  push(message: ProcessingResponse): void {
    this.deliver({ message });
  }

  end(status: StreamStatus): void {
    if (this.status !== undefined) return;
    this.status = status;
    this.deliver({ ended: status });
  }

  /** The stream's end status, once known. */
  get ended(): StreamStatus | undefined {
    return this.status;
  }

  next(): Promise<InboxItem> {
    const item = this.items.shift();
    if (item !== undefined) {
      if ("ended" in item) this.items.unshift(item);
      return Promise.resolve(item);
    }
    return new Promise((resolve) => (this.waiter = resolve));
  }

  private deliver(item: InboxItem): void {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter(item);
      if ("ended" in item) this.items.push(item);
    } else {
      this.items.push(item);
    }
  }
}
