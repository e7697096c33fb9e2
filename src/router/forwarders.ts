import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { holdListener, inheritedListenFd, type HeldSocket } from '../daemon/listen.js';
import { PgmError } from '../errors.js';
import { chooseRo } from './balance.js';
import { describeChange, Endpoint, sumChanges, type EndpointStats, type EndpointTarget, type TargetChange } from './tcp.js';

/**
 * A TCP endpoint (rw, ro) forwarding on several threads of its process, as
 * HAProxy does with one thread per core: every thread listens on the same
 * socket and the kernel hands each new connection to one of them. On a
 * loaded host a single thread gets one fair share of the CPU for every
 * client it serves; several threads get several (bench/router measures it).
 * The main thread keeps the decisions (which primary, which replicas) and
 * tells every thread; a change of target resolves once every thread has
 * dropped its connections to the old one. With one core, or no socket to
 * share (a host name to resolve), it forwards on the main thread.
 */

/** What ro's threads choose from (chooseRo over the thread's own connection counts). */
export interface PickState {
  readonly eligible: readonly string[];
  readonly primary: string | null;
  readonly fallback: 'primary' | 'refuse';
  readonly targets: Readonly<Record<string, EndpointTarget>>;
}

export interface ForwarderSetup {
  readonly index: number;
  readonly host: string;
  readonly port: number;
  readonly fd: number;
  readonly holdMs: number;
  readonly mode: 'target' | 'pick';
}

export type ForwarderRequest =
  | { op: 'setTarget'; id: number; target: EndpointTarget | null }
  | { op: 'pick'; id: number; state: PickState }
  | { op: 'drop'; id: number; name: string }
  | { op: 'close'; id: number };

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export type ForwarderStats = EndpointStats & { readonly routes: { replica: number; primary: number; refused: number } };

type Reply = { op: 'done'; id: number; result: unknown; stats: ForwarderStats } | { op: 'stats' | 'ready'; stats: ForwarderStats } | { op: 'log'; line: string } | { op: 'error'; message: string };

export interface ForwardersOptions {
  readonly host: string;
  readonly port: number;
  readonly holdMs: number;
  readonly mode: 'target' | 'pick';
  readonly log: (line: string) => void;
  /** Threads to forward on (default: one per core, at most 4). */
  readonly threads?: number;
}

export class Forwarders {
  private readonly workers: Worker[] = [];
  private readonly latest: ForwarderStats[] = [];
  private readonly waiting = new Map<number, { left: number; results: unknown[]; resolve: (r: unknown[]) => void }>();
  private nextId = 1;
  private held: HeldSocket | null = null;
  /** On the main thread: no socket to share, or one core. */
  private local: Endpoint | null = null;
  private pickState: PickState | null = null;
  private closing = false;

  constructor(private readonly opts: ForwardersOptions) {}

  get threads(): number {
    return this.local ? 1 : this.workers.length;
  }

  async listen(): Promise<void> {
    const { host, port } = this.opts;
    const n = this.opts.threads ?? Math.min(4, os.availableParallelism?.() ?? os.cpus().length);
    let fd = inheritedListenFd();
    if (fd === null && n > 1) {
      this.held = holdListener({ host, port });
      fd = this.held ? (this.held.handle as { fd: number }).fd : null;
    }
    if (fd === null || n <= 1) {
      this.local = new Endpoint({ host, port, fd, holdMs: this.opts.holdMs, log: this.opts.log, pick: this.opts.mode === 'pick' ? () => this.localPick() : undefined });
      await this.local.listen();
      return;
    }
    const file = workerEntry();
    await Promise.all(
      Array.from({ length: n }, (_, index) => {
        const setup: ForwarderSetup = { index, host, port, fd: fd!, holdMs: this.opts.holdMs, mode: this.opts.mode };
        const w = new Worker(file.code, { eval: file.eval, workerData: setup });
        this.workers.push(w);
        return new Promise<void>((resolve, reject) => {
          w.on('message', (m: Reply) => {
            if (m.op === 'ready') resolve();
            if (m.op === 'error') reject(new PgmError('daemon.failed', `the endpoint cannot listen on ${host}:${port}: ${m.message}.`, { hint: 'read the endpoint log.' }));
            this.onReply(index, m);
          });
          w.once('error', (err) => {
            this.opts.log(`forwarding thread ${index} failed: ${err.message}`);
            reject(err);
          });
          w.once('exit', (code) => {
            if (this.closing) return;
            // a thread that died took its connections with it: end the process, its keeper starts a whole one (the spare takes over)
            this.opts.log(`forwarding thread ${index} exited (code ${code}); the endpoint process ends so that it is restarted whole`);
            process.exit(70);
          });
        });
      }),
    );
    if (this.pickState) await this.ask({ op: 'pick', state: this.pickState });
  }

