import { Worker } from 'node:worker_threads';
import { PgmError } from '../errors.js';
import type { Codec } from './codec.js';
import type { WorkerReply, WorkerRequest } from './codec-worker.js';

/**
 * `backup.process_max` worker threads that compress blocks (and give the
 * CRC-32C of each raw block), so the thread reading the backup stream only parses and writes.
 * Requests in flight are bounded (4 per worker): a caller awaits a free
 * slot, which is the backpressure that keeps memory at a few MiB per worker.
 * Workers are unref'd: an idle pool never keeps the process alive.
 */
export class CodecPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly waiting = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 1;
  private inFlight = 0;
  private slotWaiters: (() => void)[] = [];
  private failure: Error | null = null;

  constructor(readonly size: number) {
    const fromSource = import.meta.url.endsWith('.ts');
    const url = new URL(fromSource ? './codec-worker.ts' : './codec-worker.js', import.meta.url);
    // Run from TypeScript sources (tests, tsx), a worker registers tsx for itself: loader hooks are per thread on Node 20.
    const boot = fromSource ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })` : null;
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = boot ? new Worker(boot, { eval: true }) : new Worker(url);
      w.unref();
      w.on('message', (r: WorkerReply) => this.settle(r));
      w.on('error', (err) => this.fail(err));
      w.on('exit', (code) => {
        if (!this.closing) this.fail(new Error(`a codec worker thread exited (code ${code})`));
      });
      this.workers.push(w);
      this.load.push(0);
    }
  }

  /** Compresses one block; `data` is handed over (detached). Returns the stored frame and the block's CRC-32C. */
  async compress(codec: Codec, data: Buffer): Promise<{ frame: Buffer; crc: number }> {
    const w = this.load.indexOf(Math.min(...this.load));
    const r = await this.request(w, (id) => ({ op: 'compress', id, codec, data }), data);
    if (!('frame' in r)) throw new Error('internal: codec worker answered a compress request without a frame');
    return { frame: Buffer.from(r.frame.buffer, r.frame.byteOffset, r.frame.byteLength), crc: r.crc };
  }

  /** Decompresses one lz4 / zstd frame (restore), on the least busy worker. */
  async decompress(kind: 'lz4' | 'zstd', frame: Buffer): Promise<Buffer> {
    const w = this.load.indexOf(Math.min(...this.load));
    const r = await this.request(w, (id) => ({ op: 'decompress', id, kind, data: frame }), frame);
    if (!('frame' in r)) throw new Error('internal: codec worker answered a decompress request without data');
    return Buffer.from(r.frame.buffer, r.frame.byteOffset, r.frame.byteLength);
  }

  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private async request(worker: number, make: (id: number) => WorkerRequest, data: Buffer | null): Promise<WorkerReply> {
    while (this.inFlight >= 4 * this.workers.length) await new Promise<void>((r) => this.slotWaiters.push(r));
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    this.inFlight++;
    this.load[worker]++;
    const reply = new Promise<WorkerReply>((resolve, reject) => this.waiting.set(id, { resolve, reject, worker }));
    const transfer = data && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer as ArrayBuffer] : [];
    this.workers[worker].postMessage(make(id), transfer);
    const r = await reply;
    if ('error' in r) throw new PgmError('backup.failed', `a codec worker failed: ${r.error}.`, { hint: 'check backup.compression; run the command again.' });
    return r;
  }

  private settle(r: WorkerReply): void {
    const w = this.waiting.get(r.id);
    if (!w) return;
    this.waiting.delete(r.id);
    this.inFlight--;
    this.load[w.worker]--;
    this.slotWaiters.shift()?.();
    w.resolve(r);
  }

  private fail(err: Error): void {
    this.failure = err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    for (const s of this.slotWaiters.splice(0)) s();
  }
}
