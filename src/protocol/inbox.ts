import type { BackendMessage } from './messages.js';

/**
 * Parsed messages waiting for the connection's single reader. Above
 * `highWater` queued bytes it asks the source to pause, and to resume once the
 * reader has drained it to `lowWater`: a slow consumer slows the server down
 * instead of filling memory. After `fail`, queued messages are still
 * delivered, then every read rejects with the failure.
 */
export class Inbox {
  private readonly queue: BackendMessage[] = [];
  private head = 0;
  private bytes = 0;
  private paused = false;
  private waiter: { resolve: (m: BackendMessage) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly flow: { pause(): void; resume(): void },
    private readonly highWater = 1 << 20,
    private readonly lowWater = 1 << 18,
  ) {}

  push(m: BackendMessage): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(m);
      return;
    }
    this.queue.push(m);
    this.bytes += sizeOf(m);
    if (!this.paused && this.bytes > this.highWater) {
      this.paused = true;
      this.flow.pause();
    }
  }

  next(): Promise<BackendMessage> {
    if (this.head < this.queue.length) {
      const m = this.queue[this.head];
      // Drop the reference: under steady flow the queue may never run empty,
      // and read slots must not keep their payloads alive.
      this.queue[this.head++] = RELEASED;
      if (this.head === this.queue.length) {
        this.queue.length = this.head = 0;
      } else if (this.head >= COMPACT_AT) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.bytes -= sizeOf(m);
      if (this.paused && this.bytes <= this.lowWater) {
        this.paused = false;
        this.flow.resume();
      }
      return Promise.resolve(m);
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error('Inbox: two concurrent readers'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** First failure wins; a waiting reader is rejected at once. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  /** Drops queued messages (the connection was destroyed by us: they are moot). */
  clear(): void {
    this.queue.length = this.head = this.bytes = 0;
  }
}

/** Placeholder for a slot already handed to the reader. */
const RELEASED: BackendMessage = { kind: 'copyDone' };
/** Read slots are cut off the front of the queue once this many pile up. */
const COMPACT_AT = 1024;

function sizeOf(m: BackendMessage): number {
  if (m.kind === 'copyData') return m.data.length + 5;
  if (m.kind === 'dataRow') return m.values.reduce((n, v) => n + 4 + (v?.length ?? 0), 7);
  return 32;
}