  /** Points every thread at `next`; resolves with the sentence once each has dropped its connections to the previous target. */
  async setTarget(next: EndpointTarget | null, reason: string): Promise<string> {
    const address = this.address;
    const changes = this.local ? [this.local.retarget(next)] : ((await this.ask({ op: 'setTarget', target: next })) as TargetChange[]);
    const sentence = describeChange(address, this.opts.holdMs, reason, changes.reduce(sumChanges));
    this.opts.log(sentence);
    return sentence;
  }

  /** ro: what every thread chooses from from now on; held connections are offered again. */
  async setPick(state: PickState): Promise<void> {
    this.pickState = state;
    if (this.local) this.local.release();
    else await this.ask({ op: 'pick', state });
  }

  /** ro: closes every connection to `name` on every thread; resolves with how many. */
  async dropTarget(name: string): Promise<number> {
    if (this.local) return this.local.dropTarget(name);
    return ((await this.ask({ op: 'drop', name })) as number[]).reduce((a, b) => a + b, 0);
  }

  /** Connections to `name` on all threads (as last reported: at most 250 ms old). */
  connectionsTo(name: string): number {
    if (this.local) return this.local.connectionsTo(name);
    return this.latest.reduce((n, s) => n + (s?.perTarget[name] ?? 0), 0);
  }

  /** The threads' figures added up. */
  get stats(): ForwarderStats {
    const all = this.local ? [{ ...this.local.stats, routes: { ...this.routes } }] : this.latest.filter(Boolean);
    const sum = (k: keyof EndpointStats) => all.reduce((n, s) => n + (s[k] as number), 0);
    const perTarget: Record<string, number> = {};
    for (const s of all) for (const [k, v] of Object.entries(s.perTarget)) perTarget[k] = (perTarget[k] ?? 0) + v;
    const routes = { replica: 0, primary: 0, refused: 0 };
    for (const s of all) for (const k of Object.keys(routes) as (keyof typeof routes)[]) routes[k] += s.routes[k];
    return {
      address: this.address,
      listening: all.some((s) => s.listening),
      target: all[0]?.target ?? null,
      active: sum('active'),
      connecting: sum('connecting'),
      held: sum('held'),
      accepted: sum('accepted'),
      forwarded: sum('forwarded'),
      dropped: sum('dropped'),
      unreachable: sum('unreachable'),
      holdExpired: sum('holdExpired'),
      bytesFromClients: sum('bytesFromClients'),
      bytesToClients: sum('bytesToClients'),
      perTarget,
      routes,
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.local) await this.local.close();
    else {
      await this.ask({ op: 'close' });
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
    this.held?.close();
  }

  private get address(): string {
    const { host, port } = this.opts;
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  private readonly routes = { replica: 0, primary: 0, refused: 0 };
  private turn = 0;

  /** ro on the main thread: the same choice the threads make. */
  private localPick(): EndpointTarget | null | 'refuse' {
    return this.pickState && this.local ? pickTarget(this.pickState, (n) => this.local!.connectionsTo(n), this.turn++, this.routes) : null;
  }

  private ask(req: DistributiveOmit<ForwarderRequest, 'id'>): Promise<unknown[]> {
    const id = this.nextId++;
    if (this.workers.length === 0) return Promise.resolve([]); // not listening yet: listen() sends the pick state
    return new Promise((resolve) => {
      this.waiting.set(id, { left: this.workers.length, results: new Array(this.workers.length), resolve });
      for (const w of this.workers) w.postMessage({ ...req, id });
    });
  }

  private onReply(index: number, m: Reply): void {
    if (m.op === 'log') this.opts.log(m.line);
    if (m.op === 'done' || m.op === 'stats' || m.op === 'ready') this.latest[index] = m.stats;
    if (m.op !== 'done') return;
    const w = this.waiting.get(m.id);
    if (!w) return;
    w.results[index] = m.result;
    if (--w.left === 0) {
      this.waiting.delete(m.id);
      w.resolve(w.results);
    }
  }
}

/** ro's choice for a new connection on one thread: an eligible replica by least connections, else the fallback; counted in `routes`. */
export function pickTarget(p: PickState, connections: (name: string) => number, turn: number, routes: { replica: number; primary: number; refused: number }): EndpointTarget | null | 'refuse' {
  const c = chooseRo(p.eligible, p.primary, p.fallback, connections, turn);
  if (c.kind === 'refuse') routes.refused++;
  else if (c.kind !== 'hold') routes[c.kind]++;
  if (c.kind === 'replica' || c.kind === 'primary') return p.targets[c.node] ?? null;
  return c.kind === 'refuse' ? 'refuse' : null;
}

/**
 * The forwarding thread's module: the compiled file next to this one, or in a
 * development checkout running on src/ through tsx, a bootstrap that
 * registers tsx in the thread first (a worker thread does not inherit the
 * main thread's loader).
 */
function workerEntry(): { code: string | URL; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { code: new URL('./forwarder-worker.js', import.meta.url), eval: false };
  const ts = new URL('./forwarder-worker.ts', import.meta.url).href;
  const api = import.meta.resolve('tsx/esm/api');
  return { code: `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`, eval: true };
}
