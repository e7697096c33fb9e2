import type { Frame } from '../protocol/framer.js';

/**
 * What a pooled server connection owes its client, in order: one entry per
 * message sent that the server answers, plus answers the router gives itself
 * (a ParseComplete for a statement the server already has, a CloseComplete
 * for a client's Close that is not forwarded) and its own internal queries.
 * Fed the server's messages, it says which to pass to the client, and emits
 * the router's own answers in their place in the stream. Pure: no I/O.
 *
 * PostgreSQL's rules it follows: every message of the extended protocol
 * gets its own completion ('1' Parse, '2' Bind, '3' Close, 't'+'T'/'n'
 * Describe, 'C'/'I'/'s' Execute) except Flush; after an error the server
 * skips everything up to the next Sync, which answers with ReadyForQuery;
 * a simple Query is answered up to its ReadyForQuery; NoticeResponse,
 * ParameterStatus and NotificationResponse may come at any time.
 */
export type Step = 'parse' | 'bind' | 'close' | 'describe' | 'execute' | 'function';

export type Pending =
  | { readonly kind: 'query' }
  | { readonly kind: 'sync' }
  /** `swallow`: the router sent it on its own (an injected Parse); its completion is not the client's. `failed` runs when the server refused or skipped it. */
  | { readonly kind: 'step'; readonly step: Step; readonly swallow: boolean; readonly failed?: () => void }
  | { readonly kind: 'synth'; readonly bytes: Buffer }
  /** The router's own simple query: every answer swallowed; `done` gets its first value (text) or null. */
  | { readonly kind: 'internal'; readonly done: (value: string | null) => void };

const Z = 0x5a;
const E = 0x45;
const ASYNC = new Set([0x4e, 0x53, 0x41]); // N, S, A

export interface Fed {
  /** What to write to the client, in order (adjacent views of one chunk already joined). */
  readonly out: Buffer[];
  /** Set when a ReadyForQuery answered the last entry owed: the transaction status. */
  readonly idle: 'I' | 'T' | 'E' | null;
  /** How many client-visible bytes `out` holds (0: nothing reached the client). */
  readonly bytes: number;
}

export class ResponseTracker {
  private readonly queue: Pending[] = [];
  private head = 0;
  private internalValue: string | null = null;
  private lastStatus: 'I' | 'T' | 'E' = 'I';
  private readies = 0;

  get owed(): number {
    return this.queue.length - this.head;
  }

  /** The transaction status of the last ReadyForQuery (the router's own queries' included). */
  get status(): 'I' | 'T' | 'E' {
    return this.lastStatus;
  }

  /** How many ReadyForQuery are still owed (to the client's queries and Syncs, and to the router's own queries). */
  get readiesOwed(): number {
    return this.readies;
  }

  push(p: Pending): void {
    if (p.kind === 'query' || p.kind === 'sync' || p.kind === 'internal') this.readies++;
    this.queue.push(p);
  }

  /** Answers the router gives at the head of the queue now (nothing is owed before them). */
  flushSynth(): Buffer[] {
    const out: Buffer[] = [];
    this.emitSynth(out);
    this.compact();
    return out;
  }

  feed(frames: readonly Frame[]): Fed {
    const out: Buffer[] = [];
    let idle: 'I' | 'T' | 'E' | null = null;
    let bytes = 0;
    const forward = (b: Buffer) => {
      bytes += b.length;
      const prev = out[out.length - 1];
      if (prev && prev.buffer === b.buffer && prev.byteOffset + prev.length === b.byteOffset) out[out.length - 1] = Buffer.from(prev.buffer, prev.byteOffset, prev.length + b.length);
      else out.push(b);
    };
    for (const f of frames) {
      bytes += this.emitSynth(out);
      const p = this.queue[this.head];
      if (p === undefined) {
        forward(f.bytes); // unsolicited: a FATAL before closing, a notice
        continue;
      }
      if (p.kind === 'internal') {
        if (f.code === 0x44 && this.internalValue === null) this.internalValue = firstText(f.bytes);
        if (f.code === Z) {
          this.head++;
          this.readies--;
          this.lastStatus = statusOf(f.bytes);
          const v = this.internalValue;
          this.internalValue = null;
          p.done(v);
          if (this.owed === 0) idle = statusOf(f.bytes);
        }
        continue;
      }
      if (ASYNC.has(f.code)) {
        forward(f.bytes);
        continue;
      }
      if (p.kind === 'query' || p.kind === 'sync') {
        forward(f.bytes);
        if (f.code === Z) {
          this.head++;
          this.readies--;
          this.lastStatus = statusOf(f.bytes);
          if (this.owed === 0) idle = this.lastStatus;
        }
        continue;
      }
      if (p.kind !== 'step') continue; // synth entries were emitted above
      if (f.code === E) {
        forward(f.bytes); // an error is the client's even for a message the router sent
        this.head++;
        p.failed?.();
        this.skipToSync();
        continue;
      }
      if (!p.swallow) forward(f.bytes);
      if (completes(p.step, f.code)) this.head++;
    }
    bytes += this.emitSynth(out);
    this.compact();
    return { out, idle, bytes };
  }

  /** The connection is gone: run every `failed` owed, forget everything. */
  abandon(): void {
    for (let i = this.head; i < this.queue.length; i++) {
      const p = this.queue[i];
      if (p.kind === 'step') p.failed?.();
      if (p.kind === 'internal') p.done(null);
    }
    this.queue.length = this.head = this.readies = 0;
  }

  private emitSynth(out: Buffer[]): number {
    let n = 0;
    for (let p = this.queue[this.head]; p?.kind === 'synth'; p = this.queue[this.head]) {
      out.push(p.bytes);
      n += p.bytes.length;
      this.head++;
    }
    return n;
  }

  /** After an error: the server skips everything up to the next Sync. */
  private skipToSync(): void {
    for (let p = this.queue[this.head]; p !== undefined && p.kind !== 'sync' && p.kind !== 'query' && p.kind !== 'internal'; p = this.queue[this.head]) {
      if (p.kind === 'step') p.failed?.();
      this.head++;
    }
  }

  private compact(): void {
    if (this.head === this.queue.length) this.queue.length = this.head = 0;
    else if (this.head > 256) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}

function completes(step: Step, code: number): boolean {
  switch (step) {
    case 'parse':
      return code === 0x31; // 1
    case 'bind':
      return code === 0x32; // 2
    case 'close':
      return code === 0x33; // 3
    case 'describe':
      return code === 0x54 || code === 0x6e; // T, n (after t for a statement)
    case 'execute':
      return code === 0x43 || code === 0x49 || code === 0x73; // C, I, s
    case 'function':
      return code === 0x56; // V
  }
}

function statusOf(z: Buffer): 'I' | 'T' | 'E' {
  const s = String.fromCharCode(z[5]);
  return s === 'T' || s === 'E' ? s : 'I';
}

/** The first column of a DataRow, as text (null for SQL NULL). */
function firstText(d: Buffer): string | null {
  if (d.readInt16BE(5) < 1) return null;
  const len = d.readInt32BE(7);
  return len < 0 ? null : d.toString('utf8', 11, 11 + len);
}
