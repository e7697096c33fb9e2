import { PgmError } from '../errors.js';
import { pgStop, postmasterRunning } from '../postgres/control.js';
import { currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { startNode } from '../cluster/lifecycle.js';
import { nextState } from '../cluster/state.js';
import { failover, resumePending, type PrimaryHooks } from './failover.js';
import { DEFAULT_HA_POLICY, EMPTY_MEMORY, type HaPolicy, type Memory, type Snapshot } from './observations.js';
import { decide, type Action as Decided } from './policy.js';
import type { Secrets } from '../cluster/secrets.js';

type Action = Exclude<Decided, { kind: 'none' } | { kind: 'wait' }>;
import { observe } from './probe.js';
import { rejoin } from './rejoin.js';

export function haPolicy(ctx: ClusterContext): HaPolicy {
  const ha = ctx.cfg.ha;
  return {
    ...DEFAULT_HA_POLICY,
    failoverTimeoutMs: ha.failoverTimeoutMs,
    restartFirst: ha.restartFirst,
    maximumLagOnFailoverBytes: ha.maximumLagOnFailover,
    synchronous: ha.quorum === null ? null : { quorum: ha.quorum },
  };
}

/** Takes one immutable snapshot of the cluster. */
export async function snapshot(ctx: ClusterContext): Promise<Snapshot> {
  const secrets = requireSecrets(ctx);
  const fenced = new Set(ctx.store.read()?.fenced ?? []);
  const nodes = await Promise.all(ctx.cfg.nodes.map((n) => observe(ctx, n, secrets, fenced.has(n.name))));
  return { at: Date.now(), primary: currentPrimaryName(ctx), policy: haPolicy(ctx), nodes };
}

/**
 * The monitor: every cycle, snapshot → decide (pure) → act, and one sentence
 * for the event log. Operator commands run through `exclusive` so a cycle
 * never acts in the middle of one.
 */
export class Monitor {
  private memory: Memory = EMPTY_MEMORY;
  private lastSentence = '';
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: ClusterContext,
    private readonly hooks: PrimaryHooks,
    private readonly event: (sentence: string) => void,
  ) {}

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
      if ((await this.ctx.store.read())?.pending) {
        const resumed = await this.locked('finish a pending promotion', () => resumePending(this.ctx, secrets, this.hooks, this.event));
        return resumed ? this.say(resumed, true) : '';
      }
      const snap = await snapshot(this.ctx);
      const d = decide(snap, this.memory);
      if (d.action.kind === 'none' || d.action.kind === 'wait') {
        this.memory = d.memory;
        return this.say(d.sentence, false);
      }
      // Acting changes the cluster: only while no operator's command holds it (a planned restart is never a failure).
      const action = d.action;
      const done = await this.locked(`${action.kind} (${d.sentence})`, async () => {
        this.memory = d.memory;
        return this.act(d.sentence, action, secrets);
      });
      return done ?? '';
    });
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
        await startNode(this.ctx, findNode(this.ctx.cfg, name)).catch((err: Error) => this.event(`restart of ${name} failed: ${err.message}`));
        return sentence;
      }
      case 'fence': {
        const node = findNode(this.ctx.cfg, action.node);
        const st = this.ctx.store.read();
        if (st && !st.fenced.includes(node.name)) this.ctx.store.write(nextState(st, { fenced: [...st.fenced, node.name] }));
        if (postmasterRunning(node.dataDir)) await pgStop(this.ctx.bins, this.ctx.user, node.dataDir, 'fast', 30).catch(() => undefined);
        return this.say(sentence, true);
      }
      case 'failover': {
        this.say(sentence, true);
        const from = action.from;
        const done = await failover(this.ctx, secrets, { kind: 'failover', from, to: action.to, reason: action.reason }, this.hooks, this.event);
        this.say(done, true);
        this.memory = EMPTY_MEMORY;
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
