import { PgmError } from '../errors.js';
import { currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { nextState } from '../cluster/state.js';
import { failover, resumePending, type PrimaryHooks } from './failover.js';
import { DEFAULT_HA_POLICY, EMPTY_MEMORY, type HaPolicy, type Memory, type Snapshot } from './observations.js';
import { decide } from './policy.js';
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

/** Takes one immutable snapshot of the cluster (with the leases, in multi-host mode). */
export async function snapshot(ctx: ClusterContext): Promise<Snapshot> {
  const secrets = requireSecrets(ctx);
  const fenced = new Set((await ctx.store.read(ctx.group))?.fenced ?? []);
  const primary = await currentPrimaryName(ctx);
  const inspections = await Promise.all(ctx.cfg.nodes.map((n) => ctx.control(n).inspect()));
  const nodes = await Promise.all(ctx.cfg.nodes.map((n, i) => observe(ctx, n, secrets, fenced.has(n.name), inspections[i])));
  const base = { at: Date.now(), primary, policy: haPolicy(ctx), nodes };
  if (!ctx.cfg.dcs) return base;
  const pings = inspections.flatMap((x) => (x.failsafe && x.failsafe.from === primary ? [x.failsafe.ageMs] : []));
  return {
    ...base,
    leases: { primaryHolder: await ctx.store.primaryHolder(ctx.group), ttlMs: ctx.cfg.dcs.etcd.ttlMs, failsafeAgeMs: pings.length > 0 ? Math.min(...pings) : null },
  };
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
    /** Multi-host: whether this agent still holds the controller lease with time to spare; checked before every action. */
    private readonly mayAct: () => boolean = () => true,
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
      const resumed = await resumePending(this.ctx, secrets, this.hooks, this.event);
      if (resumed) return this.say(resumed, true);
      const snap = await snapshot(this.ctx);
      const d = decide(snap, this.memory);
      this.memory = d.memory;
      if (d.action.kind !== 'none' && d.action.kind !== 'wait' && !this.mayAct()) return this.say(`did not act on "${d.sentence}": this agent's controller lease is about to expire`, true);
      switch (d.action.kind) {
        case 'none': {
          this.say(d.sentence, false);
          // auto_rejoin: an old primary whose host can be reached again is rebuilt as a replica
          const back = this.ctx.cfg.ha.autoRejoin ? snap.nodes.find((n) => n.fenced && n.name !== snap.primary && n.hostReachable && n.postmasterAlive !== null) : undefined;
          if (back && this.mayAct()) {
            const r = await rejoin(this.ctx, secrets, back.name, this.event).catch((err: unknown) => `automatic rejoin of ${back.name} failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
            this.say(r, true);
          }
          return d.sentence;
        }
        case 'wait':
          return this.say(d.sentence, false);
        case 'restart': {
          const name = d.action.node;
          this.say(d.sentence, true);
          await this.ctx.control(findNode(this.ctx.cfg, name)).start().catch((err: Error) => this.event(`restart of ${name} failed: ${err.message}`));
          return d.sentence;
        }
        case 'fence': {
          const node = findNode(this.ctx.cfg, d.action.node);
          const st = await this.ctx.store.read();
          if (st && !st.fenced.includes(node.name)) await this.ctx.store.write(nextState(st, { fenced: [...st.fenced, node.name] }));
          await this.ctx.control(node).fence(d.sentence).catch((err: Error) => this.event(`fencing ${node.name} failed: ${err.message}`));
          return this.say(d.sentence, true);
        }
        case 'failover': {
          this.say(d.sentence, true);
          const from = d.action.from;
          const done = await failover(this.ctx, secrets, { kind: 'failover', from, to: d.action.to, reason: d.action.reason }, this.hooks, this.event);
          this.say(done, true);
          this.memory = EMPTY_MEMORY;
          if (this.ctx.cfg.ha.autoRejoin) {
            const r = await rejoin(this.ctx, secrets, from, this.event).catch((err: unknown) => `automatic rejoin of ${from} failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
            this.say(r, true);
          }
          return done;
        }
      }
    });
  }

  /** Logs a sentence; a routine one only when the situation changed (numbers aside), so an idle cluster logs nothing. */
  private say(sentence: string, always: boolean): string {
    const shape = sentence.replace(/[0-9A-F]+\/[0-9A-F]+|\d+(\.\d+)?/g, '#');
    if (always || shape !== this.lastSentence) this.event(sentence);
    this.lastSentence = shape;
    return sentence;
  }
}
