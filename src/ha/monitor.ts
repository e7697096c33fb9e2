import { PgmError } from '../errors.js';
import { currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { nextState } from '../cluster/state.js';
import { failover, resumePending, type PrimaryHooks } from './failover.js';
import { EMPTY_MEMORY, type Memory, type Snapshot } from './observations.js';
import { haPolicy } from './policy-config.js';
import { decide, type Action as Decided } from './policy.js';
import type { Secrets } from '../cluster/secrets.js';
import { observe } from './probe.js';
import { rejoin } from './rejoin.js';
import { repoint } from './promote.js';

type Action = Exclude<Decided, { kind: 'none' } | { kind: 'wait' }>;


export interface SnapshotOptions {
  /** Multi-host: what this process's own agent heard from a primary's agent cut off from etcd (the other agents say it in their inspection). */
  readonly failsafeSeen?: () => { from: string; ageMs: number } | null;
}

/** Takes one immutable snapshot of the cluster (with the leases, in multi-host mode). */
export async function snapshot(ctx: ClusterContext, opts: SnapshotOptions = {}): Promise<Snapshot> {
  const secrets = requireSecrets(ctx);
  const fenced = new Set((await ctx.store.read(ctx.group))?.fenced ?? []);
  const primary = await currentPrimaryName(ctx);
  const inspections = await Promise.all(ctx.cfg.nodes.map((n) => ctx.control(n).inspect()));
  const nodes = await Promise.all(ctx.cfg.nodes.map((n, i) => observe(ctx, n, secrets, fenced.has(n.name), inspections[i])));
  const base = { at: Date.now(), primary, policy: haPolicy(ctx), nodes };
  if (!ctx.cfg.dcs) return base;
  const heard = [...inspections.map((x) => x.failsafe ?? null), opts.failsafeSeen?.() ?? null];
  const pings = heard.flatMap((x) => (x && x.from === primary ? [x.ageMs] : []));
  return {
    ...base,
    leases: { primaryHolder: await ctx.store.primaryHolder(ctx.group), ttlMs: ctx.cfg.dcs.etcd.ttlMs, failsafeAgeMs: pings.length > 0 ? Math.min(...pings) : null },
  };
}

/** What the monitor tells the process hosting it, besides its sentences (metrics count these). */
export interface MonitorObserver {
  /** Every cycle's decision, by kind: none, wait, restart, fence, failover. */
  decided?(kind: string): void;
  /** A failover carried out to its end. */
  failedOver?(): void;
}

/** What the process hosting the monitor plugs in. */
export interface MonitorOptions extends MonitorObserver, SnapshotOptions {
  /** Multi-host: whether this agent still holds the controller lease with time to spare; checked before every action. */
  readonly mayAct?: () => boolean;
}

/**
 * The monitor: every cycle, snapshot → decide (pure) → act, and one sentence
 * for the event log. Operator commands run through `exclusive` so a cycle
 * never acts in the middle of one.
 */
export class Monitor {
  private memory_: Memory = EMPTY_MEMORY;
  private lastSentence = '';
  private queue: Promise<unknown> = Promise.resolve();
  /** Replicas seen not streaming from the primary: since when, and when they were re-pointed. */
  private readonly adrift = new Map<string, { since: number; pointedAt: number | null }>();
  private readonly rejoinTried = new Map<string, number>();

  constructor(
    private ctx: ClusterContext,
    private readonly hooks: PrimaryHooks,
    private readonly event: (sentence: string) => void,
    private readonly observer: MonitorOptions = {},
  ) {}

  /** Multi-host: whether this agent still holds the controller lease with time to spare; checked before every action. */
  private mayAct(): boolean {
    return this.observer.mayAct?.() ?? true;
  }

  /** The configuration changed on disk: the next cycle decides and acts with it. */
  useContext(ctx: ClusterContext): void {
    this.ctx = ctx;
  }

  /** What the monitor remembers of previous cycles (for a controller that takes over). */
  get memory(): Memory {
    return this.memory_;
  }

  /** Continues from another monitor's memory (a controller taking over); ignored when it is about another primary. */
  adopt(m: Memory, primary: string): boolean {
    if (m.primary !== primary) return false;
    this.memory_ = m;
    return true;
  }

  /** Runs `fn` with the monitor paused. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One cycle; returns its sentence. */
  cycle(): Promise<string> {
    return this.exclusive(async () => {
      const secrets = requireSecrets(this.ctx);
      if ((await this.ctx.store.read(this.ctx.group))?.pending) {
        if (!this.mayAct()) return '';
        const resumed = await this.locked('finish a pending promotion', () => resumePending(this.ctx, secrets, this.hooks, this.event)).catch((err: unknown) => {
          this.say(`the promotion in progress cannot finish yet: ${errorText(err)}`, false);
          return null;
        });
        return resumed ? this.say(resumed, true) : '';
      }
      const snap = await snapshot(this.ctx, this.observer);
      const d = decide(snap, this.memory_);
      this.observer.decided?.(d.action.kind);
      if (d.action.kind === 'none' || d.action.kind === 'wait') {
        this.memory_ = d.memory;
        this.say(d.sentence, false);
        if (d.action.kind === 'none' && this.mayAct()) {
          // auto_rejoin: an old primary whose host can be reached again is rebuilt as a replica
          const back = this.ctx.cfg.ha.autoRejoin ? snap.nodes.find((n) => n.fenced && n.name !== snap.primary && n.hostReachable && n.postmasterAlive !== null && this.mayRetry(n.name, snap.at)) : undefined;
          if (back) await this.autoRejoin(back.name, 'it was fenced by a failover and its host answers again', secrets);
          else await this.followPrimary(snap, secrets);
        }
        return d.sentence;
      }
      if (!this.mayAct()) return this.say(`did not act on "${d.sentence}": this agent's controller lease is about to expire`, true);
      // Acting changes the cluster: only while no operator's command holds it (a planned restart is never a failure).
      const action = d.action;
      const done = await this.locked(`${action.kind} (${d.sentence})`, async () => {
        this.memory_ = d.memory;
        return this.act(d.sentence, action, secrets);
      });
      return done ?? '';
    });
  }

  /**
   * Replicas follow the primary: one that answers but has not streamed from
   * the primary for failover_timeout (its host was cut off during a
   * failover, so nobody could re-point it) is pointed at the primary; one
   * that still does not stream three failover_timeouts later (it has WAL
   * the new timeline lacks) is rebuilt, with auto_rejoin.
   */
  private async followPrimary(snap: Snapshot, secrets: Secrets): Promise<void> {
    const T = this.ctx.cfg.ha.failoverTimeoutMs;
    for (const n of snap.nodes) {
      const streams = n.upstreamStreaming === true && (n.upstream === null || n.upstream === snap.primary);
      if (n.name === snap.primary || n.fenced || !n.sqlOk || n.inRecovery !== true || streams) {
        this.adrift.delete(n.name);
        continue;
      }
      const a = this.adrift.get(n.name) ?? { since: snap.at, pointedAt: null };
      this.adrift.set(n.name, a);
      if (a.pointedAt === null && snap.at - a.since >= T) {
        a.pointedAt = snap.at;
        const node = findNode(this.ctx.cfg, n.name);
        const changed = await this.locked(`re-point ${n.name}`, () => repoint(this.ctx, node, findNode(this.ctx.cfg, snap.primary)));
        if (changed !== null) this.say(`${n.name} had not streamed from ${snap.primary} for ${((snap.at - a.since) / 1000).toFixed(1)} s${n.upstream ? ` (it follows ${n.upstream})` : ''}: pointed it at ${snap.primary}${changed ? '' : ' (it already was)'}`, true);
      } else if (a.pointedAt !== null && snap.at - a.pointedAt >= 3 * T && this.ctx.cfg.ha.autoRejoin && this.mayRetry(n.name, snap.at)) {
        this.adrift.delete(n.name);
        await this.autoRejoin(n.name, `it still does not stream from ${snap.primary} ${((snap.at - a.pointedAt) / 1000).toFixed(1)} s after being pointed at it`, secrets);
      }
    }
  }

  private async autoRejoin(name: string, why: string, secrets: Secrets): Promise<void> {
    this.rejoinTried.set(name, Date.now());
    const r = await this.locked(`rejoin ${name}`, () => rejoin(this.ctx, secrets, name, this.event)).catch((err: unknown) => `automatic rejoin of ${name} failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
    if (r) this.say(`${r} (automatic: ${why})`, true);
  }

  /** An automatic rejoin of `name` is tried at most once every five failover_timeouts. */
  private mayRetry(name: string, at: number): boolean {
    const t = this.rejoinTried.get(name);
    return t === undefined || at - t >= 5 * this.ctx.cfg.ha.failoverTimeoutMs;
  }

  /** Runs `fn` holding the cluster lock; when another command holds it, logs that the step waits and returns null. */
  private async locked<T>(what: string, fn: () => Promise<T>): Promise<T | null> {
    let lock;
    try {
      lock = await this.ctx.locks.acquire('cluster', `daemon: ${what.split(' (')[0]}`, null);
    } catch (err) {
      if (err instanceof PgmError && err.code === 'busy') {
        this.say(`deferred: would ${what}, but ${err.message.replace(/\.$/, '')}`, false);
        return null;
      }
      throw err;
    }
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /** Carries out a decision that changes the cluster; returns its sentence. */
  private async act(sentence: string, action: Action, secrets: Secrets): Promise<string> {
    switch (action.kind) {
      case 'restart': {
        const name = action.node;
        this.say(sentence, true);
        await this.ctx.control(findNode(this.ctx.cfg, name)).start().catch((err: Error) => this.event(`restart of ${name} failed: ${err.message}`));
        return sentence;
      }
      case 'fence': {
        const node = findNode(this.ctx.cfg, action.node);
        await this.ctx.store.update(this.ctx.group, (st) => (st && !st.fenced.includes(node.name) ? nextState(st, { fenced: [...st.fenced, node.name] }) : null));
        await this.ctx.control(node).fence(sentence).catch((err: Error) => this.event(`fencing ${node.name} failed: ${err.message}`));
        return this.say(sentence, true);
      }
      case 'failover': {
        this.say(sentence, true);
        const from = action.from;
        const done = await failover(this.ctx, secrets, { kind: 'failover', from, to: action.to, reason: action.reason, elected: true }, this.hooks, this.event).catch((err: unknown) => {
          // the step stays recorded, the old primary fenced: the next cycle resumes it
          this.say(`the failover from ${from} did not finish: ${errorText(err)}`, true);
          return null;
        });
        if (done === null) return sentence;
        this.say(done, true);
        this.observer.failedOver?.();
        this.memory_ = EMPTY_MEMORY;
        if (this.ctx.cfg.ha.autoRejoin) {
          const r = await rejoin(this.ctx, secrets, from, this.event).catch((err: unknown) => `automatic rejoin of ${from} failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
          this.say(r, true);
        }
        return done;
      }
    }
  }

  /** Logs a sentence; a routine one only when the situation changed (numbers aside), so an idle cluster logs nothing. */
  private say(sentence: string, always: boolean): string {
    const shape = sentence.replace(/[0-9A-F]+\/[0-9A-F]+|\d+(\.\d+)?/g, '#');
    if (always || shape !== this.lastSentence) this.event(sentence);
    this.lastSentence = shape;
    return sentence;
  }
}

function errorText(err: unknown): string {
  return err instanceof PgmError ? err.message.replace(/\.$/, '') : (err as Error).message;
}
